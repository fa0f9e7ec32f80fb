"""pair, score, categorize, export, probe and report: their options are their settings dataclass's fields
(declared once), with the command-line defaults unchanged, --config FILE on the commands with many options,
and the renamed flags (--image-dir, probe's --scorer-field) kept as hidden aliases."""

import importlib
import json

import pytest

from tests.conftest import invoke_cli, run_in_process
from tests.input_files import webdataset_tar


class Captured(Exception):
    """Raised in place of building a command's settings: the test has what the command would run with."""


def capture(monkeypatch, command: str, cls: str) -> dict:
    """Replace `cls` in clipdpo_cli.commands.<command> by a stand-in that records its arguments and stops."""
    module = importlib.import_module(f"clipdpo_cli.commands.{command}")
    seen: dict = {}

    def settings(**kwargs):
        seen.update(kwargs)
        raise Captured

    monkeypatch.setattr(module, cls, settings)
    return seen


def run_captured(monkeypatch, command: str, cls: str, *args: str) -> dict:
    seen = capture(monkeypatch, command, cls)
    with pytest.raises(Captured):
        invoke_cli(command, *args)
    return seen


# The defaults of each command before its options became settings fields (read from the old typer
# signatures): a command run without options must run with exactly these.
OLD_DEFAULTS = {
    "pair": ("PairSettings", {
        "min_margin": 2.0, "max_length_diff": 0.25, "per_image": 1, "min_answer_score": 28.0,
        "score_field": "clip_score", "prompt": None, "input_order": "grouped",
        "fuse_field": None, "fuse_alpha": 0.9, "source": "ranked",  # added since, off by default
    }),
    "score": ("ScoreSettings", {
        "model": "dfn-h14", "field": "text", "template": None, "scorer": "clip", "score_field": None,
        "scorer_field": "scorer", "overwrite": False, "categorize": False, "prototypes": None,
        "prompt": "Describe the image.", "device": "auto", "precision": "auto", "dtype": "auto",
        "chat_template": None, "max_pixels": None, "batch_size": 64, "workers": 2, "image_root": None,
        "cache_dir": None,
        "per_sentence": None, "parts": "sentence",  # added since, off by default
    }),
    "categorize": ("CategorizeSettings", {
        "model": "dfn-h14", "prototypes": None, "all_sims": False, "overwrite": False, "device": "auto",
        "precision": "fp32", "batch_size": 64, "workers": 2, "image_root": None, "cache_dir": None,
    }),
    "export": ("ExportSettings", {
        "format": "trl", "image_root": None, "dataset_name": None, "embed_images": True,
    }),
    "probe": ("ProbeSettings", {"lvlm_field": "lvlm_logp", "score_field": ("clip_score",)}),
    "report": ("ReportSettings", {
        "scored": [], "rejects": [], "pairs": [], "train": [], "amber": [], "zeroshot": [], "pope": [],
        "chair": [], "compare": False, "output": "report.html", "png_dir": None, "min_caption_score": None,
        "min_question_score": None, "min_answer_score": None, "score_field": "clip_score",
        "question_score_field": "question_score", "bin_width": None, "examples": 6, "image_root": None,
        "title": "clipdpo report", "quiet": False,
    }),
}  # fmt: skip


@pytest.mark.parametrize("command", sorted(OLD_DEFAULTS))
def test_defaults_are_the_old_command_lines(monkeypatch, command):
    cls, expected = OLD_DEFAULTS[command]
    args = ["/dev/null"] if command == "probe" else []
    seen = run_captured(monkeypatch, command, cls, *args)
    assert seen == expected


def test_settings_defaults_of_python_callers():
    """A Python caller's settings: the same rules; images decoded in-process; score_field by --scorer."""
    from clipdpo_cli.stages.categorize import CategorizeSettings
    from clipdpo_cli.stages.score import Scorer, ScoreSettings

    assert ScoreSettings().score_field == "clip_score" and ScoreSettings().workers == 0
    assert ScoreSettings(scorer=Scorer.lvlm).score_field == "lvlm_logp"
    assert ScoreSettings(scorer="lvlm", score_field="x").score_field == "x"
    assert CategorizeSettings().all_field is None
    assert CategorizeSettings(all_sims=True).all_field == "category_sims"
    assert CategorizeSettings(all_field="sims").all_field == "sims"


# (command, its settings class, the --config file, options typed too, what the command then runs with)
CONFIGS = [
    ("pair", "PairSettings", "min_margin: 3.5\nper-image: 2\ninput_order: any\nmin_answer_score: none\n",
     ["--per-image", "3"],
     {"min_margin": 3.5, "per_image": 3, "input_order": "any", "min_answer_score": None}),
    ("score", "ScoreSettings", "precision: fp32\nworkers: 0\nscorer: lvlm\nscore-field: s\nmodel: a/b\n",
     ["--workers", "1"],
     {"precision": "fp32", "workers": 1, "scorer": "lvlm", "score_field": "s", "model": "a/b"}),
    ("categorize", "CategorizeSettings", "all-sims: true\nbatch_size: 8\nprecision: bf16\n",
     ["--batch-size", "4"],
     {"all_sims": True, "batch_size": 4, "precision": "bf16"}),
    ("report", "ReportSettings", "scored: [a.jsonl, b.jsonl]\npairs: p.jsonl\nbin_width: 0.5\ntitle: T\n",
     ["--title", "U"],
     {"scored": ["a.jsonl", "b.jsonl"], "pairs": ["p.jsonl"], "bin_width": 0.5, "title": "U"}),
]  # fmt: skip


@pytest.mark.parametrize("command, cls, config, typed, expected", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_config_file_sets_the_options_and_typed_ones_win(monkeypatch, tmp_path, command, cls, config, typed,
                                                          expected):  # fmt: skip
    path = tmp_path / "settings.yaml"
    path.write_text(config)
    seen = run_captured(monkeypatch, command, cls, "--config", str(path), *typed)
    assert {name: seen[name] for name in expected} == expected


@pytest.mark.parametrize("command", ["pair", "score", "categorize", "report"])
def test_config_file_names_the_unknown_option_in_one_line(tmp_path, command):
    path = tmp_path / "settings.yaml"
    path.write_text("no_such_option: 1\n")
    result = run_in_process(command, "--config", str(path))
    assert result.returncode == 2, result.stderr
    assert f"{command} has no option no_such_option" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_report_thresholds_and_bin_width_are_checked_as_before(tmp_path):
    from clipdpo_cli.io.errors import UsageError
    from clipdpo_cli.report.settings import ReportSettings

    opts = ReportSettings(min_caption_score="28", min_question_score="none")
    assert opts.thresholds == {"caption": 28.0, "question": None}  # answer: not given, from the rejects
    with pytest.raises(UsageError, match="--min-answer-score must be a number or 'none', got 'x'"):
        ReportSettings(min_answer_score="x")
    with pytest.raises(UsageError, match="--bin-width must be a positive multiple of 0.05, got 0.07"):
        ReportSettings(bin_width=0.07)
    result = run_in_process("report", "--title", "x")
    assert result.returncode == 2
    assert "nothing to report: give at least one of --scored, --rejects" in result.stderr


def _records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_image_dir_is_now_extract_images_to_and_the_old_name_still_works(tmp_path):
    tar = str(webdataset_tar(tmp_path))
    rules = ["--text-column", "txt", "--method", "rules", "--types", "attribute", "--seed", "0"]
    new = invoke_cli("perturb", tar, "--extract-images-to", str(tmp_path / "new"), *rules)
    old = invoke_cli("perturb", tar, "--image-dir", str(tmp_path / "old"), *rules)
    assert new.exit_code == 0 and old.exit_code == 0, old.stderr
    images = {r["image"] for r in _records(new.stdout)}
    assert len(images) == 3 and all(image.startswith(str(tmp_path / "new")) for image in images)
    assert old.stdout == new.stdout.replace(str(tmp_path / "new"), str(tmp_path / "old"))
    assert "--image-dir is now --extract-images-to" in old.stderr
    assert "--image-dir" not in new.stderr
    quiet = invoke_cli("perturb", tar, "--image-dir", str(tmp_path / "old"), *rules, "-q")
    assert quiet.stderr == ""  # --quiet: nothing on stderr but errors
    both = run_in_process("perturb", tar, "--image-dir", "a", "--extract-images-to", "b", *rules)
    assert both.returncode == 2 and "--image-dir is the old name of --extract-images-to" in both.stderr
    assert "--image-dir" not in invoke_cli("pair", "--help").stdout


def test_probe_scorer_field_is_now_score_field(tmp_path):
    records = [
        {"id": "o", "hallucination": "none", "lvlm_logp": -1.0, "dfn": 30.0},
        {"id": "v", "hallucination": "existence", "from": "o", "lvlm_logp": -0.5, "dfn": 20.0},
    ]
    path = tmp_path / "probe.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    new = invoke_cli("probe", str(path), "--score-field", "dfn", "-q")
    old = invoke_cli("probe", str(path), "--scorer-field", "dfn")
    assert json.loads(new.stdout) == json.loads(old.stdout)
    # the LVLM prefers the variant, dfn ranks the original higher: it corrects the LVLM once
    assert json.loads(new.stdout)["all"]["scorers"]["dfn"]["corrects_lvlm"] == 1
    assert "--scorer-field is now --score-field" in old.stderr
    assert "--scorer-field" not in invoke_cli("probe", "--help").stdout


@pytest.mark.parametrize("command", ["score", "categorize"])
def test_a_config_files_device_auto_runs_shard_k_on_gpu_k_mod_n(monkeypatch, tmp_path, command):
    """--device auto from --config, as typed or by default: shard 2/3 on 4 GPUs loads on cuda:2."""
    import torch

    from clipdpo_cli.models import scorer

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch, "set_float32_matmul_precision", lambda _: None)
    seen = []

    def load_scorer(model, device, **_):
        seen.append(str(device))
        raise SystemExit(0)  # stop before any model loads

    monkeypatch.setattr(scorer, "load_scorer", load_scorer)
    config = tmp_path / "settings.yaml"
    config.write_text("device: auto\n")
    records = tmp_path / "in.jsonl"
    records.write_text('{"id": "a", "image": "x.png", "text": "t"}\n')
    for extra in ([], ["--config", str(config)]):
        result = invoke_cli(command, str(records), "--shard", "2/3", "--precision", "fp32", "-q", *extra)
        assert result.exit_code == 0, result.stderr
    assert seen == ["cuda:2", "cuda:2"]


def test_a_side_input_named_in_the_config_file_is_guarded_as_a_typed_one(tmp_path, monkeypatch):
    """-o onto the --prototypes file is refused when --config names it, as when it is typed."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.jsonl").write_text('{"id": "a", "image": "x.png"}\n')
    (tmp_path / "p.json").write_text('{"text": ["a document"]}')
    (tmp_path / "c.yaml").write_text("prototypes: p.json\n")
    result = run_in_process("categorize", "a.jsonl", "--config", "c.yaml", "-o", "p.json")
    assert result.returncode == 2 and "--prototypes" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (tmp_path / "p.json").read_text() == '{"text": ["a document"]}'  # before: replaced by the output


def test_an_old_flag_typed_wins_over_the_config_file(tmp_path):
    rows = [{"id": str(n), "image": "i", "kind": "caption", "text": " ".join(["w"] * n), "clip_score": 30.0}
            for n in (5, 6)]  # fmt: skip
    scored = tmp_path / "scored.jsonl"
    scored.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "rules.yaml"
    config.write_text("max_words: 6\n")
    result = invoke_cli("filter", str(scored), "--config", str(config), "--max-length", "5", "-q")
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["5"]  # before: the file's 6
