"""caption on the data researchers already have: a LLaVA SFT mix, webdataset shards, parquet with image bytes;
one job per distinct image, the image root from the environment."""

from __future__ import annotations

import json
import os

import pytest

from clipdpo_cli.io.errors import RecordFailure
from clipdpo_cli.io.images import IMAGE_ROOT_ENV
from clipdpo_cli.io.records import make_id
from tests.conftest import invoke_cli
from tests.input_files import COLORS, image_bytes, llava_mix, parquet_with_bytes, webdataset_tar


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def prompts(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("prompts") / "prompts.txt"
    path.write_text("Describe it.\nWhat is shown?\n")
    return str(path)


def caption(model: str, prompts: str, *args: str):
    common = ["-m", model, "--prompts", prompts, "--max-new-tokens", "2", "--seed", "0", "--device", "cpu"]
    return invoke_cli("caption", *args, *common, "--workers", "0")


def test_llava_mix_json_with_the_image_root_from_the_environment(
    tiny_llava_dir, prompts, tmp_path, monkeypatch
):
    path, root = llava_mix(tmp_path)
    monkeypatch.setenv(IMAGE_ROOT_ENV, str(root))
    result = caption(tiny_llava_dir, prompts, str(path))
    out = records(result.stdout)
    assert (
        len(out) == 3 * 2
    )  # three distinct images x two prompts: the repeated image once, text-only skipped
    assert [r["image"] for r in out[::2]] == ["coco/1.jpg", "coco/2.jpg", "ocr.png"]
    assert len({r["id"] for r in out}) == 6
    assert [r["sft_id"] for r in out[::2]] == ["000000001", "000000002", "ocr-7"]
    assert out[0]["sft_ids"] == ["000000001", "000000001-b"] and "sft_ids" not in out[2]
    assert not any("conversations" in r for r in out)
    assert result.stderr.splitlines()[-1].startswith(
        "clipdpo caption: 3 in, 6 out; 6 SFT entries read: 3 distinct images, 2 text-only entries skipped, "
        "1 entries repeating an image; "
    )


def test_image_not_found_names_the_root_and_the_variable(tiny_llava_dir, prompts, tmp_path, monkeypatch):
    path, root = llava_mix(tmp_path)
    monkeypatch.setenv(IMAGE_ROOT_ENV, str(tmp_path / "wrong-root"))
    with pytest.raises(RecordFailure) as failure:
        caption(tiny_llava_dir, prompts, str(path))
    wrong = tmp_path / "wrong-root"
    assert str(failure.value) == (
        f"record {make_id('image', 'coco/1.jpg')} (image coco/1.jpg): image not found: "
        f"{wrong / 'coco' / '1.jpg'} (resolved under the image root {wrong} "
        f"from {IMAGE_ROOT_ENV}) (use --on-error skip to skip such records)"
    )


def test_webdataset_shard_with_a_repeated_image_is_captioned_once(tiny_llava_dir, prompts, tmp_path):
    tar = webdataset_tar(tmp_path, repeat_first=True)
    result = caption(tiny_llava_dir, prompts, str(tar), "--image-dir", str(tmp_path / "images"))
    out = records(result.stdout)
    assert len(out) == 3 * 2 and len({r["id"] for r in out}) == 6
    assert [r["key"] for r in out[::2]] == ["000000000", "000000001", "000000002"]
    assert "4 in, 6 out; dropped 1 duplicate image" in result.stderr
    written = sorted(os.listdir(tmp_path / "images"))
    assert len(written) == 3
    assert sorted(open(tmp_path / "images" / n, "rb").read() for n in written) == sorted(
        image_bytes(c, "JPEG") for c in COLORS
    )


def test_parquet_with_image_bytes_resumes(tiny_llava_dir, prompts, tmp_path):
    data = parquet_with_bytes(tmp_path)
    out_path = tmp_path / "caps.jsonl"
    args = [str(data), "--image-column", "jpg", "-o", str(out_path)]
    first = caption(tiny_llava_dir, prompts, *args)
    full = out_path.read_text()
    out = records(full)
    assert len(out) == 6 and {os.path.dirname(r["image"]) for r in out} == {str(tmp_path / "caps-images")}
    assert [r["caption"] for r in out[::2]] == [f"a {c} square" for c in COLORS]  # other columns kept
    assert "3 in, 6 out" in first.stderr
    out_path.write_text("".join(full.splitlines(keepends=True)[:3]))  # a run killed after three captions
    resumed = caption(tiny_llava_dir, prompts, *args, "--resume")
    assert out_path.read_text() == full
    assert "3 already done (resume)" in resumed.stderr


def test_one_image_under_two_spellings_is_captioned_once(tiny_llava_dir, prompts, tmp_path):
    (tmp_path / "a.png").write_bytes(image_bytes("red"))
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": "x", "image": "a.png"}\n{"id": "y", "image": "./a.png"}\n')
    result = caption(tiny_llava_dir, prompts, str(path), "--image-root", str(tmp_path))
    assert len(records(result.stdout)) == 2
    assert "2 in, 2 out; dropped 1 duplicate image" in result.stderr
