"""Inputs researchers already have (io/sources.py): JSON arrays, HF datasets, parquet, webdataset shards, and
whole-file mistakes refused at once. Stages here need no model (perturb --method rules, filter)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import zlib

import pytest
from PIL import Image

from clipdpo_cli.io.errors import BadRecord, InputError, RecordFailure, UsageError
from clipdpo_cli.io.images import IMAGE_ROOT_ENV, load_image, resolve_image
from clipdpo_cli.io.records import make_id
from clipdpo_cli.io.sources import InputSettings, detect_format
from tests.conftest import cli_env, invoke_cli, run_in_process, run_text_cli
from tests.input_files import COLORS, hf_saved, image_bytes, llava_mix, parquet_with_bytes, webdataset_tar


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def perturb(*args: str):
    """`clipdpo perturb --method rules` in-process: reads records with an image and a text, opens no image."""
    return invoke_cli("perturb", *args, "--method", "rules", "--types", "attribute", "--seed", "0")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    return {
        "llava": llava_mix(folder)[0],
        "hf": hf_saved(folder),
        "parquet": parquet_with_bytes(folder),
        "corrupt_parquet": parquet_with_bytes(folder, corrupt=True),
        "tar": webdataset_tar(folder),
        "folder": folder,
    }


# --- whole-file mistakes --------------------------------------------------------------------------------


def _misnamed(files, tmp_path):
    jsonl_lines = b'{"id": "a", "image": "a.jpg", "text": "x"}\n'
    made = {
        "parquet": files["parquet"].read_bytes(),
        "webdataset": files["tar"].read_bytes(),
        "json": files["llava"].read_bytes(),
        "gzip": gzip.compress(jsonl_lines),
    }
    paths = {}
    for kind, data in made.items():
        paths[kind] = tmp_path / f"{kind}-really.jsonl"
        paths[kind].write_bytes(data)
    return paths


@pytest.mark.parametrize(
    "kind, message",
    [
        ("parquet", "is a parquet file, not JSON lines: pass --input-format parquet"),
        ("webdataset", "is a tar archive (webdataset), not JSON lines: pass --input-format webdataset"),
        ("json", "is a JSON array, not JSON lines: pass --input-format json"),
        ("gzip", "is gzip-compressed but not named .gz: name it gzip-really.jsonl.gz"),
    ],
)
def test_a_file_named_jsonl_in_another_format_is_refused_at_once(files, tmp_path, kind, message):
    path = _misnamed(files, tmp_path)[kind]
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        perturb(str(path), "--on-error", "skip")


def test_on_error_skip_does_not_turn_a_wrong_format_into_an_empty_dataset(files, tmp_path):
    path = _misnamed(files, tmp_path)["parquet"]
    out = tmp_path / "out.jsonl"
    r = run_in_process("filter", str(path), "--on-error", "skip", "-o", str(out))
    assert r.returncode == 1 and not out.exists()
    assert (
        r.stderr
        == f"clipdpo filter: error: {path} is a parquet file, not JSON lines: pass --input-format parquet\n"
    )
    r = run_text_cli("filter", stdin=files["llava"].read_text())  # sniffing a real stdin: a subprocess
    assert r.returncode == 1 and r.stdout == ""
    assert (
        r.stderr == "clipdpo filter: error: stdin is a JSON array, not JSON lines: pass --input-format json\n"
    )


def test_a_declared_format_that_the_bytes_contradict_names_the_right_one(files):
    with pytest.raises(
        InputError, match="is a parquet file, not a tar archive .*: pass --input-format parquet"
    ):
        detect_format(str(files["parquet"]), InputSettings(format="webdataset"))
    with pytest.raises(InputError, match="is a JSON array, not JSON lines: pass --input-format json"):
        detect_format(str(files["llava"]), InputSettings(format="jsonl"))


def test_formats_recognised_from_bytes_and_names(files, tmp_path):
    found = {k: detect_format(str(files[k]), InputSettings()) for k in ("llava", "hf", "parquet", "tar")}
    assert found == {"llava": "json", "hf": "hf", "parquet": "parquet", "tar": "webdataset"}
    gz = tmp_path / "x.jsonl.gz"
    gz.write_bytes(gzip.compress(b'{"id": 1}\n'))
    assert detect_format(str(gz), InputSettings()) == "jsonl"
    lines = tmp_path / "lines.json"  # JSON lines in a file named .json: still JSON lines
    lines.write_text('{"id": 1}\n{"id": 2}\n')
    assert detect_format(str(lines), InputSettings()) == "jsonl"
    first_line_a_list = tmp_path / "odd.jsonl"  # a JSONL whose first line is a list: a bad line, not an array
    first_line_a_list.write_text("[1, 2]\n")
    assert detect_format(str(first_line_a_list), InputSettings()) == "jsonl"


def test_filter_reads_only_json_lines_and_says_so(files):
    with pytest.raises(InputError, match="filter reads JSON lines; .*images.parquet is a parquet file"):
        invoke_cli("filter", str(files["parquet"]))


# --- the formats through a stage ------------------------------------------------------------------------


def test_llava_json_gives_one_record_per_distinct_image(files):
    result = perturb(str(files["llava"]), "--field", "sft_id")
    out = records(result.stdout)
    originals = [r for r in out if r["hallucination"] == "none"]
    assert [r["image"] for r in originals] == ["coco/1.jpg", "coco/2.jpg", "ocr.png"]
    assert [r["id"] for r in originals] == [
        make_id("image", i) for i in ("coco/1.jpg", "coco/2.jpg", "ocr.png")
    ]
    assert originals[0]["sft_id"] == "000000001" and originals[0]["sft_ids"] == ["000000001", "000000001-b"]
    assert "sft_ids" not in originals[1] and all("conversations" not in r for r in out)
    assert "3 in," in result.stderr
    assert (
        "6 SFT entries read: 3 distinct images, 2 text-only entries skipped, 1 entries repeating an image"
        in (result.stderr)
    )


def test_a_plain_json_array_is_read_record_by_record(tmp_path):
    path = tmp_path / "caps.json"
    path.write_text(json.dumps([{"id": "c1", "image": "a.jpg", "text": "a red car"},
                                {"id": "c2", "image": "a.jpg", "text": "a blue car"}]))  # fmt: skip
    out = records(perturb(str(path)).stdout)
    assert [r["from"] for r in out if r["hallucination"] == "none"] == ["c1", "c2"]


def _written_images(out: list[dict]) -> dict[str, bytes]:
    return {r["image"]: open(r["image"], "rb").read() for r in out}


def test_saved_hf_dataset_with_image_bytes(files, tmp_path):
    out_path = tmp_path / "p.jsonl"
    result = perturb(str(files["hf"]), "--text-column", "caption", "-o", str(out_path))
    out = [r for r in records(out_path.read_text()) if r["hallucination"] == "none"]
    assert [r["text"] for r in out] == [f"a {c} square" for c in COLORS]
    images = _written_images(out)
    assert list(images.values()) == [image_bytes(c) for c in COLORS]  # written once each, byte for byte
    assert all(p.startswith(str(tmp_path / "p-images") + os.sep) and p.endswith(".png") for p in images)
    assert "3 in," in result.stderr
    # the ids do not depend on where the images went: a resumable, shardable input
    again = records(
        perturb(str(files["hf"]), "--text-column", "caption", "--image-dir", str(tmp_path / "x")).stdout
    )
    assert [r["id"] for r in again if r["hallucination"] == "none"] == [r["id"] for r in out]


def test_shards_of_a_dataset_together_are_the_whole(files, tmp_path):
    whole = perturb(str(files["hf"]), "--text-column", "caption", "--image-dir", str(tmp_path / "w")).stdout
    parts = [perturb(str(files["hf"]), "--text-column", "caption", "--image-dir", str(tmp_path / f"s{k}"),
                     "--shard", f"{k}/2").stdout for k in range(2)]  # fmt: skip
    assert sorted(r["id"] for p in parts for r in records(p)) == sorted(r["id"] for r in records(whole))
    written = [len(os.listdir(tmp_path / f"s{k}")) for k in range(2) if (tmp_path / f"s{k}").exists()]
    assert sum(written) == 3  # each shard writes only its own images


def test_parquet_with_image_bytes_and_a_corrupt_row(files, tmp_path):
    args = [str(files["corrupt_parquet"]), "--image-column", "jpg", "--text-column", "caption"]
    result = perturb(*args, "--image-dir", str(tmp_path / "im"), "--on-error", "skip")
    out = [r for r in records(result.stdout) if r["hallucination"] == "none"]
    assert [r["text"] for r in out] == [f"a {c} square" for c in COLORS]
    assert all(r["image"].endswith(".jpg") for r in out)
    assert "skipped bad 1 corrupt image" in result.stderr
    assert len(os.listdir(tmp_path / "im")) == 3  # the corrupt bytes were never written
    with pytest.raises(RecordFailure, match="cannot decode image .*im2/[0-9a-f]{32}.img"):
        perturb(*args, "--image-dir", str(tmp_path / "im2"))


def test_parquet_without_an_image_column_names_the_option(files):
    with pytest.raises(
        UsageError, match=r"no image column found \(columns: jpg, caption\): pass --image-column"
    ):
        perturb(str(files["parquet"]), "--image-dir", "unused")


def test_webdataset_tar_as_img2dataset_writes_it(files, tmp_path):
    result = perturb(str(files["tar"]), "--text-column", "txt", "--image-dir", str(tmp_path / "im"))
    out = [r for r in records(result.stdout) if r["hallucination"] == "none"]
    assert [(r["key"], r["tar"], r["text"], r["status"]) for r in out] == [
        (f"{i:09d}", "00000.tar", f"a {c} square", "success") for i, c in enumerate(COLORS)
    ]
    assert [r["id"] for r in out] == [make_id("webdataset", "00000.tar", f"{i:09d}") for i in range(3)]
    assert list(_written_images(out).values()) == [image_bytes(c, "JPEG") for c in COLORS]
    # a brace range of shards, as img2dataset names them, and a folder of shards read the same
    pattern = str(files["tar"]).replace("00000.tar", "{00000..00000}.tar")
    ranged = perturb(pattern, "--text-column", "txt", "--image-dir", str(tmp_path / "im"))
    assert ranged.stdout == result.stdout


def test_webdataset_on_stdout_needs_an_image_dir_before_anything_runs(files):
    r = run_in_process("caption", str(files["tar"]), "-m", "no/such-model")
    assert r.returncode == 2 and "pass --extract-images-to DIR" in r.stderr and r.stderr.count("\n") == 1


def test_dataset_dict_splits(files, tmp_path):
    import datasets

    saved = datasets.load_from_disk(str(files["hf"]))
    path = tmp_path / "dd"
    datasets.DatasetDict({"validation": saved, "test": saved.select([0])}).save_to_disk(str(path))
    with pytest.raises(UsageError, match="has the splits validation, test: pass --split NAME"):
        perturb(str(path), "--text-column", "caption", "--image-dir", str(tmp_path / "im"))
    out = records(perturb(str(path), "--text-column", "caption", "--image-dir", str(tmp_path / "im"),
                          "--split", "test").stdout)  # fmt: skip
    assert [r["text"] for r in out if r["hallucination"] == "none"] == ["a red square"]


# --- the image root, once per pipeline ------------------------------------------------------------------


def test_image_root_from_the_environment(tmp_path, monkeypatch):
    Image.new("RGB", (8, 8), "red").save(tmp_path / "a.png")
    monkeypatch.chdir(tmp_path.parent)
    monkeypatch.setenv(IMAGE_ROOT_ENV, tmp_path.name)  # relative: resolved once, to an absolute path
    assert resolve_image("a.png") == str(tmp_path / "a.png")
    assert resolve_image(resolve_image("a.png")) == str(tmp_path / "a.png")  # resolving twice changes nothing
    assert resolve_image("/abs/a.png") == "/abs/a.png"
    assert load_image("a.png").size == (8, 8)
    assert resolve_image("a.png", "/explicit") == "/explicit/a.png"  # --image-root wins over the variable
    with pytest.raises(BadRecord) as missing:
        load_image("b.png")
    assert str(missing.value) == (
        f"image not found: {tmp_path / 'b.png'} (resolved under the image root {tmp_path.name} "
        f"from {IMAGE_ROOT_ENV})"
    )
    assert missing.value.reason == "image not found"


def test_image_not_found_without_a_root_names_the_option_and_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(IMAGE_ROOT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    no_root = (
        r"image not found: b.png \(relative to the current folder .*; "
        r"set the image root with --image-root DIR or CLIPDPO_IMAGE_ROOT=DIR\)"
    )
    with pytest.raises(BadRecord, match=no_root):
        load_image("b.png")
    with pytest.raises(BadRecord, match=r"image not found: /x/b.png \(resolved under the image root /x from"):
        load_image("b.png", "/x")


# --- implicit SLURM sharding ----------------------------------------------------------------------------


def test_a_shard_taken_from_slurm_is_said_on_stderr_and_in_the_summary(tmp_path):
    rows = [{"id": f"r{i}", "image": f"{i}.jpg", "text": "a dog", "clip_score": 30.0} for i in range(40)]
    lines = "".join(json.dumps(row) + "\n" for row in rows)
    env = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "4"}
    r = run_text_cli("filter", "--text-keep", "1", stdin=lines, env=env)
    assert r.returncode == 0
    kept = len(records(r.stdout))
    err = r.stderr.splitlines()
    assert kept == sum(zlib.crc32(f"{i}.jpg".encode()) % 4 == 1 for i in range(40)) and 0 < kept < 40
    assert err[0] == ("clipdpo filter: processing only shard 1/4 from SLURM_ARRAY_TASK_ID=1 of "
                      "SLURM_ARRAY_TASK_COUNT=4 (pass --shard 0/1 for the whole input)")  # fmt: skip
    assert err[-1].startswith(
        f"clipdpo filter: {kept} in, {kept} out; shard 1/4 from SLURM_ARRAY_TASK_ID=1 of "
        f"SLURM_ARRAY_TASK_COUNT=4: {40 - kept} records left to the other shards; "
    )
    whole = run_text_cli("filter", "--text-keep", "1", "--shard", "0/1", stdin=lines, env=env)
    assert len(records(whole.stdout)) == 40 and "shard" not in whole.stderr


def test_a_folder_load_dataset_reads_and_an_arrow_file(files, tmp_path):
    import datasets

    folder = tmp_path / "hub-layout"
    (folder / "data").mkdir(parents=True)
    shutil.copy(files["parquet"], folder / "data" / "train-00000-of-00001.parquet")
    assert detect_format(str(folder), InputSettings(), allow_folder=True) == "hf"
    args = ["--image-column", "jpg", "--text-column", "caption", "--image-dir", str(tmp_path / "im")]
    out = records(perturb(str(folder), *args).stdout)
    assert [r["text"] for r in out if r["hallucination"] == "none"] == [f"a {c} square" for c in COLORS]
    arrow = tmp_path / "rows.arrow"
    shutil.copy(next(files["hf"].glob("*.arrow")), arrow)  # datasets' own Arrow stream file
    assert detect_format(str(arrow), InputSettings()) == "arrow"
    out = records(perturb(str(arrow), "--text-column", "caption", "--image-dir", str(tmp_path / "im")).stdout)
    originals = [r for r in out if r["hallucination"] == "none"]
    assert [open(r["image"], "rb").read() for r in originals] == [image_bytes(c) for c in COLORS]
    assert datasets.load_from_disk(str(files["hf"])).num_rows == len(originals)


def test_an_image_folder_with_a_stray_json_file_is_still_an_image_folder(tmp_path):
    (tmp_path / "a.png").write_bytes(image_bytes("red"))
    (tmp_path / "notes.json").write_text("{}")
    (tmp_path / "metadata.parquet").write_bytes(b"PAR1")
    assert detect_format(str(tmp_path), InputSettings(), allow_folder=True) == "images"


def test_multi_image_sft_entries_give_a_record_per_image(tmp_path):
    path = tmp_path / "multi.json"
    entries = [{"id": "m1", "image": ["a.jpg", "b.jpg"], "conversations": []}, {"id": "m2", "image": "b.jpg",
               "conversations": []}]  # fmt: skip
    path.write_text(json.dumps(entries))
    out = records(perturb(str(path), "--field", "sft_id").stdout)
    originals = [r for r in out if r["hallucination"] == "none"]
    assert [(r["image"], r["sft_id"], r.get("sft_ids")) for r in originals] == [
        ("a.jpg", "m1", None),
        ("b.jpg", "m1", ["m1", "m2"]),
    ]


def test_a_stage_in_a_pipe_does_not_wait_for_its_input_before_loading_its_model():
    """The format check does not peek at stdin before the model loads: a missing model is reported while
    the stage before it in the pipe has written nothing yet."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipdpo_cli", "caption", "-", "-m", "/no/such/model"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=cli_env(HF_HUB_OFFLINE="1"),
    )  # fmt: skip
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 1 and b"/no/such/model" in err


def test_an_image_or_a_zip_given_as_input_is_refused_at_once(tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(image_bytes("red", "JPEG"))
    with pytest.raises(InputError, match="photo.jpg is an image file, not JSON lines: pass the folder"):
        perturb(str(photo), "--on-error", "skip")
    archive = tmp_path / "images.zip"
    archive.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    with pytest.raises(InputError, match="images.zip is a zip archive, not JSON lines: unpack it first"):
        perturb(str(archive))


def test_a_parquet_of_image_paths_keeps_its_json_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"image": ["coco/1.jpg", "coco/2.jpg"], "caption": ["a dog", "a cat"],
                      "tags": [["dog"], ["cat", "pet"]], "thumb": [b"\x00\x01", b"\x02"],
                      "id": ["p7", "p8"]})  # fmt: skip
    path = tmp_path / "paths.parquet"
    pq.write_table(table, str(path))
    out = records(perturb(str(path), "--text-column", "caption").stdout)  # paths: no --image-dir needed
    originals = [r for r in out if r["hallucination"] == "none"]
    assert originals == [
        {"id": "p7", "image": "coco/1.jpg", "text": "a dog", "tags": ["dog"], "source_id": "p7",
         "original": "a dog", "hallucination": "none", "from": "p7"},
        {"id": "p8", "image": "coco/2.jpg", "text": "a cat", "tags": ["cat", "pet"], "source_id": "p8",
         "original": "a cat", "hallucination": "none", "from": "p8"},
    ]  # fmt: skip


def test_a_csv_folder_is_read_by_load_dataset_when_named_hf(tmp_path):
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "train.csv").write_text("image,caption\nimgs/a.jpg,a red car\nimgs/b.jpg,a blue car\n")
    with pytest.raises(InputError, match="is a folder, not a JSONL file .*pass --input-format hf"):
        perturb(str(folder))
    out = records(perturb(str(folder), "--input-format", "hf", "--text-column", "caption").stdout)
    assert [(r["image"], r["text"]) for r in out if r["hallucination"] == "none"] == [
        ("imgs/a.jpg", "a red car"),
        ("imgs/b.jpg", "a blue car"),
    ]


def test_one_reader_per_format_in_one_table():
    from clipdpo_cli.io.sources import FORMATS, READERS

    assert tuple(READERS) == FORMATS[1:]  # every --input-format but auto, in the order the help lists them
    assert {f for f, r in READERS.items() if r.image_bytes} == {"hf", "parquet", "arrow", "webdataset"}
