"""`clipdpo train` end to end in one process: it learns the toy preference, saves a model that reloads and
generates, resumes from a checkpoint, trains on precomputed reference log-probs, and fails clearly."""

from __future__ import annotations

import json
import os

import pytest

from tests.train.train_helpers import QUICK_TRAINING, main_in_process, read_json, read_lines, run_cli

FAST = ("--per-device-batch-size", "2", *QUICK_TRAINING)  # ends with --num-workers 0


@pytest.fixture(scope="module")
def trained(tiny_llava, toy_pairs, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("trained"))
    proc = run_cli(
        "train",
        toy_pairs,
        "--model",
        tiny_llava,
        "--output-dir",
        out,
        "--max-steps",
        "6",
        "--save-steps",
        "3",
        *FAST[:-2],  # the default --num-workers 2: images are opened in DataLoader worker processes
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_loss_falls_and_margin_rises(trained):
    out, proc = trained
    summary = json.loads(proc.stdout)  # stdout is exactly the JSON summary
    assert summary["steps"] == 6 and summary["pairs"] == 8 and summary["reference"] == "live"
    history = read_json(os.path.join(out, "train_summary.json"))["log_history"]
    losses = [h["loss"] for h in history if "loss" in h]
    margins = [h["rewards/margins"] for h in history if "rewards/margins" in h]
    assert len(losses) == 6
    assert losses[0] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at step 1: log 2
    assert losses[-1] < losses[0] - 0.15
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False))
    assert margins[0] == pytest.approx(0.0, abs=1e-6) and margins[-1] > 0.4
    assert "step 6/6: loss" in proc.stderr
    # the median optimizer step after the first, within the run's own training time; no GPU here
    runtime = read_json(os.path.join(out, "train_summary.json"))["train_runtime"]
    assert 0 < summary["median_step_seconds"] < runtime / 5 and summary["peak_gpu_memory_gb"] is None


def test_saved_model_reloads_generates_and_prefers_chosen(trained, tiny_llava, toy_pairs):
    from clipdpo_cli.io.images import load_image
    from clipdpo_cli.io.jsonl import read_jsonl
    from clipdpo_cli.models.lvlm import load_lvlm
    from clipdpo_cli.train.refcache import RefScorer

    out, _ = trained
    for name in ("config.json", "model.safetensors", "processor_config.json", "tokenizer.json"):
        assert os.path.exists(os.path.join(out, name)), name
    record = next(iter(read_jsonl(toy_pairs)))
    lvlm = load_lvlm(out, device="cpu")
    texts = lvlm.generate([load_image(record["image"])], [record["prompt"]], max_new_tokens=4, temperature=0)
    assert len(texts) == 1 and isinstance(texts[0], str)
    row = {**record}
    before_c, before_r = RefScorer(tiny_llava)([row])
    after_c, after_r = RefScorer(out)([row])
    # the saved weights are the trained ones: log p(chosen) - log p(rejected) grew by a lot
    assert (after_c[0] - after_r[0]) - (before_c[0] - before_r[0]) > 3.0


def test_resume_from_checkpoint_continues(trained, tiny_llava, toy_pairs, tmp_path, capsys):
    import shutil

    out, _ = trained
    resumed = str(tmp_path / "resumed")
    shutil.copytree(os.path.join(out, "checkpoint-3"), os.path.join(resumed, "checkpoint-3"))
    code, _, err = main_in_process(
        capsys,
        "train",
        toy_pairs,
        "--model",
        tiny_llava,
        "--output-dir",
        resumed,
        "--max-steps",
        "6",
        "--save-steps",
        "3",
        "--resume-from-checkpoint",
        "last",
        *FAST,
    )
    assert code == 0, err[-3000:]
    first = read_json(os.path.join(out, "train_summary.json"))["log_history"]
    again = read_json(os.path.join(resumed, "train_summary.json"))["log_history"]
    steps = [h["step"] for h in again if "loss" in h]
    assert steps == [1, 2, 3, 4, 5, 6]  # the checkpoint's history, then the new steps
    assert "step 4/6" in err and "step 1/6" not in err
    want = {h["step"]: h["loss"] for h in first if "loss" in h}
    for h in again:
        if "loss" in h:  # the same trajectory as the run that never stopped
            assert h["loss"] == pytest.approx(want[h["step"]], abs=1e-4)


def test_resuming_a_finished_run_trains_nothing(trained, tiny_llava, toy_pairs, tmp_path, capsys):
    """--max-steps 6 reached: resuming from checkpoint-6 used to train step 7/6 and save again."""
    import shutil

    out, _ = trained
    copy = str(tmp_path / "finished")
    shutil.copytree(out, copy)
    weights = os.path.join(copy, "model.safetensors")
    before = os.path.getmtime(weights)
    code, stdout, err = main_in_process(
        capsys, "train", toy_pairs, "--model", tiny_llava, "--output-dir", copy, "--max-steps", "6",
        "--resume-from-checkpoint", "last", *FAST,
    )  # fmt: skip
    assert code == 0, err[-3000:]
    assert "checkpoint-6 is at step 6, the run's last: nothing to train" in err
    assert "step 7" not in err and json.loads(stdout)["steps"] == 6
    assert os.path.getmtime(weights) == before  # the trained model is not saved again


def test_quiet_prints_no_progress_lines(tiny_llava, toy_pairs, tmp_path, capsys):
    code, stdout, err = main_in_process(
        capsys, "train", toy_pairs, "--model", tiny_llava, "--output-dir", str(tmp_path / "q"),
        "--max-steps", "1", "-q", *FAST,
    )  # fmt: skip
    assert code == 0, err[-3000:]
    assert json.loads(stdout)["steps"] == 1
    assert "clipdpo train:" not in err  # the header line and "saved to" were printed before


def test_precomputed_reference_run(tiny_llava, toy_pairs, tmp_path, capsys):
    ref_pairs = str(tmp_path / "pairs.ref.jsonl")
    code, _, err = main_in_process(capsys, "ref-logps", toy_pairs, "-m", tiny_llava, "-o", ref_pairs,
                                   "--batch-size", "3")  # fmt: skip
    assert code == 0, err[-3000:]
    records = [json.loads(line) for line in read_lines(ref_pairs)]
    assert len(records) == 8 and all(
        r["ref_chosen_logps"] < 0 and r["ref_model"] == tiny_llava for r in records
    )
    assert "8 in, 8 out" in err
    out = str(tmp_path / "out")
    code, stdout, err = main_in_process(
        capsys, "train", ref_pairs, "--model", tiny_llava, "--output-dir", out, "--max-steps", "2", *FAST
    )
    assert code == 0, err[-3000:]
    summary = json.loads(stdout)
    assert summary["reference"] == "precomputed"
    assert summary["first_loss"] == pytest.approx(0.6931, abs=1e-4)  # same start as with a live reference
    assert summary["last_loss"] < summary["first_loss"]


def test_ref_logps_is_an_ordinary_stage(tiny_llava, toy_pairs, tmp_path, capsys):
    """Shards concatenate to the whole pass, --resume skips what is done, a bad pair fails or is skipped."""
    from clipdpo_cli.io.shard import Shard, shard_key

    whole = str(tmp_path / "whole.jsonl")
    code, _, err = main_in_process(capsys, "ref-logps", toy_pairs, "-m", tiny_llava, "-o", whole, "-q")
    assert code == 0 and err == "", err[-3000:]
    # the toy images' paths differ in one digit: a shard count that splits them (CRC32 mod 2 may not)
    keys = [shard_key(json.loads(line)) for line in read_lines(toy_pairs)]
    n = next(n for n in (2, 3, 4, 5, 6, 7) if len({k for k in range(n) for key in keys
                                                    if Shard.parse(f"{k}/{n}").owns(key)}) > 1)  # fmt: skip
    shards = [str(tmp_path / f"shard{k}.jsonl") for k in range(n)]
    for k, path in enumerate(shards):
        code, _, err = main_in_process(capsys, "ref-logps", toy_pairs, "-m", tiny_llava, "-o", path,
                                       "--shard", f"{k}/{n}", "--batch-size", "2")  # fmt: skip
        assert code == 0, err[-3000:]
    by_id = {r["id"]: r for r in map(json.loads, read_lines(whole))}
    parts = [json.loads(line) for path in shards for line in read_lines(path)]
    assert sorted(r["id"] for r in parts) == sorted(by_id) and len(by_id) == 8
    assert sum(1 for path in shards if read_lines(path)) > 1  # really split
    for r in parts:  # batch size and shard do not change a value
        assert r["ref_chosen_logps"] == pytest.approx(by_id[r["id"]]["ref_chosen_logps"], abs=1e-4)
        assert r["ref_rejected_logps"] == pytest.approx(by_id[r["id"]]["ref_rejected_logps"], abs=1e-4)
    # --resume after a crash: the ids written are done, only the rest is computed and appended
    resumed = str(tmp_path / "resumed.jsonl")
    with open(resumed, "w") as fh:
        fh.writelines(read_lines(whole)[:3])
    args = ("-m", tiny_llava, "-o", resumed, "--resume")
    code, _, err = main_in_process(capsys, "ref-logps", toy_pairs, *args)
    assert code == 0, err[-3000:]
    assert sorted(json.loads(line)["id"] for line in read_lines(resumed)) == sorted(by_id)
    assert "5 in, 5 out; 3 already done (resume)" in err
    # a pair without its rejected answer: one line naming it, or skipped and counted
    bad = tmp_path / "bad.jsonl"
    bad.write_text(read_lines(toy_pairs)[0] + json.dumps({"id": "x", "image": "a.png", "prompt": "p",
                                                          "chosen": "c"}) + "\n")  # fmt: skip
    code, out, err = main_in_process(capsys, "ref-logps", str(bad), "-m", tiny_llava, "--on-error", "skip")
    assert code == 0 and [json.loads(line)["id"] for line in out.splitlines()] == ["p0"]
    assert "skipped bad 1 " in err


def test_ref_logps_stage_fails_on_a_bad_pair_or_skips_it(toy_pairs):
    from clipdpo_cli.io.errors import RecordFailure
    from clipdpo_cli.io.stage import StageContext
    from clipdpo_cli.stages.ref_logps import add_ref_logps

    class FakeScorer:  # log-probs from the answers' lengths; the images arrive decoded
        name = "fake"

        def __call__(self, rows):
            assert all(hasattr(row["image"], "size") for row in rows)
            return [-len(r["chosen"]) for r in rows], [-len(r["rejected"]) for r in rows]

    good = [json.loads(line) for line in read_lines(toy_pairs)[:3]]
    missing = {"id": "x", "image": good[0]["image"], "prompt": "p", "chosen": "c"}
    records = [good[0], missing, *good[1:]]
    with pytest.raises(RecordFailure, match="record x"):
        list(add_ref_logps(iter(records), FakeScorer(), StageContext("ref-logps"), batch_size=2))
    ctx = StageContext("ref-logps", on_error="skip")
    out = list(add_ref_logps(iter(records), FakeScorer(), ctx, batch_size=2, workers=2))
    assert [r["id"] for r in out] == ["p0", "p1", "p2"] and sum(ctx.stats.skipped.values()) == 1
    assert out[0] == {**good[0], "ref_chosen_logps": -21, "ref_rejected_logps": -11, "ref_model": "fake"}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--model", "/no/such/model", "--output-dir", "o"), 1, "model directory not found: /no/such/model"),
        (("--model", "MODEL", "--output-dir", "o", "--loss", "nope"), 2, "--loss: unknown loss 'nope'"),
        (("--model", "MODEL"), 2, "--output-dir is required"),
        (
            ("--model", "MODEL", "--output-dir", "o", "--config", "CONFIG"),
            2,
            "no clipdpo equivalent for not_a_field (it reads",
        ),
        (("--model", "MODEL", "--output-dir", "o", "--ref-logps", "precomputed"), 1, "not every pair has"),
        (
            ("--model", "MODEL", "--output-dir", "o", "--loss", "kto", "--per-device-batch-size", "1"),
            2,
            "at least 2",
        ),
        (("--model", "MODEL", "--output-dir", "o", "--resume-from-checkpoint", "last"), 1, "no checkpoint-N"),
    ],
)
def test_user_mistakes_are_one_line_errors(args, code, message, tiny_llava, toy_pairs, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("not_a_field: 1\nbeta: 0.2\n")
    args = tuple(tiny_llava if a == "MODEL" else str(config) if a == "CONFIG" else a for a in args)
    args = tuple(str(tmp_path / "o") if a == "o" else a for a in args)
    got, out, err = main_in_process(capsys, "train", toy_pairs, *args)
    assert got == code, err[-2000:]
    assert message in err and "Traceback" not in err and out == ""
    assert len([line for line in err.splitlines() if "error" in line]) == 1


def test_typed_options_are_explicit_and_config_fills_the_rest(monkeypatch, capsys, toy_pairs, tmp_path):
    import clipdpo_cli.train.trainer as trainer

    seen = {}

    def fake_run_training(settings):
        seen["settings"] = settings
        raise SystemExit(0)

    monkeypatch.setattr(trainer, "run_training", fake_run_training)
    config = tmp_path / "c.yaml"
    config.write_text("beta: 0.2\nlearning_rate: 0.00001\n")
    args = ("--model", "m", "--output-dir", str(tmp_path), "--beta", "0.3", "--config", str(config))
    code, _, err = main_in_process(capsys, "train", toy_pairs, *args)
    assert code == 0, err
    s = seen["settings"]
    assert s.explicit == frozenset({"beta"})  # typed --beta; --learning-rate left at its default
    assert (s.beta, s.learning_rate, s.extra) == (0.3, 1e-5, {})  # the config's option names set options


def test_config_file_fills_in_and_options_win(tiny_llava, toy_pairs, tmp_path):
    from clipdpo_cli.train.build import make_config
    from clipdpo_cli.train.losses import resolve_loss
    from clipdpo_cli.train.settings import TrainSettings

    s = TrainSettings(
        pairs=toy_pairs,
        model=tiny_llava,
        output_dir=str(tmp_path),
        beta=0.3,
        extra={"beta": 0.2, "learning_rate": 1e-5, "max_grad_norm": 0.5},
        explicit=frozenset({"beta"}),
    )
    config = make_config(s, resolve_loss("dpo"))
    assert (config.beta, config.learning_rate, config.max_grad_norm) == (0.3, 1e-5, 0.5)
    # the paper's defaults otherwise
    d = make_config(TrainSettings(pairs="-", model="m", output_dir=str(tmp_path)), resolve_loss("dpo"))
    assert (
        d.learning_rate,
        d.lr_scheduler_type.value,
        d.warmup_steps,
        d.weight_decay,
        d.num_train_epochs,
    ) == (5e-7, "cosine", 0.01, 0.0, 1.0)
    assert d.per_device_train_batch_size * d.gradient_accumulation_steps == 256 and d.loss_type == ["sigmoid"]
    assert d.max_length is None and d.beta == 0.1


def test_lora_trains_and_saves_a_merged_model(tiny_llava, toy_pairs, tmp_path, capsys):
    from clipdpo_cli.train.loading import load_policy

    out = str(tmp_path / "lora")
    code, stdout, err = main_in_process(capsys, "train", toy_pairs, "--model", tiny_llava, "--output-dir",
                                        out, "--max-steps", "2", "--lora", "--lora-r", "4", *FAST)
    assert code == 0, err[-3000:]
    assert json.loads(stdout)["reference"] == "adapter"
    assert not os.path.exists(os.path.join(out, "adapter_config.json"))  # merged: a plain model directory
    before, after = load_policy(tiny_llava).state_dict(), load_policy(out).state_dict()
    changed = {k for k in before if not (before[k] == after[k]).all()}
    assert changed and all("language_model" in k and "proj" in k for k in changed)
