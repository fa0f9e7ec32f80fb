"""`caption`: records per image x prompt x sample, ids, seeds, grouping, folder and JSONL input, resume."""

from __future__ import annotations

import json
import os

import pytest

from clipdpo_cli.io.errors import RecordFailure
from clipdpo_cli.io.records import make_id
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.stages.batched import Group, run_in_batches
from clipdpo_cli.stages.caption import CaptionSettings, caption_jobs, caption_records, read_prompts
from tests.conftest import run_in_process
from tests.generation_helpers import run_cli

GOOD = ["a.png", "b.jpg", "c.webp", os.path.join("sub", "d.png")]
FIELDS = {"id", "image", "kind", "text", "prompt", "model", "sample", "temperature", "top_p",
          "max_new_tokens", "seed"}  # fmt: skip


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def settings(**kw) -> CaptionSettings:
    base = {"prompts": ("Describe it.", "What is in the picture?"), "max_new_tokens": 4, "workers": 2}
    return CaptionSettings(**{**base, **kw})


def image_records(folder: str, names=GOOD) -> list[dict]:
    return [{"id": f"img-{i}", "image": os.path.join(folder, n)} for i, n in enumerate(names)]


def test_default_prompts_are_five_distinct_lines() -> None:
    prompts = read_prompts()
    assert len(prompts) == 5 == len(set(prompts))
    assert all(not p.startswith("#") for p in prompts)


def test_prompts_file_skips_comments_and_blanks(tmp_path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("# mine\n\nFirst prompt.\n  Second prompt.  \nFirst prompt.\n")
    assert read_prompts(str(path)) == ["First prompt.", "Second prompt."]


def test_run_in_batches_keeps_groups_whole_and_in_order() -> None:
    calls = []

    def run(items):
        jobs = [job for _, job in items]
        calls.append(jobs)
        return [j * 10 for j in jobs]

    groups = [Group({"n": n}, list(range(n))) for n in (3, 1, 4, 2)]
    out = list(run_in_batches(iter(groups), 3, run))
    assert [g.record["n"] for g in out] == [3, 1, 4, 2]
    assert [g.results for g in out] == [[0, 10, 20], [0], [0, 10, 20, 30], [0, 10]]
    assert [len(c) for c in calls] == [3, 3, 3, 1]  # batches cross group boundaries


def test_run_in_batches_by_key_batches_one_prompt_and_keeps_input_order() -> None:
    """Rows of one key (prompt) go together; groups still come out whole and in input order."""
    calls = []

    def run(items):
        calls.append([job for _, job in items])
        return [f"{g.record['n']}{job}" for g, job in items]

    groups = [Group({"n": n}, ["A", "B", "C"]) for n in range(4)]  # 4 images x prompts A, B, C
    out = list(run_in_batches(iter(groups), 2, run, key=lambda job: job, window=6))
    assert [g.record["n"] for g in out] == [0, 1, 2, 3]
    assert [g.results for g in out] == [[f"{n}A", f"{n}B", f"{n}C"] for n in range(4)]
    assert calls == [["A", "A"], ["B", "B"], ["C", "C"]] * 2  # never a mixed batch here
    # the window bounds what waits: with 1 prompt-queue's worth allowed, the oldest queue runs early
    calls.clear()
    groups = [Group({"n": n}, ["A", "B", "C"]) for n in range(4)]
    out = list(run_in_batches(iter(groups), 4, run, key=lambda job: job, window=4))
    assert [g.results for g in out] == [[f"{n}A", f"{n}B", f"{n}C"] for n in range(4)]
    assert all(len(set(c)) == 1 for c in calls) and sum(map(len, calls)) == 12
    assert calls[0] == ["A", "A"]  # two images in, 6 rows > 4 waiting: the oldest queue (A) runs


def test_caption_batches_rows_of_one_prompt_in_input_order(tiny_lvlm, image_folder) -> None:
    """Each generate call holds one prompt's rows (images in input order); records come out per image."""
    seen = []
    generate = tiny_lvlm.generate

    def spy(images, prompts, **kw):
        seen.append(list(prompts))
        return generate(images, prompts, **kw)

    lvlm = type("Spy", (), {"name": tiny_lvlm.name, "generate": staticmethod(spy)})()
    out = list(caption_records(image_records(image_folder), lvlm, settings(seed=3, batch_size=4)))
    assert [len(set(p)) for p in seen] == [1, 1]  # 4 images x 2 prompts: two batches of one prompt each
    assert [r["prompt"] for r in out] == ["Describe it.", "What is in the picture?"] * 4
    assert [r["image"] for r in out] == [os.path.join(image_folder, n) for n in GOOD for _ in range(2)]
    alone = list(caption_records(image_records(image_folder), tiny_lvlm, settings(seed=3, batch_size=1)))
    assert [(r["id"], r["text"]) for r in out] == [(r["id"], r["text"]) for r in alone]  # each text its row's


def test_counts_fields_and_grouping(tiny_lvlm, image_folder) -> None:
    s = settings(samples_per_prompt=3, seed=5, batch_size=4)
    out = list(caption_records(image_records(image_folder), tiny_lvlm, s))
    assert len(out) == 4 * 2 * 3
    assert all(set(r) == FIELDS for r in out)
    assert all(r["kind"] == "caption" and r["model"] == tiny_lvlm.name and r["seed"] == 5 for r in out)
    images = [r["image"] for r in out]
    assert images == [os.path.join(image_folder, n) for n in GOOD for _ in range(6)]  # grouped, input order
    first = out[:6]
    assert [(r["prompt"], r["sample"]) for r in first] == [
        ("Describe it.", 0), ("Describe it.", 1), ("Describe it.", 2),
        ("What is in the picture?", 0), ("What is in the picture?", 1), ("What is in the picture?", 2),
    ]  # fmt: skip
    assert len({r["id"] for r in out}) == len(out)
    r = out[0]
    assert r["id"] == make_id("caption", r["image"], tiny_lvlm.name, "Describe it.", 0, 5, 0.7, 0.95, 4)


def test_seed_makes_output_independent_of_batch_size_and_order(tiny_lvlm, image_folder) -> None:
    recs = image_records(image_folder)
    a = list(caption_records(recs, tiny_lvlm, settings(seed=7, batch_size=1, samples_per_prompt=2)))
    b = list(caption_records(recs, tiny_lvlm, settings(seed=7, batch_size=5, samples_per_prompt=2)))
    c = list(caption_records(recs[::-1], tiny_lvlm, settings(seed=7, batch_size=3, samples_per_prompt=2)))
    assert a == b
    assert sorted(a, key=lambda r: r["id"]) == sorted(c, key=lambda r: r["id"])
    assert len({r["text"] for r in a}) > len(a) // 2  # samples differ from each other
    other = list(caption_records(recs, tiny_lvlm, settings(seed=8, batch_size=5, samples_per_prompt=2)))
    assert {r["id"] for r in other}.isdisjoint(r["id"] for r in a)
    assert [r["text"] for r in other] != [r["text"] for r in a]


def test_greedy_captions_ignore_the_seed_but_not_the_prompt(tiny_lvlm, image_folder) -> None:
    recs = image_records(image_folder)[:2]
    a = list(caption_records(recs, tiny_lvlm, settings(temperature=0, seed=1)))
    b = list(caption_records(recs, tiny_lvlm, settings(temperature=0, seed=2)))
    assert [r["text"] for r in a] == [r["text"] for r in b]
    by_prompt = {p: [r["text"] for r in a if r["prompt"] == p] for p in settings().prompts}
    first, second = by_prompt.values()
    assert len(first) == len(second) == 2 and first != second  # the prompt does change the caption


def test_jsonl_input_with_image_root_passes_fields_through(tiny_lvlm, image_folder) -> None:
    recs = [{"id": "x", "image": "a.png", "source": "coco", "split": 3}]
    out = list(caption_records(recs, tiny_lvlm, settings(image_root=image_folder, seed=1)))
    assert len(out) == 2
    assert all(r["image"] == "a.png" and r["source"] == "coco" and r["split"] == 3 for r in out)


def test_bad_records_fail_or_are_counted(tiny_lvlm, image_folder) -> None:
    recs = [*image_records(image_folder, ["a.png", "broken.jpg", "missing.png"]), {"id": "n", "path": "x"}]
    ctx = StageContext("caption", on_error="skip")
    out = list(caption_records(recs, tiny_lvlm, settings(seed=1), ctx))
    assert len(out) == 2
    assert dict(ctx.stats.skipped) == {"corrupt image": 1, "image not found": 1, "missing field 'image'": 1}
    with pytest.raises(RecordFailure, match="broken.jpg"):
        list(caption_records(recs, tiny_lvlm, settings(seed=1), StageContext("caption")))


def test_cli_folder_input_with_a_corrupt_image(tiny_llava_dir, image_folder, tmp_path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Describe it.\nWhat is shown?\nList the objects.\n")
    args = ["caption", image_folder, "-m", tiny_llava_dir, "--prompts", str(prompts),
            "--samples-per-prompt", "2", "--max-new-tokens", "3", "--seed", "1", "--batch-size", "5",
            "--device", "cpu", "--on-error", "skip"]  # fmt: skip
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    out = lines(result.stdout)
    assert len(out) == 4 * 3 * 2
    assert sorted({r["image"] for r in out}) == sorted(os.path.join(image_folder, n) for n in GOOD)
    assert "24 out; skipped bad 1 corrupt image" in result.stderr


def test_cli_resume_completes_a_killed_run(tiny_llava_dir, image_folder, tmp_path) -> None:
    out_path = tmp_path / "caps.jsonl"
    args = ["caption", image_folder, "-m", tiny_llava_dir, "--max-new-tokens", "3", "--seed", "4",
            "--on-error", "skip", "-o", str(out_path), "-q"]  # fmt: skip
    assert run_cli(*args).returncode == 0
    full = out_path.read_text()
    assert len(full.splitlines()) == 4 * 5
    kept = full.splitlines(keepends=True)[:7]
    out_path.write_text("".join(kept) + '{"id": "half-writ')  # killed mid-line, in the second image
    resumed = run_cli(*args[:-1], "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert out_path.read_text() == full
    assert "7 already done (resume)" in resumed.stderr


def test_cli_unknown_model_offline_is_one_line(image_folder) -> None:
    result = run_cli("caption", image_folder, "-m", "no-such-org/no-such-llava")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "clipdpo caption: error: model 'no-such-org/no-such-llava' is not a local directory and is not in "
        "the "
        "Hugging Face cache (HF_HUB_OFFLINE=1: download it first, or pass a local directory)"
    )


def test_shards_together_give_the_unsharded_output(tiny_lvlm, image_folder) -> None:
    from clipdpo_cli.io.shard import Shard, shard_key

    recs = image_records(image_folder)
    s = settings(seed=9, batch_size=3)
    whole = list(caption_records(recs, tiny_lvlm, s))
    parts = []
    for k in range(2):
        shard = Shard(k, 2)
        parts += list(caption_records([r for r in recs if shard.owns(shard_key(r))], tiny_lvlm, s))
    assert sorted(parts, key=lambda r: r["id"]) == sorted(whole, key=lambda r: r["id"])


def test_resume_does_not_decode_images_already_done(tiny_lvlm, image_folder) -> None:
    broken = image_records(image_folder, ["broken.jpg"])
    done = {job.id for job in caption_jobs(broken[0]["image"], tiny_lvlm.name, settings(seed=1))}
    ctx = StageContext("caption", done=done)  # --on-error fail: decoding broken.jpg would raise
    assert list(caption_records(broken, tiny_lvlm, settings(seed=1), ctx)) == []
    assert ctx.stats.resumed == 2


def test_cli_checks_input_and_resume_before_loading_the_model(tmp_path) -> None:
    missing = run_in_process("caption", str(tmp_path / "nothing.jsonl"), "-m", "no-such-org/no-such-llava")
    assert (missing.returncode, missing.stderr.strip()) == (
        1, f"clipdpo caption: error: input file not found: {tmp_path / 'nothing.jsonl'}"
    )  # fmt: skip
    resume = run_in_process("ask", str(tmp_path), "-m", "no-such-org/no-such-llm", "--resume")
    assert resume.returncode == 2 and "--resume needs -o FILE" in resume.stderr


def test_ids_and_records_carry_max_pixels_and_the_chat_template_only_when_given():
    """What the model sees changes with --max-pixels or --chat-template: so do the ids (a resumed run with
    another setting must not keep the old captions); without them the ids are the ones of before."""
    from clipdpo_cli.io.records import make_id
    from clipdpo_cli.stages.caption import CaptionJob, CaptionSettings, caption_jobs, caption_record

    plain = CaptionSettings(prompts=("Describe.",), seed=3)
    (job,) = caption_jobs("a.png", "m", plain)
    assert job.id == make_id("caption", "a.png", "m", "Describe.", 0, 3, 0.7, 0.95, 128)
    capped = CaptionSettings(prompts=("Describe.",), seed=3, max_pixels=50000)
    templated = CaptionSettings(prompts=("Describe.",), seed=3, chat_template_digest="0123abcd")
    ids = {job.id, caption_jobs("a.png", "m", capped)[0].id, caption_jobs("a.png", "m", templated)[0].id}
    assert len(ids) == 3
    record = caption_record({"image": "a.png"}, CaptionJob("x", "Describe.", 0, None), "t", "m", capped)
    assert record["max_pixels"] == 50000 and "chat_template_sha256" not in record
    assert "max_pixels" not in caption_record({"image": "a.png"}, job, "t", "m", plain)
