"""`clipdpo respond`: the query-answering stage, by rule on a fake LVLM and on the tiny LLaVA against direct
calls of the model (greedy text, next-token probabilities), with resume, shards and bad images."""

from __future__ import annotations

import json

import pytest

from clipdpo_cli.io.errors import RecordFailure
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.stages.respond import RespondSettings, respond_records, row_seed
from tests.conftest import invoke_cli as invoke


class FakeLvlm:
    """Answers by rule and records every call."""

    name = "fake"

    def __init__(self):
        self.calls = []

    def generate(self, images, prompts, max_new_tokens, temperature, top_p, seed):
        self.calls.append(("generate", list(prompts), max_new_tokens, seed))
        return [" Yes, it is." if "?" in p else " A red square. " for p in prompts]

    def next_token_probs(self, images, prompts, candidates):
        self.calls.append(("probs", list(prompts), list(candidates)))
        return [{"Yes": 0.25, "yes": 0.05, "No": 0.2, "no": 0.15} for _ in prompts]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("respond-images")
    for i, color in enumerate(["red", "green", "blue"]):
        Image.new("RGB", (40 + 8 * i, 32), color).save(root / f"{i}.png")
    return root


def _queries(images, n_describe=2, n_yes_no=3):
    out = [{"id": f"d{i}", "image": str(images / f"{i % 3}.png"), "prompt": "Describe it.", "extra": i}
           for i in range(n_describe)]  # fmt: skip
    out += [{"id": f"q{i}", "image": str(images / f"{i % 3}.png"), "prompt": f"Is it red {i}?",
             "yes_no": True} for i in range(n_yes_no)]  # fmt: skip
    return out


def test_respond_stage_batches_one_kind_at_a_time(images):
    lvlm = FakeLvlm()
    out = list(respond_records(_queries(images), lvlm, RespondSettings(batch_size=2, seed=5, workers=0)))
    assert [r["id"] for r in out] == ["d0", "d1", "q0", "q1", "q2"]  # input order
    assert out[0] == {"id": "d0", "image": str(images / "0.png"), "prompt": "Describe it.", "extra": 0,
                      "response": "A red square.", "model": "fake", "mode": "describe"}  # fmt: skip
    # p_yes = 0.25 + 0.05 = 0.3 < p_no = 0.2 + 0.15 = 0.35
    assert out[2]["response"] == "No" and out[2]["p_yes"] == 0.3 and out[2]["p_no"] == 0.35
    assert out[2]["mode"] == "yes_no_prob" and out[2]["yes_no"] is True
    assert [(c[0], len(c[1])) for c in lvlm.calls] == [("generate", 2), ("probs", 2), ("probs", 1)]
    assert lvlm.calls[0][2] == 512 and lvlm.calls[0][3] == [row_seed(5, "d0"), row_seed(5, "d1")]
    assert lvlm.calls[1][2] == ["Yes", "No", "yes", "no"]
    assert row_seed(5, 7) == 12 and row_seed(None, 7) is None  # integer ids (AMBER's): seed + id


def test_respond_stage_free_yes_no_and_bad_records(images):
    lvlm = FakeLvlm()
    queries = _queries(images, 1, 2) + [{"id": "x", "image": str(images / "0.png")},
                                        {"id": "y", "image": "missing.png", "prompt": "Hi"}]  # fmt: skip
    ctx = StageContext("respond", on_error="skip")
    settings = RespondSettings(yes_no="generate", batch_size=8, workers=0)
    out = list(respond_records(queries, lvlm, settings, ctx))
    assert [r["id"] for r in out] == ["d0", "q0", "q1"]
    assert out[1]["response"] == "Yes" and out[1]["text"] == " Yes, it is."
    assert out[1]["mode"] == "yes_no_generate"
    assert [c[2] for c in lvlm.calls] == [512, 8]  # a short budget for yes/no answers
    assert sum(ctx.stats.skipped.values()) == 2
    with pytest.raises(RecordFailure, match="missing field 'prompt'"):
        list(respond_records(queries, FakeLvlm(), settings))


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_respond_tiny_llava_equals_direct_model_calls(tiny_llava_path, images, tmp_path):
    import torch
    from PIL import Image

    from clipdpo_cli.models.lvlm import candidate_token_ids, load_lvlm

    queries = _queries(images)
    out = tmp_path / "r.jsonl"
    args = ("respond", _write(tmp_path / "q.jsonl", queries), "-m", tiny_llava_path, "--device", "cpu",
            "--max-new-tokens", "6", "--batch-size", "2", "-o", str(out))  # fmt: skip
    proc = invoke(*args)
    assert proc.exit_code == 0, proc.stderr
    assert "clipdpo respond: 5 in, 5 out" in proc.stderr
    got = {r["id"]: r for r in _read(out)}
    lvlm = load_lvlm(tiny_llava_path, device="cpu")
    tok = lvlm.tokenizer
    for q in queries:
        image = Image.open(q["image"]).convert("RGB")
        batch = lvlm.inputs([image], [q["prompt"]])
        if q.get("yes_no"):
            with torch.inference_mode():
                probs = torch.softmax(lvlm.model(**batch).logits[0, -1].float(), dim=-1)
            p_yes = sum(float(probs[candidate_token_ids(tok, w)].sum()) for w in ("Yes", "yes"))
            p_no = sum(float(probs[candidate_token_ids(tok, w)].sum()) for w in ("No", "no"))
            assert got[q["id"]]["p_yes"] == pytest.approx(p_yes, abs=2e-6)
            assert got[q["id"]]["p_no"] == pytest.approx(p_no, abs=2e-6)
            assert got[q["id"]]["response"] == ("Yes" if p_yes > p_no else "No")
        else:
            with torch.inference_mode():
                ids = lvlm.model.generate(**batch, do_sample=False, max_new_tokens=6)
            text = tok.decode(ids[0, batch["input_ids"].shape[1]:], skip_special_tokens=True)
            assert got[q["id"]]["response"] == text.strip()
            assert got[q["id"]]["extra"] == q["extra"]  # the query's own fields are kept

    # --resume after a run killed mid-line: only the missing queries are answered, nothing doubled
    whole = out.read_text().splitlines()
    out.write_text("\n".join(whole[:2]) + "\n" + whole[2][:10])
    proc = invoke(*args, "--resume")
    assert proc.exit_code == 0, proc.stderr
    assert "3 in, 3 out; 2 already done (resume)" in proc.stderr
    assert out.read_text().splitlines() == whole

    # two shards partition the queries, by image, and answer them as the whole run did
    parts = []
    for k in range(2):
        part = tmp_path / f"s{k}.jsonl"
        assert invoke(*args[:-1], str(part), "--shard", f"{k}/2", "-q").exit_code == 0
        parts.append(_read(part))
    assert sorted(r["id"] for p in parts for r in p) == sorted(got)
    assert not {r["image"] for r in parts[0]} & {r["image"] for r in parts[1]}
    assert all(r == got[r["id"]] for p in parts for r in p)


def test_respond_bad_image_fails_or_is_skipped(tiny_llava_path, images, tmp_path):
    queries = _queries(images, 2, 1)
    queries[1]["image"] = str(tmp_path / "gone.png")
    path = _write(tmp_path / "q.jsonl", queries)
    args = ("respond", path, "-m", tiny_llava_path, "--device", "cpu", "--max-new-tokens", "2")
    with pytest.raises(RecordFailure, match=r"record d1 .*image not found.*--on-error skip"):
        invoke(*args, "-o", str(tmp_path / "fail.jsonl"))
    proc = invoke(*args, "--on-error", "skip")
    assert proc.exit_code == 0, proc.stderr
    assert [json.loads(line)["id"] for line in proc.stdout.splitlines()] == ["d0", "q0"]
    assert "skipped bad 1" in proc.stderr
