"""repro-mini's POVID source arms: the trusted answers, the combined pair files and their agreement with the
world's truth, by hand."""

from __future__ import annotations

import json
import os

from clipdpo_mini.repro import SOURCES, source_agreement, source_pairs, trusted_captions
from clipdpo_mini.world import PROMPTS, Item, MiniScene


def _write(path, rows) -> str:
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    return str(path)


def _read(path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_trusted_answers_are_the_true_captions_under_each_prompt_in_turn(tmp_path) -> None:
    pool = tmp_path / "pool"
    pool.mkdir()
    rows = [{"image": f"/w/{i}.png", "scene": {"index": i, "items": []}, "caption": f"a red ball {i}."}
            for i in range(7)]  # fmt: skip
    _write(pool / "scenes.jsonl", rows)
    out = _read(trusted_captions({"pool": str(pool)}, str(tmp_path / "trusted.jsonl")))
    assert [r["text"] for r in out] == [f"a red ball {i}." for i in range(7)]
    assert [r["prompt"] for r in out] == [*PROMPTS, PROMPTS[0], PROMPTS[1]]
    assert len({r["id"] for r in out}) == 7 and [r["image"] for r in out] == [r["image"] for r in rows]


def test_source_arms_concatenate_their_parts_and_agreement_counts_each(tmp_path) -> None:
    image = os.path.abspath("scene.png")
    scenes = {image: MiniScene(0, (Item("ball", "red", 0),))}
    pair = lambda pid, chosen, rejected, **kw: {"id": pid, "image": image, "chosen": chosen,  # noqa: E731
                                                "rejected": rejected, **kw}  # fmt: skip
    parts = {
        "ranked": _write(tmp_path / "r.jsonl", [pair("r1", "a red ball.", "a red ball and a box.")]),
        "injected": _write(tmp_path / "i.jsonl", [
            pair("i1", "a red ball.", "a red ball, and a blue kite.", hallucination="existence"),
            pair("i2", "a red ball.", "a pink ball.", hallucination="attribute"),
        ]),
        "noised": _write(tmp_path / "n.jsonl", [pair("n1", "a red ball and a box.", "a red ball.")]),
    }  # fmt: skip
    (tmp_path / "sources").mkdir()
    combined = _read(source_pairs(SOURCES["ranked+povid"], parts, str(tmp_path)))
    assert [p["id"] for p in combined] == ["r1", "i1", "i2", "n1"]
    assert source_pairs(SOURCES["noised"], parts, str(tmp_path)) == parts["noised"]
    agree = source_agreement(parts, scenes)
    assert (agree["ranked"]["chosen_fewer"], agree["ranked"]["agreement"]) == (1, 1.0)
    assert (agree["noised"]["chosen_more"], agree["noised"]["agreement"]) == (1, 0.0)
    assert agree["injected"]["same"] == 1 and agree["injected:attribute"]["same"] == 1  # colour: no object
    assert agree["injected:existence"]["chosen_fewer"] == 1
    assert (agree["povid"]["pairs"], agree["povid"]["agreement"]) == (3, 0.5)
    assert (agree["ranked+povid"]["pairs"], agree["ranked+povid"]["agreement"]) == (4, round(2 / 3, 4))
