"""`perturb --method llm`: prompts per type, lenient replies, rejects, seeds, resume, and the CLI path."""

from __future__ import annotations

import json

import pytest

from clipdpo_cli.io.errors import InputError
from clipdpo_cli.io.records import make_id
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.models.sampling import job_seed
from clipdpo_cli.stages.perturb import (
    SYSTEM_PROMPT,
    TYPES,
    PerturbSettings,
    UnusableReply,
    parse_caption,
    perturb_records,
    read_prompts,
)
from tests.conftest import invoke_cli

CAPTION = "A red car parked next to a tree."
PROMPTS = {kind: f"[{kind}] Change one fact of: {{caption}}" for kind in TYPES}

REPLIES = {
    "existence": '{"caption": "A red car parked next to a tree and a dog."}',
    "attribute": 'Sure! Here it is:\n```json\n{"caption": "A blue car parked next to a tree."}\n```\nEnjoy.',
    "relation": "I cannot do that, sorry.",
}


class FakeLlm:
    """Replies chosen by the [type] tag of the prompt; records every call."""

    name = "fake-llm"

    def __init__(self, replies: dict[str, str]) -> None:
        self.replies = replies
        self.calls: list[dict] = []

    def generate(self, prompts, max_new_tokens=256, temperature=1.0, top_p=1.0, seed=None, system=None):
        self.calls.append(
            {"prompts": list(prompts), "seed": seed, "system": system, "temperature": temperature}
        )
        return [next(r for k, r in self.replies.items() if f"[{k}]" in p) for p in prompts]


def run(records, llm, ctx=None, **settings):
    rejected: list[dict] = []
    ctx = ctx or StageContext("perturb", rejects=rejected.append)
    out = list(perturb_records(iter(records), PerturbSettings(prompts=PROMPTS, **settings), ctx, llm))
    return out, ctx, rejected


def rec(rid: str, text: str = CAPTION) -> dict:
    return {"id": rid, "image": f"{rid}.jpg", "text": text, "source": "coco"}


def test_parse_caption_leniently():
    assert parse_caption('{"caption": " A dog. "}', "A cat.") == "A dog."
    assert parse_caption('Here: {"caption": "A dog."} ok {', "A cat.") == "A dog."
    assert parse_caption('{"result": {"caption": "A dog."}}', "A cat.") == "A dog."
    for reply, reason in [
        ("no json here", "LLM reply not JSON"),
        ('{"text": "A dog."}', "LLM reply without a caption"),
        ('["A dog."]', "LLM reply without a caption"),
        ('{"caption": "a CAT"}', "LLM caption same as the original"),
    ]:
        with pytest.raises(UnusableReply, match=reason):
            parse_caption(reply, "A cat.")


def test_variants_rejects_and_prompts():
    llm = FakeLlm(REPLIES)
    out, ctx, rejected = run([rec("a")], llm, temperature=0.3)
    assert [r["hallucination"] for r in out] == ["none", "existence", "attribute"]
    assert out[0] == {**rec("a"), "original": CAPTION, "hallucination": "none", "from": "a"}
    assert out[1] == {
        **rec("a"),
        "id": make_id("perturb", "a", "existence", "llm"),
        "text": "A red car parked next to a tree and a dog.",
        "original": CAPTION,
        "hallucination": "existence",
        "from": "a",
        "method": "llm",
        "perturb_model": "fake-llm",
    }
    assert out[2]["text"] == "A blue car parked next to a tree."
    assert dict(ctx.stats.dropped) == {"LLM reply not JSON": 1}
    [reject] = rejected
    assert (
        reject["id"] == make_id("perturb", "a", "relation", "llm") and reject["hallucination"] == "relation"
    )
    assert reject["reply"] == REPLIES["relation"] and reject["reject_reason"] == "LLM reply not JSON"
    [call] = llm.calls
    assert call["prompts"] == [PROMPTS[k].replace("{caption}", CAPTION) for k in TYPES]
    assert call["system"] == SYSTEM_PROMPT and call["seed"] is None and call["temperature"] == 0.3


def test_same_as_original_and_captionless_replies_are_rejected():
    llm = FakeLlm({"existence": f'{{"caption": "{CAPTION.upper()}"}}', "attribute": '{"answer": "x"}'})
    out, ctx, rejected = run([rec("a")], llm, types=("existence", "attribute"))
    assert [r["hallucination"] for r in out] == ["none"]
    assert dict(ctx.stats.dropped) == {
        "LLM caption same as the original": 1,
        "LLM reply without a caption": 1,
    }
    assert {r["kind"] for r in rejected} == {"perturb_reply"}


def test_batches_keep_order_and_seeds_are_per_variant():
    llm = FakeLlm({**REPLIES, "relation": '{"caption": "A red car parked far from a tree."}'})
    out, _, _ = run([rec("a"), rec("b"), rec("c")], llm, seed=7, batch_size=2)
    assert [(r["from"], r["hallucination"]) for r in out] == [
        (rid, kind) for rid in "abc" for kind in ("none", *TYPES)
    ]
    assert [len(c["prompts"]) for c in llm.calls] == [2, 2, 2, 2, 1]
    seeds = [s for c in llm.calls for s in c["seed"]]
    assert seeds == [job_seed(7, make_id("perturb", rid, kind, "llm")) for rid in "abc" for kind in TYPES]


def test_resume_skips_done_variants():
    llm = FakeLlm(REPLIES)
    done = {"a", make_id("perturb", "a", "existence", "llm"), make_id("perturb", "a", "attribute", "llm")}
    ctx = StageContext("perturb", done=done)
    out, ctx, _ = run([rec("a")], llm, ctx)
    assert llm.calls[0]["prompts"] == [PROMPTS["relation"].replace("{caption}", CAPTION)]
    assert [r["hallucination"] for r in out] == ["none"] and ctx.stats.resumed == 2


def test_prompts_files(tmp_path):
    packaged = read_prompts()
    assert set(packaged) == set(TYPES) and all(
        "{caption}" in p and '"caption"' in p for p in packaged.values()
    )
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps({"attribute": "Change a color: {caption}"}))
    assert read_prompts(str(path)) == {"attribute": "Change a color: {caption}"}
    with pytest.raises(InputError, match="no template for existence"):
        perturb_records([], PerturbSettings(prompts=read_prompts(str(path))), llm=FakeLlm({}))
    for bad in ({"attribute": "no placeholder"}, {"colour": "{caption}"}, ["{caption}"]):
        path.write_text(json.dumps(bad))
        with pytest.raises(InputError, match="must map hallucination types"):
            read_prompts(str(path))


@pytest.fixture
def with_perturb(monkeypatch):
    from clipdpo_cli import cli

    if "perturb" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "perturb"))


def test_cli_llm_path(tmp_path, monkeypatch, with_perturb):
    from clipdpo_cli.models import llm as llm_module

    loaded: list[tuple] = []
    fake = FakeLlm(REPLIES)

    def fake_load(name, device="auto", dtype="auto", chat_template=None):
        loaded.append((name, device, dtype, chat_template))
        return fake

    monkeypatch.setattr(llm_module, "load_llm", fake_load)
    src, out, rej = tmp_path / "caps.jsonl", tmp_path / "out.jsonl", tmp_path / "rejects.jsonl"
    src.write_text(json.dumps(rec("a")) + "\n")
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(PROMPTS))
    template = tmp_path / "chat.jinja"
    template.write_text("{{ messages }}")
    args = [
        "perturb",
        str(src),
        "--method",
        "llm",
        "-m",
        "some/llm",
        "--prompts",
        str(prompts),
        "--seed",
        "0",
    ]
    result = invoke_cli(*args, "--chat-template", str(template), "--device", "cpu", "-o", str(out),
                        "--rejects", str(rej))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert loaded == [("some/llm", "cpu", "auto", str(template))]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["hallucination"] for r in records] == ["none", "existence", "attribute"]
    assert records[1]["perturb_model"] == "fake-llm"
    assert [json.loads(line)["reject_reason"] for line in rej.read_text().splitlines()] == [
        "LLM reply not JSON"
    ]
    assert "1 in, 3 out; dropped 1 LLM reply not JSON" in result.stderr
    assert fake.calls[0]["seed"] == [job_seed(0, make_id("perturb", "a", k, "llm")) for k in TYPES]


def test_cli_with_a_real_tiny_llm(tmp_path, tiny_llm_json_dir, with_perturb):
    """A real (tiny, random) LLM through load_llm: it was taught a question list, never a caption, so its
    reply is rejected with a reason; the original still comes out."""
    src = tmp_path / "caps.jsonl"
    src.write_text(json.dumps(rec("a")) + "\n")
    result = invoke_cli("perturb", str(src), "--method", "llm", "-m", tiny_llm_json_dir, "--temperature", "0",
                        "--max-new-tokens", "99", "--types", "attribute")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["hallucination"] for line in result.stdout.splitlines()] == ["none"]
    assert "1 in, 1 out; dropped 1 LLM reply" in result.stderr
