"""`clipdpo eval-amber --responses`: the real command in a subprocess."""

from __future__ import annotations

import json

from tests.conftest import run_in_process
from tests.eval.amber.amber_helpers import REPO, run_cli


def _annotations(root):
    with open(f"{root}/data/annotations.json") as fh:
        return json.load(fh)


def _write_all_no(path, data, fmt="json"):
    items = [{"id": i, "response": "No"} for i in data.ids("discriminative")]
    if fmt == "json":
        path.write_text(json.dumps(items))
    else:
        path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return str(path)


def test_amber_cli_reference_figures_json_list(tmp_path, shared_amber, amber_data):
    responses = _write_all_no(tmp_path / "r.json", amber_data)
    proc = run_cli("eval-amber", "--amber-root", str(shared_amber), "--responses", responses,
                   "--task", "discriminative")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    d = result["discriminative"]
    assert (d["Accuracy"], d["Precision"], d["Recall"], d["F1"]) == (66.3, 66.3, 100.0, 79.7)
    assert result["nlp"]["backend"] == "builtin" and result["nlp"]["similarity"] == "exact"
    assert {"existence", "attribute", "state", "number", "action", "relation"} <= result.keys()
    assert "generative" not in result and "AMBER" not in result
    assert "Acc." in proc.stderr and "79.7" in proc.stderr and "14,216 responses scored" in proc.stderr


def test_amber_cli_jsonl_task_and_output_file(tmp_path, shared_amber, amber_data):
    responses = _write_all_no(tmp_path / "r.jsonl", amber_data, fmt="jsonl")
    out = tmp_path / "m.json"
    proc = run_cli("eval-amber", "--amber-root", str(shared_amber), "--responses", responses,
                   "--task", "existence", "-o", str(out), "-q")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    result = json.loads(out.read_text())
    sections = ("existence", "attribute", "relation", "discriminative")
    assert [k for k in result if k in sections] == ["existence"]
    assert result["existence"]["Accuracy"] == 100.0
    assert result["responses"]["outside_task"] == 14216 - 4924 and result["responses"]["missing"] == 0


def test_amber_cli_all_tasks_on_stand_in(tmp_path, tiny_amber):
    """Stand-in benchmark: every figure checked by hand, AMBER score included."""
    items = [
        {"id": 1, "response": "A dog on the grass under a tree with a cat."},  # cat hallucinated
        {"id": 2, "response": "A car on the road."},
        {"id": 3, "response": "A boat on the water."},
    ]
    kinds = {a["id"]: a for a in _annotations(tiny_amber)}
    for qid, a in kinds.items():
        if a["type"] != "generative":
            items.append({"id": qid, "response": "Yes" if a["truth"] == "yes" else "No"})
    path = tmp_path / "r.json"
    path.write_text(json.dumps(items))
    proc = run_cli("eval-amber", "--amber-root", tiny_amber, "--responses", str(path))
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    g = r["generative"]
    # mentions: dog grass tree cat | car road | boat water = 8, one hallucinated
    assert g["counts"]["mentions"] == 8 and g["counts"]["hallucinated_mentions"] == 1
    assert g["CHAIR"] == round(1 / 8.001 * 100, 1)
    # covered: image 1 dog and tree of 4 ("grass" is first found among tree's associated words);
    # image 2 car of 3 ("road" is associated with car); image 3 boat of 3 ("water" likewise)
    assert g["counts"]["covered_truth_objects"] == 4
    assert g["Cover"] == round(4 / 10.001 * 100, 1) == 40.0
    assert g["Hal"] == round(100 - 2 / 3.001 * 100, 1)
    assert g["Cog"] == round(1 / 7.001 * 100, 1)
    assert r["discriminative"]["Accuracy"] == round(18 / 18.001 * 100, 1)
    assert r["AMBER"] == round((100 - g["CHAIR"] + r["discriminative"]["F1"]) / 2, 1)
    assert "CHAIR" in proc.stderr and "AMBER" in proc.stderr


def test_amber_cli_errors(tmp_path, tiny_amber):
    proc = run_in_process("eval-amber", "--amber-root", tiny_amber)
    assert proc.returncode == 2 and "exactly one of --model" in proc.stderr
    proc = run_in_process("eval-amber", "--amber-root", str(tmp_path / "nope"), "--responses", "x.json")
    assert proc.returncode == 1 and "folder not found" in proc.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": 99999, "response": "No"}]))
    proc = run_in_process("eval-amber", "--amber-root", tiny_amber, "--responses", str(bad))
    assert proc.returncode == 1 and "99999 is not an AMBER question id" in proc.stderr
    bad.write_text(json.dumps([{"id": 4, "answer": "No"}]))
    proc = run_in_process("eval-amber", "--amber-root", tiny_amber, "--responses", str(bad))
    assert proc.returncode == 1 and "field 'response'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_amber_cli_lowercase_and_normalize(tmp_path, tiny_amber):
    kinds = {a["id"]: a for a in _annotations(tiny_amber)}
    items = [{"id": q, "response": a["truth"] + "."} for q, a in kinds.items() if a["type"] != "generative"]
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    plain = json.loads(run_cli("eval-amber", "--amber-root", tiny_amber, "--responses", str(path),
                               "--task", "discriminative", "-q").stdout)  # fmt: skip
    assert plain["discriminative"]["Accuracy"] == 0.0
    assert plain["discriminative"]["counts"]["not_yes_no"] == 18
    fixed = json.loads(run_cli("eval-amber", "--amber-root", tiny_amber, "--responses", str(path),
                               "--task", "discriminative", "-q", "--normalize-answers").stdout)  # fmt: skip
    assert fixed["discriminative"]["Accuracy"] == round(18 / 18.001 * 100, 1)
    assert fixed["responses"]["normalized_answers"] == 18


def _stand_in_items(root, first="A dog on the grass under a tree with a cat."):
    kinds = {a["id"]: a for a in _annotations(root)}
    items = [{"id": 1, "response": first}, {"id": 2, "response": "A car on the road."},
             {"id": 3, "response": "A boat on the water."}]  # fmt: skip
    for qid, a in kinds.items():
        if a["type"] != "generative":
            items.append({"id": qid, "response": "Yes" if a["truth"] == "yes" else "No"})
    return items


def test_amber_cli_unpaired_surrogate_escape_is_read_like_the_official_scorer(tmp_path, tiny_amber):
    """orjson refuses "\\ud800" without its pair; the official scorer (json module) reads it. Read as
    U+FFFD, with one note; every other response and every figure as without it."""
    clean = tmp_path / "clean.json"
    clean.write_text(json.dumps(_stand_in_items(tiny_amber)))
    expected = run_cli("eval-amber", "--amber-root", tiny_amber, "--responses", str(clean), "-q")
    assert expected.returncode == 0, expected.stderr
    items = _stand_in_items(tiny_amber, "A dog on the grass \ud800 under a tree with a cat. \udc00")
    as_list = tmp_path / "r.json"
    as_list.write_text(json.dumps(items))  # ensure_ascii: the escapes "\ud800" and "\udc00" in the file
    as_lines = tmp_path / "r.jsonl"
    as_lines.write_text("".join(json.dumps(item) + "\n" for item in items))
    assert "\\ud800" in as_list.read_text()
    for path in (as_list, as_lines):
        proc = run_cli("eval-amber", "--amber-root", tiny_amber, "--responses", str(path))
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == json.loads(expected.stdout)
        notes = [line for line in proc.stderr.splitlines() if "surrogate" in line]
        assert len(notes) == 1 and "1 string(s)" in notes[0] and "U+FFFD" in notes[0], proc.stderr
        quiet = run_cli("eval-amber", "--amber-root", tiny_amber, "--responses", str(path), "-q")
        assert quiet.returncode == 0 and quiet.stderr == ""


def test_amber_cli_official_nlp_with_only_legacy_nltk_data(tmp_path, tiny_amber):
    """NLTK 3.9+ reads punkt_tab and averaged_perceptron_tagger_eng only: the old folders must not pass the
    check. A stand-in nltk package (on PYTHONPATH) looks its data up in NLTK_DATA as NLTK 3.9 does."""
    import os

    from clipdpo_cli.eval.amber.nlp.similarity import TABLE_FORMAT
    from tests.eval.amber.amber_helpers import fake_nltk_package

    fake = fake_nltk_package(tmp_path / "site", "3.9.1")
    data = tmp_path / "nltk_data"
    for folder in ("tokenizers/punkt", "taggers/averaged_perceptron_tagger", "corpora/wordnet"):
        (data / folder).mkdir(parents=True)
    table = tmp_path / "sim.json"
    table.write_text(json.dumps({"format": TABLE_FORMAT, "source": "test", "pairs": []}))
    responses = tmp_path / "r.json"
    responses.write_text(json.dumps(_stand_in_items(tiny_amber)))
    src = str(REPO / "src")
    env = {"PYTHONPATH": os.pathsep.join((src, str(fake))), "NLTK_DATA": str(data)}
    args = ("eval-amber", "--amber-root", tiny_amber, "--responses", str(responses), "--nlp", "official",
            "--similarity-table", str(table), "--task", "generative")  # fmt: skip
    proc = run_cli(*args, env=env)
    assert proc.returncode != 0 and proc.stdout == ""
    assert "Traceback" not in proc.stderr and "LookupError" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "NLTK data not installed: punkt_tab, averaged_perceptron_tagger_eng" in line
    assert "python -m nltk.downloader punkt_tab averaged_perceptron_tagger_eng" in line
    # with the data NLTK 3.9 reads, the run scores
    for folder in ("tokenizers/punkt_tab/english", "taggers/averaged_perceptron_tagger_eng"):
        (data / folder).mkdir(parents=True)
    proc = run_cli(*args, "-q", env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["nlp"]["backend"] == "official" and result["generative"]["counts"]["mentions"] > 0


def test_amber_read_responses_surrogates_become_replacement_chars(tmp_path, capsys):
    import pytest

    from clipdpo_cli.eval.amber.responses import read_responses
    from clipdpo_cli.io.errors import InputError

    path = tmp_path / "r.jsonl"
    lines = ['{"id": 1, "response": "a \\ud800 b"}', '{"id": 2, "response": "smile \\ud83d\\ude00 \\u00e9"}',
             '{"id": 3, "response": "No"}']  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    rows = read_responses(str(path))
    assert [r["response"] for r in rows] == ["a \ufffd b", "smile \U0001f600 \u00e9", "No"]  # pairs kept
    assert capsys.readouterr().err.count("surrogate") == 1
    bad = tmp_path / "bad.json"
    bad.write_text('[{"id": 1, "response": "\\ud800", "score": NaN}]')  # still strict JSON otherwise
    with pytest.raises(InputError, match="invalid JSON"):
        read_responses(str(bad))


def test_amber_cli_incomplete_responses_say_so_and_fail_unless_allowed(tmp_path, tiny_amber):
    """One of the 21 stand-in responses missing: the headline says PARTIAL, the metrics are still written
    (complete: false), and the exit code is 1 unless --allow-partial."""
    path = tmp_path / "r.json"
    path.write_text(json.dumps([item for item in _stand_in_items(tiny_amber) if item["id"] != 2]))
    args = ("eval-amber", "--amber-root", tiny_amber, "--responses", str(path))
    proc = run_cli(*args)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["complete"] is False
    headline = next(line for line in proc.stderr.splitlines() if line.startswith("AMBER ("))
    assert headline.endswith("-- PARTIAL: 1 of 21 responses missing, the figures cover a subset")
    assert proc.stderr.splitlines()[-1] == (
        "clipdpo eval-amber: error: 1 of the 21 responses (task all) are missing, so the figures cover a "
        "subset (--allow-partial to accept them)"
    )
    allowed = run_cli(*args, "--allow-partial")
    assert allowed.returncode == 0, allowed.stderr
    assert "PARTIAL: 1 of 21" in allowed.stderr and "error" not in allowed.stderr
    assert json.loads(allowed.stdout) == json.loads(proc.stdout)
    quiet = run_cli(*args, "-q")
    assert quiet.returncode == 1 and quiet.stderr.count("\n") == 1 and "are missing" in quiet.stderr


def test_amber_cli_config_file_sets_the_options_and_typed_ones_win(tmp_path, tiny_amber):
    """--config FILE: eval-amber's options by name (its settings' fields), the command line winning."""
    responses = tmp_path / "r.jsonl"
    responses.write_text("".join(json.dumps({"id": i, "response": "No"}) + "\n" for i in range(4, 22)))
    config = tmp_path / "amber.yaml"
    config.write_text(f"responses: {responses}\ntask: existence\nnormalize-answers: true\n")
    done = run_in_process("eval-amber", "--amber-root", tiny_amber, "--config", str(config), "-q")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["task"] == "existence" and result["responses"]["scored"] == 3  # existence: ids 13-15
    done = run_in_process("eval-amber", "--amber-root", tiny_amber, "--config", str(config), "--task",
                          "relation", "-q")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["task"] == "relation"
    config.write_text("tsak: existence\n")
    done = run_in_process("eval-amber", "--amber-root", tiny_amber, "--config", str(config))
    assert done.returncode == 2 and "eval-amber has no option tsak" in done.stderr


def test_amber_images_option_and_its_old_name(tmp_path, tiny_amber):
    """--amber-images (AMBER's images folder) was --image-dir, a name that now means where byte images go:
    the old name still works for a release, hidden, with a note on stderr."""
    images = str(tmp_path / "elsewhere")
    new = run_in_process("eval-amber", "--amber-root", tiny_amber, "--amber-images", images, "--task",
                         "generative", "--write-queries", "-")  # fmt: skip
    assert new.returncode == 0, new.stderr
    rows = [json.loads(line) for line in new.stdout.splitlines()]
    assert [r["image"] for r in rows] == [f"{images}/AMBER_{i}.jpg" for i in (1, 2, 3)]
    old = run_in_process("eval-amber", "--amber-root", tiny_amber, "--image-dir", images, "--task",
                         "generative", "--write-queries", "-")  # fmt: skip
    assert old.returncode == 0 and old.stdout == new.stdout
    assert "--image-dir is now --amber-images" in old.stderr
    both = run_in_process("eval-amber", "--amber-root", tiny_amber, "--image-dir", images, "--amber-images",
                          images, "--write-queries", "-")  # fmt: skip
    assert both.returncode == 2 and "give only one of them" in both.stderr
    assert "--image-dir" not in run_in_process("eval-amber", "--help").stdout
