"""`ask`: prompt, lenient JSON parsing, record contract, grouping, resume, seeds, malformed replies."""

from __future__ import annotations

import json

import pytest

from clipdpo_cli.io.errors import InputError
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.qa import qa_to_caption
from clipdpo_cli.stages.ask import AskSettings, MalformedAnswer, ask_records, build_prompt, parse_questions
from tests.generation_helpers import run_cli

GOOD_REPLY = json.dumps(
    {"questions": [
        {"question": "What color is the car?", "answer_pos": "red", "answer_neg": "blue"},
        {"question": "How many dogs are in the picture?", "answer_pos": "two", "answer_neg": "five"},
        {"question": "Where is the cat?", "answer_pos": "on the sofa", "answer_neg": "under the table"},
    ]}
)  # fmt: skip


class ScriptedLlm:
    """Replies chosen by a word of the prompt; records every call."""

    name = "scripted-llm"

    def __init__(self, replies: dict[str, str]) -> None:
        self.replies = replies
        self.calls: list[dict] = []

    def generate(self, prompts, max_new_tokens=256, temperature=1.0, top_p=1.0, seed=None, system=None):
        self.calls.append({"prompts": list(prompts), "seed": seed, "system": system})
        return [next(r for k, r in self.replies.items() if k in p) for p in prompts]


def captions(image: str, texts: list[str], **extra) -> list[dict]:
    return [
        {"id": f"{image}-c{i}", "image": image, "kind": "caption", "text": t, "prompt": "p", "sample": 0,
         "clip_score": 30.0 + i, **extra}
        for i, t in enumerate(texts)
    ]  # fmt: skip


# --- parsing ---------------------------------------------------------------------------------------


def test_parse_plain_json_limits_the_number() -> None:
    out = parse_questions(GOOD_REPLY, 2)
    assert out == [
        {"question": "What color is the car?", "answer_pos": "red", "answer_neg": "blue"},
        {"question": "How many dogs are in the picture?", "answer_pos": "two", "answer_neg": "five"},
    ]


def test_parse_code_fence_and_chatter() -> None:
    item = '{"question": "Is it day?", "positive": "yes", "negative": "no"}'
    reply = f"Sure! Here you go:\n```json\n[{item}]\n```\nBye"
    assert parse_questions(reply, 2) == [{"question": "Is it day?", "answer_pos": "yes", "answer_neg": "no"}]


def test_parse_trailing_text_and_a_single_object() -> None:
    item = '{"question": "What is on the table?", "answer_pos": "a cup", "answer_neg": "a phone"}'
    reply = item + " hope it helps {"
    assert parse_questions(reply, 2)[0]["answer_neg"] == "a phone"


def test_parse_skips_incomplete_equal_and_repeated_items() -> None:
    reply = json.dumps({"questions": [
        {"question": "Q1?", "answer_pos": "a"},
        {"question": "Q2?", "answer_pos": "same", "answer_neg": "Same"},
        {"question": "Q3?", "answer_pos": "x", "answer_neg": "y"},
        {"question": "q3?", "answer_pos": "x", "answer_neg": "z"},
        "junk",
        {"question": "Q4?", "answer_pos": 3, "answer_neg": 4},
    ]})  # fmt: skip
    assert [q["question"] for q in parse_questions(reply, 5)] == ["Q3?", "Q4?"]
    assert parse_questions(reply, 5)[1]["answer_pos"] == "3"


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("I cannot answer that.", "LLM reply not JSON"),
        ('{"questions": [{"question": "broken', "LLM reply not JSON"),
        ('{"questions": []}', "LLM reply without valid questions"),
        ('[{"q": "only a question"}]', "LLM reply without valid questions"),
    ],
)
def test_parse_malformed(reply: str, reason: str) -> None:
    with pytest.raises(MalformedAnswer, match=reason):
        parse_questions(reply, 2)


def test_prompt_lists_the_captions_and_asks_for_json() -> None:
    prompt = build_prompt(["A dog.", "A brown dog on grass."], 2)
    assert "1. A dog.\n2. A brown dog on grass." in prompt
    assert "Write 2 different questions" in prompt
    assert '{"questions": [{"question": "...", "answer_pos": "...", "answer_neg": "..."}]}' in prompt


# --- the stage -------------------------------------------------------------------------------------


def test_records_contract_and_caption_dedup() -> None:
    recs = captions(
        "a.jpg", ["A red car.", "A red car.", "Two dogs near a car."], category="objects", user="u1"
    )
    llm = ScriptedLlm({"red car": GOOD_REPLY})
    out = list(ask_records(recs, llm, AskSettings(questions=2, seed=3)))
    assert len(out) == 2
    first = out[0]
    assert first["kind"] == "qa" and first["image"] == "a.jpg" and first["model"] == "scripted-llm"
    assert first["question"] == "What color is the car?"
    assert (first["answer_pos"], first["answer_neg"]) == ("red", "blue")
    assert first["text"] == qa_to_caption("What color is the car?", "red") == "The car is red."
    assert first["from"] == ["a.jpg-c0", "a.jpg-c2"]  # the duplicate caption is shown once
    assert first["category"] == "objects" and first["user"] == "u1"
    assert "clip_score" not in first and "prompt" not in first
    assert llm.calls[0]["prompts"][0].count("A red car.") == 1
    assert llm.calls[0]["system"]
    assert out[0]["id"] != out[1]["id"]
    again = list(ask_records(recs, ScriptedLlm({"red car": GOOD_REPLY}), AskSettings(questions=2, seed=3)))
    assert [r["id"] for r in again] == [r["id"] for r in out]


def test_malformed_reply_is_dropped_to_rejects_not_raised() -> None:
    recs = captions("a.jpg", ["A red car."]) + captions("b.jpg", ["A cat."])
    rejected: list[dict] = []
    ctx = StageContext("ask", on_error="fail", rejects=rejected.append)
    llm = ScriptedLlm({"red car": GOOD_REPLY, "cat": "Sorry, I can't write JSON today."})
    out = list(ask_records(recs, llm, AskSettings(questions=3), ctx))
    assert [r["image"] for r in out] == ["a.jpg"] * 3
    assert dict(ctx.stats.dropped) == {"LLM reply not JSON": 1}
    assert rejected[0]["reply"] == "Sorry, I can't write JSON today."
    assert rejected[0]["image"] == "b.jpg" and rejected[0]["reject_reason"] == "LLM reply not JSON"


def test_batches_span_images_and_seeds_are_per_image() -> None:
    recs = [r for i in range(5) for r in captions(f"{i}.jpg", [f"Image {i} car."])]
    reply = {"car": GOOD_REPLY}
    small, big = ScriptedLlm(reply), ScriptedLlm(reply)
    out_small = list(ask_records(recs, small, AskSettings(seed=1, batch_size=2)))
    out_big = list(ask_records(recs, big, AskSettings(seed=1, batch_size=4)))
    assert [len(c["prompts"]) for c in small.calls] == [2, 2, 1]
    assert [len(c["prompts"]) for c in big.calls] == [4, 1]
    assert [s for c in small.calls for s in c["seed"]] == [s for c in big.calls for s in c["seed"]]
    assert out_small == out_big
    assert [r["image"] for r in out_small] == [f"{i}.jpg" for i in range(5) for _ in range(2)]


def test_ungrouped_input_needs_input_order_any() -> None:
    a, b = captions("a.jpg", ["A red car.", "A car."]), captions("b.jpg", ["A red car."])
    mixed = [a[0], b[0], a[1]]
    llm = ScriptedLlm({"car": GOOD_REPLY})
    with pytest.raises(InputError, match="not grouped by image"):
        list(ask_records(mixed, llm, AskSettings()))
    out = list(ask_records(mixed, llm, AskSettings(input_order="any")))
    assert sorted(r["image"] for r in out) == ["a.jpg", "a.jpg", "b.jpg", "b.jpg"]
    assert next(r for r in out if r["image"] == "a.jpg")["from"] == ["a.jpg-c0", "a.jpg-c1"]


def test_resume_skips_images_already_done() -> None:
    recs = captions("a.jpg", ["A red car."]) + captions("b.jpg", ["Another car."])
    first = list(ask_records(recs, ScriptedLlm({"car": GOOD_REPLY}), AskSettings(seed=2)))
    done = {r["id"] for r in first if r["image"] == "a.jpg"}
    llm = ScriptedLlm({"car": GOOD_REPLY})
    ctx = StageContext("ask", done=done)
    rest = list(ask_records(recs, llm, AskSettings(seed=2), ctx))
    assert [r["image"] for r in rest] == ["b.jpg", "b.jpg"]
    assert [len(c["prompts"]) for c in llm.calls] == [1]
    assert ctx.stats.resumed == 2
    assert rest == [r for r in first if r["image"] == "b.jpg"]


def test_captions_without_text_are_bad_records() -> None:
    recs = [{"id": "x", "image": "a.jpg", "kind": "caption"}, *captions("a.jpg", ["A red car."])]
    ctx = StageContext("ask", on_error="skip")
    out = list(ask_records(recs, ScriptedLlm({"car": GOOD_REPLY}), AskSettings(), ctx))
    assert len(out) == 2 and dict(ctx.stats.skipped) == {"missing field 'text'": 1}


# --- the CLI with a tiny Llama taught to reply with DEMO_REPLY ---------------------------------------------


def test_cli_end_to_end_with_a_real_model(tiny_llm_json_dir, tmp_path) -> None:
    recs = captions("a.jpg", ["A red car.", "A car on a road."], category="objects")
    recs += captions("b.jpg", ["A cat."])
    src = tmp_path / "caps.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in recs))
    result = run_cli("ask", str(src), "-m", tiny_llm_json_dir, "--temperature", "0", "--max-new-tokens", "99")
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["image"], r["question"]) for r in out] == [
        ("a.jpg", "What color is the main object?"), ("a.jpg", "How many objects are in the picture?"),
        ("b.jpg", "What color is the main object?"), ("b.jpg", "How many objects are in the picture?"),
    ]  # fmt: skip
    assert out[0]["answer_pos"] == "red" and out[0]["answer_neg"] == "blue"
    assert out[0]["text"] == "The main object is red."
    assert out[1]["text"] == "One objects in the picture."
    assert out[0]["from"] == ["a.jpg-c0", "a.jpg-c1"] and out[0]["category"] == "objects"
    assert out[0]["model"] == tiny_llm_json_dir
    assert "3 in, 4 out" in result.stderr
