"""Small input files in the formats researchers already have, written with the libraries that write them."""

from __future__ import annotations

import io
import json
from pathlib import Path

CONVERSATION = [
    {"from": "human", "value": "<image>\nWhat is in the picture?"},
    {"from": "gpt", "value": "A square of one colour."},
]


def image_bytes(color: str, fmt: str = "PNG", size: tuple[int, int] = (24, 20)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, fmt)
    return buffer.getvalue()


def llava_mix(folder: Path) -> tuple[Path, Path]:
    """A llava_v1_5_mix665k.json in miniature: (json path, image root). Six entries: three images, one of
    them in two entries, two text-only entries (no 'image' key), one image in a subfolder."""
    root = folder / "llava-images"
    (root / "coco").mkdir(parents=True)
    for name, color in (("coco/1.jpg", "red"), ("coco/2.jpg", "green"), ("ocr.png", "blue")):
        (root / name).write_bytes(image_bytes(color, "JPEG" if name.endswith(".jpg") else "PNG"))
    entries = [
        {"id": "000000001", "image": "coco/1.jpg", "conversations": CONVERSATION},
        {"id": "text-1", "conversations": CONVERSATION},
        {"id": "000000002", "image": "coco/2.jpg", "conversations": CONVERSATION},
        {"id": "000000001-b", "image": "coco/1.jpg", "conversations": CONVERSATION, "model": ""},
        {"id": "ocr-7", "image": "ocr.png", "conversations": CONVERSATION},
        {"id": "text-2", "model": "", "conversations": CONVERSATION},
    ]
    path = folder / "llava_mix.json"
    path.write_text(json.dumps(entries, indent=2))
    return path, root


COLORS = ("red", "green", "blue")


def hf_saved(folder: Path) -> Path:
    """A datasets save_to_disk folder: an Image column (bytes) and a caption column, three rows."""
    import datasets

    features = datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string")})
    data = {
        "image": [{"bytes": image_bytes(c), "path": None} for c in COLORS],
        "caption": [f"a {c} square" for c in COLORS],
    }
    path = folder / "hf-saved"
    datasets.Dataset.from_dict(data, features=features).save_to_disk(str(path))
    return path


def parquet_with_bytes(folder: Path, corrupt: bool = False) -> Path:
    """A parquet file (pyarrow) with a binary column 'jpg' (image bytes) and a 'caption' column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    images = [image_bytes(c, "JPEG") for c in COLORS] + ([b"not an image"] if corrupt else [])
    captions = [f"a {c} square" for c in COLORS] + (["broken"] if corrupt else [])
    path = folder / ("images-corrupt.parquet" if corrupt else "images.parquet")
    pq.write_table(pa.table({"jpg": images, "caption": captions}), str(path))
    return path


def webdataset_tar(folder: Path, repeat_first: bool = False) -> Path:
    """A webdataset shard as img2dataset writes it: KEY.jpg, KEY.txt, KEY.json per sample."""
    import webdataset as wds

    colors = [*COLORS, COLORS[0]] if repeat_first else list(COLORS)
    path = folder / "00000.tar"
    with wds.TarWriter(str(path)) as sink:
        for i, color in enumerate(colors):
            key = f"{i:09d}"
            meta = {"key": key, "url": f"http://example.com/{i}.jpg", "caption": f"a {color} square",
                    "width": 24, "height": 20, "status": "success"}  # fmt: skip
            sink.write({"__key__": key, "jpg": image_bytes(color, "JPEG"), "txt": f"a {color} square",
                        "json": json.dumps(meta).encode()})  # fmt: skip
    return path
