"""`clipdpo train` on images that exist but do not decode (a truncated JPEG, a decompression bomb): checked
before training, one error line naming the pair, or skipped and counted under --on-error skip."""

from __future__ import annotations

import json
import os

import pytest

from clipdpo_cli.io.errors import InputError
from clipdpo_cli.io.jsonl import read_jsonl
from clipdpo_cli.train.data import collect_pairs
from tests.train.train_helpers import QUICK_TRAINING, run_cli, write_toy_pairs

FAST = ("--per-device-batch-size", "2", *QUICK_TRAINING)  # ends with --num-workers 0


def write_bad_images(folder: str) -> dict[str, str]:
    """A JPEG cut at 80% (its header intact: it opens, and PIL's verify() passes it) and a 20000x20000 PNG."""
    import numpy as np
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    full, cut, bomb = (os.path.join(folder, n) for n in ("full.jpg", "cut.jpg", "bomb.png"))
    Image.fromarray(noise).save(full, quality=90)
    with open(full, "rb") as fh:
        data = fh.read()
    with open(cut, "wb") as fh:
        fh.write(data[: len(data) * 4 // 5])
    Image.new("1", (20000, 20000)).save(bomb)
    return {"truncated": cut, "bomb": bomb}


@pytest.fixture(scope="module")
def bad_pairs(tmp_path_factory) -> tuple[str, dict[str, str]]:
    """Six good pairs, then a pair on the truncated JPEG (id 'cut'), then one on the bomb (id 'bomb')."""
    folder = str(tmp_path_factory.mktemp("bad-images"))
    good = list(read_jsonl(write_toy_pairs(folder, n=6)))
    bad = write_bad_images(folder)
    records = [*good, {**good[0], "id": "cut", "image": bad["truncated"]}]
    records.append({**good[1], "id": "bomb", "image": bad["bomb"]})
    path = os.path.join(folder, "with-bad.jsonl")
    with open(path, "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)
    return path, bad


def one_bad_pair(path: str, keep: str, tmp_path) -> str:
    """The pairs of `path` with one bad pair only, `keep` (the seventh pair)."""
    records = [r for r in read_jsonl(path) if r["id"] not in ("cut", "bomb") or r["id"] == keep]
    out = tmp_path / f"{keep}.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(out)


@pytest.mark.parametrize(
    ("keep", "message"),
    [
        ("cut", "pair 7 (id cut): cannot decode image {image}: image file is truncated"),
        ("bomb", "pair 7 (id bomb): image too large: {image} (400,000,000 pixels, over the decompression "
                 "bomb limit, PIL.Image.MAX_IMAGE_PIXELS = 89,478,485)"),
    ],
)  # fmt: skip
def test_an_image_that_does_not_decode_is_one_line_before_training(
    keep, message, bad_pairs, tiny_llava, tmp_path
):
    """With the default DataLoader workers this used to be a worker's traceback mid-run (or a PIL one)."""
    path, bad = bad_pairs
    pairs = one_bad_pair(path, keep, tmp_path)
    out = str(tmp_path / "out")
    result = run_cli("train", pairs, "--model", tiny_llava, "--output-dir", out, "--max-steps", "4",
                     *FAST[:-2])  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    image = bad["truncated" if keep == "cut" else "bomb"]
    assert lines[-1].startswith("clipdpo train: error: " + message.format(image=image)), lines[-1]
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not os.path.exists(os.path.join(out, "model.safetensors"))


def test_on_error_skip_skips_and_counts_images_that_do_not_decode(bad_pairs, tiny_llava, tmp_path):
    path, _ = bad_pairs
    out = str(tmp_path / "out")
    result = run_cli("train", path, "--model", tiny_llava, "--output-dir", out, "--max-steps", "1",
                     "--on-error", "skip", *FAST)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["pairs"] == 6
    assert summary["skipped"] == {"corrupt image": 1, "image too large": 1}


def test_dry_run_checks_the_images_too(bad_pairs, tiny_llava):
    path, _ = bad_pairs
    result = run_cli("train", path, "--model", tiny_llava, "--dry-run", "--on-error", "skip")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["pairs"] == 6 and summary["skipped"] == {"corrupt image": 1, "image too large": 1}


def test_the_first_bad_pair_of_the_input_is_named_and_each_image_is_decoded_once(
    bad_pairs, tmp_path, monkeypatch
):
    import clipdpo_cli.train.data as data

    path, bad = bad_pairs
    records = list(read_jsonl(path))
    many = [{**r, "id": f"{r['id']}-{k}"} for k in range(300) for r in records[:6]]  # 6 images, 1800 pairs
    bad_first = [*many, {**records[0], "id": "x", "image": bad["bomb"]}, records[6]]
    for workers in (1, 4):
        with pytest.raises(InputError, match=r"pair 1801 \(id x\): image too large"):
            collect_pairs(bad_first, workers=workers)
    decoded: list[str] = []
    original = data.verify_image
    monkeypatch.setattr(data, "verify_image", lambda p: (decoded.append(p), original(p))[1])
    pairs = collect_pairs(many + records[6:], skip_bad=True, workers=4)
    assert len(pairs) == 1800 and pairs.skipped == {"corrupt image": 1, "image too large": 1}
    assert sorted(decoded) == sorted({r["image"] for r in records})
