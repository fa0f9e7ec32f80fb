"""`--config FILE` and renamed flags, generated from a command's settings dataclass (settings_options):
the file speaks the options' names, typed options win, values are checked as typed ones, old flags work."""

import json

import pytest

from tests.conftest import invoke_cli, run_in_process


def _scored(tmp_path):
    rows = [
        {"id": "a", "image": "i1", "kind": "caption", "text": "a red cube", "clip_score": 30.0},
        {
            "id": "b",
            "image": "i1",
            "kind": "caption",
            "text": "one two three four five six seven",
            "clip_score": 29.0,
        },
        {"id": "c", "image": "i2", "kind": "caption", "text": "a cat", "clip_score": 20.0},
    ]
    path = tmp_path / "scored.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _ids(result) -> list[str]:
    return [json.loads(line)["id"] for line in result.stdout.splitlines()]


def test_config_file_sets_options_by_field_or_flag_name(tmp_path):
    scored = _scored(tmp_path)
    config = tmp_path / "rules.yaml"
    config.write_text("min_caption_score: 25\nmax-words: 5\n")
    result = invoke_cli("filter", str(scored), "--config", str(config), "-q")
    assert result.exit_code == 0, result.stderr
    assert _ids(result) == ["a"]  # c below 25; b is 7 words > 5
    # the command line wins over the file
    result = invoke_cli("filter", str(scored), "--config", str(config), "--max-words", "none", "-q")
    assert _ids(result) == ["a", "b"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("min_caption_scor: 25\n", "filter has no option min_caption_scor"),
        ("text_keep: 2\n", "text_keep: Input should be less than or equal to 1"),
        ("- 1\n- 2\n", "must be a mapping"),
    ],
)
def test_config_file_errors_are_one_line(tmp_path, text, message):
    config = tmp_path / "rules.yaml"
    config.write_text(text)
    result = run_in_process("filter", str(_scored(tmp_path)), "--config", str(config))
    assert result.returncode in (1, 2)
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_old_flag_name_still_works_hidden_and_says_the_new_one(tmp_path):
    scored = _scored(tmp_path)
    new = invoke_cli("filter", str(scored), "--max-words", "5", "-q")
    old = invoke_cli("filter", str(scored), "--max-length", "5")
    assert old.exit_code == 0 and _ids(old) == _ids(new) == ["a"]
    assert "--max-length is now --max-words" in old.stderr
    assert invoke_cli("filter", str(scored), "--max-length", "5", "-q").stderr == ""  # -q: errors only
    assert "--max-length" not in invoke_cli("filter", "--help").stdout
    both = run_in_process("filter", str(scored), "--max-length", "5", "--max-words", "6")
    assert both.returncode != 0 and "give only one of them" in both.stderr


def test_a_required_option_may_come_from_the_file_and_is_asked_for_otherwise(tmp_path):
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"id": "1", "image": "x.png", "prompt": "Describe."}\n')
    missing = run_in_process("respond", str(queries))
    assert missing.returncode == 2
    assert "Missing option '--model'" in missing.stderr
    config = tmp_path / "c.yaml"
    config.write_text("model: no/such-model\n")
    loaded = run_in_process("respond", str(queries), "--config", str(config))
    assert loaded.returncode == 1 and "model 'no/such-model'" in loaded.stderr, loaded.stderr


def test_a_path_set_in_the_file_is_guarded_like_a_typed_one(tmp_path):
    queries, prompts = tmp_path / "q.jsonl", tmp_path / "prompts.txt"
    queries.write_text('{"id": "1", "image": "x.png"}\n')
    prompts.write_text("Describe the image.\n")
    config = tmp_path / "c.yaml"
    config.write_text(f"prompts: {prompts}\n")
    result = run_in_process("caption", str(queries), "-m", "x", "--config", str(config), "-o", str(prompts))
    assert result.returncode == 2 and "is the input --prompts" in result.stderr, result.stderr
    assert prompts.read_text() == "Describe the image.\n"
