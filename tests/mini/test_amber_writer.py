"""clipdpo_mini/amber.py, the one AMBER-folder writer: the miniature world's held-out folders and the tests'
stand-in folder both go through it, and write what the two writers it replaced wrote (file lists and the
digests of their text files, taken from the code before the merge), and what eval-amber reads."""

from __future__ import annotations

import hashlib
import json
import os

from clipdpo_mini.amber import write_amber_folder
from clipdpo_mini.world import write_amber_split
from tests.fixtures.tiny_amber import build_tiny_amber

QUERY = "data/query/query_{}.json"


def listing(root: str) -> tuple[list[str], str]:
    """The folder's files and a digest of its text files (images depend on the PNG/JPEG encoder)."""
    files = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
    digest = hashlib.sha256()
    for name in files:
        if name.endswith((".json", ".txt")):
            with open(os.path.join(root, name), "rb") as fh:
                digest.update(name.encode() + fh.read())
    return files, digest.hexdigest()[:16]


def test_the_world_held_out_folder_is_what_it_was(tmp_path):
    root = write_amber_split(str(tmp_path / "world"), 6, 0, 300_150, splits={"val": 2, "test": 4})
    files, digest = listing(root)
    assert files == [
        "data/annotations.json", QUERY.format("all"), QUERY.format("generative"), "data/relation.json",
        "data/safe_words.txt", *(f"image/AMBER_{n}.png" for n in range(1, 7)), "scenes.jsonl",
    ]  # fmt: skip
    assert digest == "f3ee9db259adb8dd"


def test_the_stand_in_folder_is_what_it_was(tmp_path):
    root = build_tiny_amber(str(tmp_path / "tiny"), n_images=2)
    files, digest = listing(root)
    assert files == [
        "data/annotations.json", QUERY.format("all"), QUERY.format("discriminative-attribute"),
        QUERY.format("discriminative-existence"), QUERY.format("discriminative-relation"),
        QUERY.format("discriminative"), QUERY.format("generative"), "data/relation.json",
        "data/safe_words.txt", "image/AMBER_1.jpg", "image/AMBER_2.jpg",
    ]  # fmt: skip
    assert digest == "6aae64c4afb24e1a"
    assert not os.path.exists(build_tiny_amber(str(tmp_path / "no-images"), images=False) + "/image")


def test_a_folder_by_hand_reads_back_through_eval_amber(tmp_path):
    from PIL import Image

    from clipdpo_cli.eval.amber.data import load_amber

    annotations = [
        {"id": 1, "type": "generative", "truth": ["ball"], "hallu": ["box"]},
        {"id": 2, "type": "discriminative-hallucination", "truth": "no"},
        {"id": 3, "type": "relation", "truth": "yes"},
    ]
    queries = [{"id": 1, "image": "a.png", "query": "Describe this image."},
               {"id": 2, "image": "a.png", "query": "Is there a box in this image?"},
               {"id": 3, "image": "a.png", "query": "Is the ball on the box?"}]  # fmt: skip
    image = Image.new("RGB", (8, 8), "red")
    root = write_amber_folder(str(tmp_path / "a"), annotations, queries, {"ball": [], "box": []}, ["sky"],
                              [("a.png", image)])  # fmt: skip
    with open(os.path.join(root, QUERY.format("discriminative-existence"))) as fh:
        assert [q["id"] for q in json.load(fh)] == [2]
    with open(os.path.join(root, QUERY.format("discriminative-relation"))) as fh:
        assert [q["id"] for q in json.load(fh)] == [3]
    with open(os.path.join(root, QUERY.format("discriminative"))) as fh:
        assert [q["id"] for q in json.load(fh)] == [2, 3]
    assert not os.path.exists(os.path.join(root, QUERY.format("discriminative-attribute")))
    data = load_amber(root)
    assert data.safe_words == ["sky"] and sorted(data.vocabulary) == ["ball", "box"]
    assert Image.open(os.path.join(root, "image", "a.png")).size == (8, 8)
