"""What the user brought survives `caption`: a dataset row's own id (`source_id`), its text (`source_text`,
never overwritten by the caption), and caption ids that do not depend on where byte images are written.
Fixtures are written with the real `datasets` and `webdataset` libraries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipdpo_cli.io.records import make_id
from tests.conftest import invoke_cli
from tests.input_files import COLORS, image_bytes


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def prompts(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("prompts") / "prompts.txt"
    path.write_text("Describe it.\n")
    return str(path)


def caption(model: str, prompts: str, *args: str):
    common = ["-m", model, "--prompts", prompts, "--max-new-tokens", "2", "--seed", "0", "--device", "cpu"]
    return invoke_cli("caption", *args, *common, "--workers", "0")


@pytest.fixture(scope="module")
def dataset_with_ids(tmp_path_factory) -> Path:
    """A `datasets` save_to_disk folder: an id column, an Image column (bytes), a text column."""
    import datasets

    features = datasets.Features(
        {"id": datasets.Value("string"), "image": datasets.Image(), "caption": datasets.Value("string")}
    )
    data = {
        "id": [f"row-{c}" for c in COLORS],
        "image": [{"bytes": image_bytes(c), "path": None} for c in COLORS],
        "caption": [f"a {c} square" for c in COLORS],
    }
    path = tmp_path_factory.mktemp("hf") / "with-ids"
    datasets.Dataset.from_dict(data, features=features).save_to_disk(str(path))
    return path


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """webdataset's own ShardWriter: KEY.jpg, KEY.txt and KEY.json (with an `id`) per sample."""
    import webdataset as wds

    folder = tmp_path_factory.mktemp("wds")
    with wds.ShardWriter(str(folder / "shard-%05d.tar"), maxcount=2, verbose=0) as sink:
        for i, color in enumerate(COLORS):
            meta = {"id": f"laion-{i}", "url": f"http://example.com/{i}.jpg"}
            sink.write({"__key__": f"{i:09d}", "jpg": image_bytes(color, "JPEG"), "txt": f"a {color} square",
                        "json": json.dumps(meta).encode()})  # fmt: skip
    return folder


def test_a_dataset_id_and_text_column_are_kept_beside_the_caption(tiny_llava_dir, prompts, dataset_with_ids,
                                                                   tmp_path):  # fmt: skip
    result = caption(tiny_llava_dir, prompts, str(dataset_with_ids), "--text-column", "caption",
                     "--image-dir", str(tmp_path / "img"))  # fmt: skip
    out = records(result.stdout)
    assert [r["source_id"] for r in out] == ["row-red", "row-green", "row-blue"]
    assert [r["source_text"] for r in out] == [f"a {c} square" for c in COLORS]
    assert all(r["kind"] == "caption" and r["text"] != r["source_text"] for r in out)
    assert len({r["id"] for r in out}) == 3 and not {r["id"] for r in out} & {r["source_id"] for r in out}


def test_a_webdataset_txt_is_kept_as_source_text_and_its_json_id_as_source_id(tiny_llava_dir, prompts, shards,
                                                                              tmp_path):  # fmt: skip
    assert sorted(p.name for p in shards.iterdir()) == ["shard-00000.tar", "shard-00001.tar"]
    result = caption(tiny_llava_dir, prompts, str(shards), "--text-column", "txt",
                     "--image-dir", str(tmp_path / "img"))  # fmt: skip
    out = records(result.stdout)
    assert [(r["key"], r["source_id"], r["source_text"]) for r in out] == [
        (f"{i:09d}", f"laion-{i}", f"a {c} square") for i, c in enumerate(COLORS)
    ]
    assert [r["tar"] for r in out] == ["shard-00000.tar", "shard-00000.tar", "shard-00001.tar"]


def test_caption_ids_do_not_depend_on_where_byte_images_are_written(tiny_llava_dir, prompts, dataset_with_ids,
                                                                    tmp_path):  # fmt: skip
    a = tmp_path / "a" / "caps.jsonl"
    a.parent.mkdir()
    caption(tiny_llava_dir, prompts, str(dataset_with_ids), "-o", str(a))
    b = caption(tiny_llava_dir, prompts, str(dataset_with_ids), "--image-dir", str(tmp_path / "elsewhere"))
    first, second = records(a.read_text()), records(b.stdout)
    assert [r["image"] for r in first] != [r["image"] for r in second]  # written in two places
    assert [r["image_hash"] for r in first] == [r["image_hash"] for r in second]
    assert [r["id"] for r in first] == [r["id"] for r in second]
    digest = first[0]["image_hash"]
    assert first[0]["image"].endswith(f"{digest}.png") and len(digest) == 32
    s = dict(model=tiny_llava_dir, prompt="Describe it.", sample=0, seed=0, temperature=0.7, top_p=0.95)
    expected = make_id("caption", f"bytes:{digest}", s["model"], s["prompt"], s["sample"], s["seed"],
                       s["temperature"], s["top_p"], 2)  # fmt: skip
    assert first[0]["id"] == expected
