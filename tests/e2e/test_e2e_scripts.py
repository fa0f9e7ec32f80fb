"""The shipped shell recipes (examples/pipeline.sh, examples/slurm/*) run on tiny models, with a fake SLURM
environment (array variables, and `srun` / `scontrol` stand-ins), so that they cannot rot."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import orjson
import pytest

from tests.conftest import REPO, cli_env

pytestmark = pytest.mark.slow

SRUN = """#!/bin/bash
# stand-in for srun: log the call (to $SRUN_LOG), drop srun's own options, run the command --ntasks times
# one after the other, each task with its SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID
[ -z "${SRUN_LOG:-}" ] || printf '%s\\n' "$*" >> "$SRUN_LOG"
ntasks=1
while [[ "${1:-}" == --* ]]; do
  case $1 in --ntasks=*) ntasks=${1#--ntasks=} ;; esac
  shift
done
for ((k = 0; k < ntasks; k++)); do
  SLURM_PROCID=$k SLURM_LOCALID=$k SLURM_NTASKS=$ntasks "$@" || exit $?
done
"""
SCONTROL = """#!/bin/bash
echo localhost
"""


def read(path):
    with open(path, "rb") as fh:
        return [orjson.loads(line) for line in fh]


@pytest.fixture(scope="module")
def assets(tmp_path_factory, tiny_llava_path, tiny_clip_path, tiny_llm_path):
    """The demo's assets, its three models being the suite's (the same builders with the same arguments as
    build_demo_assets, built once per test run), so that only the images and data are made here."""
    from clipdpo_mini.models.tiny_llm import DEMO_REPLY
    from tests.e2e.demo_assets import build_demo_assets

    out = tmp_path_factory.mktemp("assets")
    models = {
        "llava": tiny_llava_path,
        "clip": tiny_clip_path(0).removeprefix("local-dir:"),
        "llm": tiny_llm_path(reply=DEMO_REPLY, num_layers=1),
    }
    (out / "models").mkdir()
    for name, path in models.items():
        (out / "models" / name).symlink_to(path, target_is_directory=True)
    built = build_demo_assets(str(out), n_images=6, per_class=1)
    assert all(os.path.realpath(p) == os.path.realpath(models[n]) for n, p in
               (("llava", built.llava), ("clip", built.clip.removeprefix("local-dir:")), ("llm", built.llm)))
    return built


@pytest.fixture(scope="module")
def shell_env(tmp_path_factory):
    bin_dir = tmp_path_factory.mktemp("fake-slurm-bin")
    for name, text in (("srun", SRUN), ("scontrol", SCONTROL)):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    env = cli_env(HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore::FutureWarning")
    env["PATH"] = os.pathsep.join([str(bin_dir), os.path.dirname(sys.executable), env["PATH"]])
    return env


def run(script, env, *args, cwd=REPO, **extra):
    r = subprocess.run(
        ["bash", str(REPO / script), *args], capture_output=True, env={**env, **extra}, cwd=cwd, timeout=900
    )
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    return r


def test_slurm_caption_score_arrays_then_merge(assets, shell_env, tmp_path):
    out = tmp_path / "run"
    tiny = {
        "LVLM": assets.llava,
        "SCORER": assets.clip,
        "CAPTION_ARGS": "--samples-per-prompt 1 --max-new-tokens 8",
        "SCORE_ARGS": "--precision fp32 --workers 0",
    }
    for task in ("0", "1"):  # an array of 2 tasks
        slurm = {"SLURM_ARRAY_TASK_ID": task, "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "0"}
        run("examples/slurm/caption.sbatch", shell_env, assets.images, str(out), **tiny, **slurm)
        run("examples/slurm/score.sbatch", shell_env, str(out), **tiny, **slurm)
    shards = [read(out / "shards" / f"captions.{k}.jsonl") for k in (0, 1)]
    images = sorted(os.listdir(assets.images))
    # every image is captioned in exactly one shard, the one its shard key picks, with its 5 prompts
    from clipdpo_cli.io.shard import Shard

    owners = {}
    for k, shard in enumerate(shards):
        for r in shard:
            assert owners.setdefault(r["image"], k) == k
            assert Shard(k, 2).owns(r["image"])
    assert sorted(os.path.basename(i) for i in owners) == images
    assert sum(map(len, shards)) == len(images) * 5
    scored = [read(out / "shards" / f"scored.{k}.jsonl") for k in (0, 1)]
    assert [[r["id"] for r in s] for s in scored] == [[r["id"] for r in s] for s in shards]
    assert all("clip_score" in r and "category" in r for s in scored for r in s)
    run(
        "examples/slurm/merge.sh",
        shell_env,
        str(out),
        FILTER_ARGS="--min-caption-score none --text-keep 1",
        PAIR_ARGS="--min-margin 0.1 --max-length-diff 1",
    )
    assert len(read(out / "scored.jsonl")) == len(images) * 5
    pairs = read(out / "pairs.jsonl")
    assert 0 < len(pairs) <= len(images) and len({p["image"] for p in pairs}) == len(pairs)


def test_slurm_train_sbatch_single_node(assets, shell_env, tmp_path):
    """Submitted from a folder of its own (sbatch runs a copy of the script elsewhere): relative PAIRS and
    OUT start at SLURM_SUBMIT_DIR, --deepspeed zero3 is the package's config, and the reference pass reads
    the images from the same IMAGE_ROOT with the same --max-length as training. The reference pass is one
    srun step of one task per GPU (2 here), task K running --shard K/2, its shard renamed when complete and
    the shards concatenated in order."""
    import shutil

    from clipdpo_cli.io.shard import Shard
    from clipdpo_cli.train.refcache import RefScorer

    submit, root, spool = tmp_path / "submit", tmp_path / "images", tmp_path / "spool"
    for folder in (submit, root, spool):
        folder.mkdir()
    rows = []
    for i, name in enumerate(sorted(os.listdir(assets.images))[:4]):
        shutil.copy(os.path.join(assets.images, name), root / name)
        rows.append(
            {"id": f"p{i}", "image": name, "kind": "caption", "prompt": "Describe the image.",
             "chosen": "a red ball on the green grass", "rejected": "a green kite"}
        )  # fmt: skip
    with open(submit / "pairs.jsonl", "wb") as fh:
        fh.writelines(orjson.dumps(r) + b"\n" for r in rows)
    run(
        "examples/slurm/train.sbatch",
        shell_env,
        cwd=spool,
        SLURM_SUBMIT_DIR=str(submit),
        PAIRS="pairs.jsonl",
        MODEL=assets.llava,
        OUT="model",
        IMAGE_ROOT=str(root),
        MAX_LENGTH="30",
        GPUS_PER_NODE="1",
        SLURM_NNODES="1",
        SLURM_NODEID="0",
        SLURM_JOB_NODELIST="localhost",
        MASTER_PORT="29611",
        REPORT_TO="none",
        TRAIN_ARGS="--max-steps 1 --per-device-batch-size 2 --batch-size 4",  # 2 accumulation steps, not 32
        REF_TASKS_PER_NODE="2",  # two "GPUs" for the reference pass (training: GPUS_PER_NODE, one process)
        SRUN_LOG=str(tmp_path / "srun.log"),
    )
    steps = (tmp_path / "srun.log").read_text().split("\n--kill-on-bad-exit")
    ref_step, train_step = steps[0], steps[-1]
    one_task_per_gpu = "--kill-on-bad-exit=1 --nodes=1 --ntasks=2 --ntasks-per-node=2 --gpus-per-task=1 "
    assert ref_step.startswith(one_task_per_gpu)
    assert "clipdpo ref-logps" in ref_step and '--shard "$SLURM_PROCID/$SLURM_NTASKS"' in ref_step
    assert "clipdpo train" in train_step and "ref-logps" not in train_step
    ref = read(submit / "pairs.ref.jsonl")
    shards = [read(submit / "pairs.ref.jsonl.shards" / f"{k}-of-2.jsonl") for k in (0, 1)]
    assert ref == shards[0] + shards[1]  # merged in shard order
    assert sorted(r["id"] for r in ref) == ["p0", "p1", "p2", "p3"]
    by_id = {r["id"]: r for r in rows}
    for k, shard in enumerate(shards):  # task K ran --shard K/2: it holds exactly its images' pairs
        assert {r["id"] for r in shard} == {i for i, r in by_id.items() if Shard(k, 2).owns(r["image"])}
    assert not list(submit.rglob("*.partial"))
    # the pass cut prompt + answer to 30 text tokens (26 of them the prompt's), as training does
    scorer = RefScorer(assets.llava, max_length=30, precision="fp32")
    in_order = [by_id[r["id"]] for r in ref]
    chosen, rejected = scorer([{**r, "image": str(root / r["image"])} for r in in_order])
    assert [r["ref_chosen_logps"] for r in ref] == pytest.approx(chosen, abs=1e-4)
    assert [r["ref_rejected_logps"] for r in ref] == pytest.approx(rejected, abs=1e-4)
    first = {**in_order[0], "image": str(root / in_order[0]["image"])}
    full, _ = RefScorer(assets.llava, precision="fp32")([first])
    assert full[0] < chosen[0] - 1  # uncut, the 12-token answer scores far lower
    out = submit / "model"
    assert (out / "config.json").exists() and any(p.name.endswith(".safetensors") for p in out.iterdir())
    assert orjson.loads((out / "train_summary.json").read_bytes())["reference"] == "precomputed"


def test_pipeline_sh_with_tiny_models(assets, shell_env, tmp_path):
    """Every model pass as 2 shard processes (NGPUS=2: --device auto is the CPU here), merged."""
    out = tmp_path / "run"
    run(
        "examples/pipeline.sh",
        shell_env,
        NGPUS="2",
        IMAGES=assets.images,
        OUT=str(out),
        LVLM=assets.llava,
        LLM=assets.llm,
        SCORER=assets.clip,
        AMBER=assets.amber,
        CAPTION_ARGS="--samples-per-prompt 1 --max-new-tokens 8",
        ASK_ARGS="--temperature 0 --max-new-tokens 200",
        SCORE_ARGS="--precision fp32",
        FILTER_ARGS="--min-caption-score none --min-question-score none --text-keep 1",
        PAIR_ARGS="--min-margin 0.1 --max-length-diff 1 --min-answer-score none",
        TRAIN_ARGS="--max-steps 1 --per-device-batch-size 2 --batch-size 2",
        EVAL_ARGS="--max-new-tokens 8",
    )
    n_images = len(os.listdir(assets.images))
    captions = read(out / "captions.jsonl")
    assert len(captions) == n_images * 5
    from clipdpo_cli.io.shard import Shard

    shards = [read(out / "captions.jsonl.shards" / f"{k}-of-2.jsonl") for k in (0, 1)]
    assert captions == shards[0] + shards[1]  # merged in shard order
    assert all(Shard(k, 2).owns(r["image"]) for k in (0, 1) for r in shards[k])
    answers = [read(out / "amber-responses.jsonl.shards" / f"{k}-of-2.jsonl") for k in (0, 1)]
    assert read(out / "amber-responses.jsonl") == answers[0] + answers[1]
    assert len(read(out / "scored-captions.jsonl")) == n_images * 5
    questions = read(out / "scored-questions.jsonl")
    assert len(questions) == len(read(out / "questions.jsonl")) > 0
    assert len(read(out / "pairs.jsonl")) >= len(questions)
    assert orjson.loads((out / "train-summary.json").read_bytes())["steps"] == 1
    assert orjson.loads((out / "amber.json").read_bytes())["benchmark"] == "AMBER"
