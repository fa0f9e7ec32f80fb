"""The pipeline with FAKE models (fast, exact numbers): caching, resume, sharding, skips, averages, table.

The fake LVLM names the colour of the shape but calls blue 'green'; the fake encoder embeds a text by
the colour words it contains and an image by its shape's colour. So captions give 8/12 right (blue
triangles become green squares) and the image baseline 12/12: numbers checked by hand below.
"""

from __future__ import annotations

import json

import pytest
import torch

from clipdpo_cli.eval.zeroshot.datasets import read_image_folder
from clipdpo_cli.eval.zeroshot.pipeline import (
    EvalSet,
    ZeroshotSettings,
    evaluate,
    format_table,
    select_samples,
)
from clipdpo_cli.eval.zeroshot.resources import choose_prompts
from clipdpo_cli.io.errors import InputError, RecordFailure, UsageError
from clipdpo_cli.io.shard import Shard
from clipdpo_cli.models.scorer import CosineScore

COLOURS = ("red", "green", "blue")


def dominant(img) -> str:
    counts = sorted(img.getcolors(40 * 40), reverse=True)
    colour = next(c for _, c in counts if c != (245, 245, 245))
    return COLOURS[max(range(3), key=lambda i: colour[i])]


class FakeLvlm:
    """FAKE LVLM: describes the shape's colour, but says 'green' for blue."""

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, images, prompts, max_new_tokens=64, temperature=1.0, top_p=1.0, seed=None):
        self.calls += len(images)
        assert temperature == 0.0 and len(images) == len(prompts)
        return [f" a {dominant(img).replace('blue', 'green')} shape in the middle " for img in images]


class FakeEncoder(CosineScore):
    """FAKE text/image encoder: 3-d colour-word vectors (L2-normalised); similarity 100 x cosine."""

    def encode_texts(self, texts):
        rows = [[float(c in t) + 0.01 for c in COLOURS] for t in texts]
        return torch.nn.functional.normalize(torch.tensor(rows), dim=-1)

    def encode_images(self, images):
        rows = [[float(dominant(img) == c) for c in COLOURS] for img in images]
        return torch.tensor(rows)


def make_set(folder) -> EvalSet:
    data = read_image_folder(str(folder))
    return EvalSet(data, choose_prompts(data))


def run(sets, log=None, lvlm=None, **kw):
    settings = ZeroshotSettings(text_encoder="fake-encoder", **kw)
    lines = []
    results = evaluate(
        sets,
        settings,
        log or lines.append,
        load_lvlm=(lambda: lvlm) if lvlm is not None else _must_not_load,
        load_text_encoder=FakeEncoder,
    )
    return results, lines


def _must_not_load():
    raise AssertionError("the LVLM must not be loaded when every caption is cached")


def test_hand_computed_numbers_and_captions_cache(shapes_dir, tmp_path):
    cache = tmp_path / "caps.jsonl"
    lvlm = FakeLvlm()
    results, log = run([make_set(shapes_dir)], lvlm=lvlm, model="fake-lvlm", captions=[str(cache)],
                       captions_out=str(cache), baseline="clip", batch_size=5,
                       predictions=str(tmp_path / "pred.jsonl"))  # fmt: skip
    (r,) = results
    assert r["n_classes"] == 3 and r["model"] == "fake-lvlm" and r["text_encoder"] == "fake-encoder"
    assert r["caption"]["n"] == 12
    assert r["caption"]["top1"] == pytest.approx(100 * 8 / 12)
    assert r["caption"]["top5"] == pytest.approx(100.0)
    assert r["caption"]["mean_per_class_recall"] == pytest.approx(100 * (1 + 1 + 0) / 3)
    assert r["clip"]["top1"] == pytest.approx(100.0) and r["clip"]["n"] == 12
    assert lvlm.calls == 12
    records = [json.loads(line) for line in cache.read_text().splitlines()]
    assert len(records) == 12 and len({rec["id"] for rec in records}) == 12
    first = records[0]
    assert first["kind"] == "caption" and first["model"] == "fake-lvlm" and first["text"].startswith("a ")
    assert {first["dataset"], first["key"].split("/")[0]} <= {
        "shapes",
        "blue_triangle",
        "green_square",
        "red_circle",
    }
    blue = [rec for rec in records if rec["class"] == "blue_triangle"]
    assert all(rec["text"] == "a green shape in the middle" and rec["label"] == 0 for rec in blue)

    preds = [json.loads(line) for line in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert len(preds) == 12
    for p in preds:
        wrong = p["class"] == "blue_triangle"
        assert p["caption_pred_class"] == ("green_square" if wrong else p["class"])
        assert p["clip_pred_class"] == p["class"] and p["clip_pred"] == p["label"] == p["clip_top5"][0]
        assert len(p["caption_top5"]) == 3 and p["caption"].startswith("a ")

    # Re-scoring: every caption is cached, so the LVLM is not loaded (with or without --model) and the
    # cache file is left as it was.
    before = cache.read_bytes()
    again, log = run(
        [make_set(shapes_dir)], model="fake-lvlm", captions=[str(cache)], captions_out=str(cache)
    )
    assert again[0]["caption"] == r["caption"] and cache.read_bytes() == before
    assert "shapes: 12 images, 12 captions cached" in log
    no_model, _ = run([make_set(shapes_dir)], captions=[str(cache)])
    assert no_model[0]["caption"] == r["caption"] and no_model[0]["model"] == "fake-lvlm"


def test_resume_after_a_killed_run(shapes_dir, tmp_path):
    cache = tmp_path / "caps.jsonl"
    run([make_set(shapes_dir)], lvlm=FakeLvlm(), model="m", captions=[str(cache)], captions_out=str(cache),
        limit=5)  # fmt: skip
    with open(cache, "ab") as fh:
        fh.write(b'{"id": "half a li')  # what a kill in the middle of a write leaves
    lvlm = FakeLvlm()
    results, _ = run([make_set(shapes_dir)], lvlm=lvlm, model="m", captions=[str(cache)],
                     captions_out=str(cache))  # fmt: skip
    assert lvlm.calls == 7  # only the captions the first run did not write
    lines = cache.read_text().splitlines()
    assert len(lines) == 12 and all(json.loads(line)["id"] for line in lines)
    assert results[0]["caption"]["top1"] == pytest.approx(100 * 8 / 12)


def test_shards_caption_disjoint_parts_then_score_together(shapes_dir, tmp_path):
    parts = []
    for k in range(2):
        out = tmp_path / f"caps.{k}.jsonl"
        results, log = run([make_set(shapes_dir)], lvlm=FakeLvlm(), model="m", captions=[str(out)],
                           captions_out=str(out), shard=f"{k}/2")  # fmt: skip
        assert results == [] and any("once every shard is done" in line for line in log)
        parts.append({json.loads(line)["image"] for line in out.read_text().splitlines()})
    # each shard captions exactly the images the runner's shard owns by path (io/shard.py); which ones that
    # is depends on the temporary folder's path, so both parts are compared with the rule, not a count
    for k, part in enumerate(parts):
        assert part == {image for image in parts[0] | parts[1] if Shard(k, 2).owns(image)}
    assert not parts[0] & parts[1] and len(parts[0] | parts[1]) == 12
    results, _ = run([make_set(shapes_dir)], captions=[str(tmp_path / "caps.*.jsonl")], baseline="clip")
    assert results[0]["caption"]["top1"] == pytest.approx(100 * 8 / 12)


def test_missing_captions_without_model_is_a_clear_error(shapes_dir, tmp_path):
    cache = tmp_path / "caps.jsonl"
    run([make_set(shapes_dir)], lvlm=FakeLvlm(), model="m", captions=[str(cache)], captions_out=str(cache),
        limit=3)  # fmt: skip
    with pytest.raises(InputError, match="9 of 12 images have no cached caption.*run with --model"):
        run([make_set(shapes_dir)], captions=[str(cache)])
    with pytest.raises(UsageError, match=r"sharding \(--shard, or SLURM array variables\) needs --captions"):
        run([make_set(shapes_dir)], lvlm=FakeLvlm(), model="m", shard="0/2")
    with pytest.raises(UsageError, match="nothing to evaluate"):
        run([make_set(shapes_dir)], use_captions=False)


def test_baseline_only_limit_average_and_table(shapes_dir, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(shapes_dir, other)
    sets = [make_set(shapes_dir), make_set(other)]
    results, _ = run(sets, use_captions=False, baseline="clip", limit=5)
    assert [r["dataset"] for r in results] == ["shapes", "other", "average"]
    assert all(r["clip"]["n"] == 5 for r in results[:2]) and "caption" not in results[0]
    assert results[2]["clip"]["top1"] == pytest.approx(100.0) and results[2]["n_datasets"] == 2
    table = format_table(results)
    lines = table.splitlines()
    assert lines[1].split()[-3:] == ["shapes", "other", "Avg"]
    assert lines[2].startswith("fake-encoder (image, CLIP baseline)") and lines[2].split()[-1] == "100.0"


def test_limit_is_a_stable_pick(shapes_dir):
    data = read_image_folder(str(shapes_dir))
    picked = {s.key for s in select_samples(data, 5)}
    data.samples.reverse()
    assert {s.key for s in select_samples(data, 5)} == picked and len(picked) == 5


def test_unreadable_image_fails_or_is_skipped(shapes_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(shapes_dir, broken)
    (broken / "red_circle" / "zz_corrupt.png").write_bytes(b"not an image")
    with pytest.raises(RecordFailure, match="cannot decode image .*zz_corrupt.png.*--on-error skip"):
        run([make_set(broken)], lvlm=FakeLvlm(), model="m", baseline="clip")
    results, _ = run([make_set(broken)], lvlm=FakeLvlm(), model="m", baseline="clip", on_error="skip")
    assert results[0]["n_skipped"] == 1
    assert results[0]["caption"]["n"] == 12 and results[0]["clip"]["n"] == 12


def test_captions_of_several_models_need_model_choice(shapes_dir, tmp_path):
    cache = tmp_path / "caps.jsonl"
    for model in ("m1", "m2"):
        run(
            [make_set(shapes_dir)],
            lvlm=FakeLvlm(),
            model=model,
            captions=[str(cache)],
            captions_out=str(cache),
        )
    assert len(cache.read_text().splitlines()) == 24
    with pytest.raises(UsageError, match=r"several models \(m1, m2\).*--model"):
        run([make_set(shapes_dir)], captions=[str(cache)])
    results, _ = run([make_set(shapes_dir)], model="m2", captions=[str(cache)], captions_out=str(cache))
    assert results[0]["model"] == "m2" and results[0]["caption"]["n"] == 12


def test_per_dataset_option_files(tmp_path):
    from clipdpo_cli.eval.zeroshot.sets import per_dataset_files

    assert per_dataset_files(["a.txt"], "--classnames", ["shapes"]) == {None: "a.txt"}
    assert per_dataset_files(["flowers=f.txt", "Food-101=g.txt"], "--classnames", ["flowers", "food101"]) == {
        "flowers": "f.txt",
        "food101": "g.txt",
    }
    odd = tmp_path / "x=y.txt"
    odd.write_text("n\n")
    assert per_dataset_files([str(odd)], "--classnames", ["shapes"]) == {None: str(odd)}
    with pytest.raises(UsageError, match="with several datasets, write --templates DATASET=FILE"):
        per_dataset_files(["t.txt"], "--templates", ["a", "b"])
    with pytest.raises(UsageError, match="'mnist' is not one of the datasets"):
        per_dataset_files(["mnist=t.txt"], "--templates", ["a", "b"])
    with pytest.raises(UsageError, match="'pets' is not one of the datasets"):
        per_dataset_files(["pets=t.txt"], "--templates", ["flowers"])


def test_captioning_and_the_image_baseline_print_progress_lines(shapes_dir, capsys):
    """Off a terminal each phase prints a line every progress_every seconds: images done of the total."""
    import time

    class SlowLvlm(FakeLvlm):
        def generate(self, images, prompts, **kw):
            time.sleep(0.1)
            return super().generate(images, prompts, **kw)

    class SlowEncoder(FakeEncoder):
        def encode_images(self, images):
            time.sleep(0.1)
            return super().encode_images(images)

    settings = ZeroshotSettings(text_encoder="fake-encoder", model="fake-lvlm", baseline="clip", batch_size=3,
                        progress_every=0.05)  # fmt: skip
    evaluate([make_set(shapes_dir)], settings, lambda _msg: None, load_lvlm=SlowLvlm,
             load_text_encoder=SlowEncoder)  # fmt: skip
    err = capsys.readouterr().err.splitlines()
    for phase in ("captions", "clip baseline"):
        lines = [line for line in err if line.startswith(f"clipdpo eval-zeroshot {phase}: ")
                 and " in, " not in line]  # not the runner's summary line  # fmt: skip
        assert lines and all("/12 images (" in line for line in lines), err
    quiet = ZeroshotSettings(text_encoder="fake-encoder", model="fake-lvlm", batch_size=3,
                             progress_every=0.05, quiet=True)  # fmt: skip
    evaluate([make_set(shapes_dir)], quiet, print, load_lvlm=SlowLvlm, load_text_encoder=FakeEncoder)
    assert capsys.readouterr().err == ""


def test_shards_are_the_runners_by_image_and_from_slurm(shapes_dir, tmp_path, monkeypatch, capsys):
    """--shard K/N is the I/O runner's (io/shard.py): an image's caption is written by the shard that owns
    its path, as in every other command; without --shard, SLURM's array variables choose, said on stderr."""
    from clipdpo_cli.io.shard import Shard, shard_key

    samples = select_samples(read_image_folder(str(shapes_dir)), None)
    for k in range(2):
        out = tmp_path / f"caps.{k}.jsonl"
        run([make_set(shapes_dir)], lvlm=FakeLvlm(), model="m", captions=[str(out)], shard=f"{k}/2")
        written = {json.loads(line)["image"] for line in out.read_text().splitlines()}
        assert written == {s.image for s in samples if Shard(k, 2).owns(shard_key({"image": s.image}))}
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    out = tmp_path / "caps.slurm.jsonl"
    results, _ = run([make_set(shapes_dir)], lvlm=FakeLvlm(), model="m", captions=[str(out)])
    assert results == [] and out.read_text() == (tmp_path / "caps.1.jsonl").read_text()
    assert "processing only shard 1/2 from SLURM_ARRAY_TASK_ID=1" in capsys.readouterr().err


def test_unreadable_image_follows_the_runners_error_policy_in_the_baseline(shapes_dir, tmp_path):
    """--on-error is the runner's policy in the CLIP baseline too (io.stage.StageContext.bad): fail stops
    with the record and its image named, skip counts the image and leaves it out."""
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(shapes_dir, broken)
    (broken / "red_circle" / "zz_corrupt.png").write_bytes(b"not an image")
    pattern = r"record broken/red_circle/zz_corrupt.png \(image .*zz_corrupt.png\): cannot decode image"
    with pytest.raises(RecordFailure, match=pattern + r".*use --on-error skip to skip such records"):
        run([make_set(broken)], use_captions=False, baseline="clip")
    results, _ = run([make_set(broken)], use_captions=False, baseline="clip", on_error="skip")
    assert results[0]["n_skipped"] == 1 and results[0]["clip"]["n"] == 12


def test_config_file_sets_the_options(shapes_dir, tmp_path):
    """--config FILE: eval-zeroshot's options by name (its settings' fields), the command line winning."""
    from tests.conftest import run_in_process

    config = tmp_path / "zeroshot.yaml"
    config.write_text("shard: 0/2\nlimit: 3\n")
    done = run_in_process("eval-zeroshot", str(shapes_dir), "--config", str(config))
    assert done.returncode == 2 and "--shard splits the captioning: it needs --model" in done.stderr
    done = run_in_process("eval-zeroshot", str(shapes_dir), "--config", str(config), "--shard", "0/1")
    assert done.returncode == 2 and "nothing to evaluate" in done.stderr
