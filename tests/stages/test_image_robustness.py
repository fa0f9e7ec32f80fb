"""Images and inputs that used to crash or confuse `caption`: decompression bombs, an image listed twice, a
prompts file given as a pipe (`--prompts <(...)`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import warnings

import pytest

from clipdpo_cli.io.errors import BadRecord, InputError
from clipdpo_cli.io.images import load_image, verify_image
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.stages.batched import prefetch_images
from clipdpo_cli.stages.caption import CaptionSettings, caption_records, read_prompts
from tests.conftest import cli_env, run_in_process
from tests.generation_helpers import run_cli

LIMIT = "decompression bomb limit, PIL.Image.MAX_IMAGE_PIXELS"
QUICK = ("--max-new-tokens", "2", "--seed", "0", "--device", "cpu")


@pytest.fixture(scope="module")
def bomb_folder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Two good images and a 20000x20000 PNG (400M pixels, past PIL's error at 178,956,970; 50 KB on disk)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("bomb")
    Image.new("RGB", (40, 30), "red").save(root / "a.png")
    Image.new("RGB", (32, 32), "blue").save(root / "c.jpg")
    Image.new("1", (20000, 20000)).save(root / "b_bomb.png")
    return str(root)


def stderr_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_a_decompression_bomb_is_a_bad_record_like_any_undecodable_image(tmp_path) -> None:
    from PIL import Image

    warn = tmp_path / "warn.png"  # 100M pixels: over MAX_IMAGE_PIXELS (PIL warns, then decodes 300 MB)
    Image.new("1", (10000, 10000)).save(warn)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for check in (load_image, verify_image):
            with pytest.raises(BadRecord, match=LIMIT) as info:
                check(str(warn))
            assert info.value.reason == "image too large" and str(warn) in str(info.value)
            assert "100,000,000 pixels" in str(info.value)
    assert not seen  # no stray DecompressionBombWarning line on stderr
    # decoded ahead in worker threads (caption's path): a value to count, not an exception from the pool
    records = [{"id": "w", "image": str(warn)}, {"id": "g", "image": str(tmp_path / "g.png")}]
    Image.new("RGB", (8, 8)).save(tmp_path / "g.png")
    got = [image for _, _, image in prefetch_images(((r, None) for r in records), workers=2)]
    assert isinstance(got[0], BadRecord) and got[0].reason == "image too large"
    assert got[1].size == (8, 8)


def test_verify_image_decodes_the_whole_file(tmp_path) -> None:
    """A truncated JPEG has an intact header (PIL's verify() passes it); the check must decode it."""
    import numpy as np
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "full.jpg", quality=90)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 4 // 5])
    verify_image(str(tmp_path / "full.jpg"))
    with pytest.raises(BadRecord, match="truncated") as info:
        verify_image("cut.jpg", str(tmp_path))
    assert info.value.reason == "corrupt image"


def test_caption_skips_a_decompression_bomb(tiny_llava_dir, bomb_folder) -> None:
    result = run_cli("caption", bomb_folder, "-m", tiny_llava_dir, *QUICK, "--on-error", "skip")
    assert result.returncode == 0, result.stderr[-3000:]
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted({r["image"] for r in out}) == [os.path.join(bomb_folder, n) for n in ("a.png", "c.jpg")]
    assert "Traceback" not in result.stderr
    assert "skipped bad 1 image too large" in result.stderr


def test_caption_stops_on_a_decompression_bomb_with_one_line(tiny_llava_dir, bomb_folder) -> None:
    result = run_cli("caption", bomb_folder, "-m", tiny_llava_dir, *QUICK)
    assert result.returncode == 1
    bomb = os.path.join(bomb_folder, "b_bomb.png")
    [line] = stderr_lines(result)
    assert line.startswith("clipdpo caption: error: ") and bomb in line and LIMIT in line
    assert "--on-error skip" in line


def test_an_image_listed_twice_is_captioned_once(tiny_llava_dir, bomb_folder, tmp_path) -> None:
    a, c = (os.path.join(bomb_folder, n) for n in ("a.png", "c.jpg"))
    records = [
        {"id": "1", "image": a, "source": "coco"},
        {"id": "2", "image": c, "source": "coco"},
        {"id": "3", "image": a, "source": "vg"},
    ]
    jsonl = tmp_path / "images.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "caps.jsonl"
    result = run_cli("caption", str(jsonl), "-m", tiny_llava_dir, *QUICK, "-o", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    caps = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(caps) == 2 * 5 and len({r["id"] for r in caps}) == len(caps)  # 5 default prompts
    assert {r["source"] for r in caps if r["image"] == a} == {"coco"}  # the first record's fields
    assert "3 in, 10 out; dropped 1 duplicate image" in result.stderr


def test_a_resumed_run_keeps_every_caption_of_a_repeated_image(tiny_lvlm, bomb_folder) -> None:
    a, c = (os.path.join(bomb_folder, n) for n in ("a.png", "c.jpg"))
    records = [{"id": "1", "image": a}, {"id": "2", "image": c}, {"id": "3", "image": a}]
    settings = CaptionSettings(prompts=("Describe.", "What?"), max_new_tokens=2, seed=0, batch_size=3)
    full = list(caption_records(records, tiny_lvlm, settings, StageContext("caption")))
    assert len(full) == 4 and len({r["id"] for r in full}) == 4
    ctx = StageContext("caption", done=frozenset(r["id"] for r in full[:1]))  # killed after one caption
    rest = list(caption_records(records, tiny_lvlm, settings, ctx))
    assert [r["id"] for r in rest] == [r["id"] for r in full[1:]]
    assert ctx.stats.resumed == 1 and dict(ctx.stats.dropped) == {"duplicate image": 1}


def test_prompts_from_process_substitution(tiny_llava_dir, bomb_folder) -> None:
    """`--prompts <(printf ...)`: the shell passes /dev/fd/N, a pipe, not a regular file."""
    a = os.path.join(bomb_folder, "a.png")
    command = (
        f"printf '%s\\n' '{json.dumps({'id': 'a', 'image': a})}' | "
        f"{sys.executable} -m clipdpo_cli caption - -m {tiny_llava_dir} {' '.join(QUICK)} "
        "--prompts <(printf 'Describe.\\n# a comment\\nWhat is it?\\n')"
    )
    result = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, env=cli_env(HF_HUB_OFFLINE="1"), timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["prompt"] for r in out] == ["Describe.", "What is it?"]


def test_prompts_from_a_fifo_and_a_clear_error_for_a_missing_file(tmp_path) -> None:
    fifo = tmp_path / "prompts.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "w") as fh:
            fh.write("One.\nTwo.\n")

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    assert read_prompts(str(fifo)) == ["One.", "Two."]
    writer.join(timeout=10)
    with pytest.raises(InputError, match="prompts file not found: /no/such/prompts.txt"):
        read_prompts("/no/such/prompts.txt")
    with pytest.raises(InputError, match="prompts file is a directory"):
        read_prompts(str(tmp_path))
    result = run_in_process(
        "caption", str(tmp_path), "-m", "no-such-org/x", "--prompts", "/no/such/prompts.txt"
    )
    assert result.returncode == 1
    assert stderr_lines(result) == ["clipdpo caption: error: prompts file not found: /no/such/prompts.txt"]
