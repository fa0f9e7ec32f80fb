"""`--engine openai` against a real `transformers serve` (on 127.0.0.1) writes exactly what the in-process
engine writes: greedy captions on two families with different chat templates (LLaVA-1.5's "USER: <image>
... ASSISTANT:" and SmolVLM's "User:<image>...<end_of_utterance>\\nAssistant:"), and `ask` on a chat LLM.

The server renders the model's own chat template and stops at its generation config's end-of-turn token;
the client sends the image as a PNG data URL of the decoded pixels. Byte-equal output files (ids included:
-m names the same folder) mean the one conversation encoding holds through the server.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_in_process

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("serve-imgs")
    Image.new("RGB", (48, 40), "red").save(root / "a.png")
    Image.new("RGB", (40, 56), (20, 140, 200)).save(root / "b.png")
    return root


@pytest.mark.parametrize("family", ["llava15", "smolvlm"])
def test_greedy_captions_through_transformers_serve_equal_the_in_process_ones(
    family, family_dir, transformers_serve_url, images, tmp_path
):
    folder = family_dir(family)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Describe this image in detail.\nWhat is in the picture?\n")
    common = (
        "caption",
        str(images),
        "-m",
        folder,
        "--prompts",
        str(prompts),
        "--temperature",
        "0",
        "--max-new-tokens",
        "10",
        "-q",
    )
    local = run_in_process(*common, "--device", "cpu", "-o", str(tmp_path / "hf.jsonl"))
    served = run_in_process(
        *common,
        "--engine",
        "openai",
        "--base-url",
        transformers_serve_url,
        "--concurrency",
        "4",
        "-o",
        str(tmp_path / "openai.jsonl"),
    )
    assert local.returncode == 0, local.stderr
    assert served.returncode == 0, served.stderr
    expected = (tmp_path / "hf.jsonl").read_text()
    texts = [json.loads(line)["text"] for line in expected.splitlines()]
    assert len(texts) == 4 and all(texts)  # real text to compare, not empty replies
    assert (tmp_path / "openai.jsonl").read_text() == expected


@pytest.mark.parametrize("llm", ["tiny_llm_json", "gemma2_it"])
def test_ask_through_transformers_serve_equals_in_process(
    llm, request, family_dir, transformers_serve_url, tmp_path
):
    """The tiny chat LLM taught to reply with JSON (questions written), and Gemma-2-it, whose template refuses
    a system turn: the server answers the first request 500, and the system text then goes atop the user turn,
    as in-process (its random replies are all rejects: the rejects files are compared)."""
    model = request.getfixturevalue("tiny_llm_json_dir") if llm == "tiny_llm_json" else family_dir(llm)
    captions = tmp_path / "caps.jsonl"
    rows = [
        {"id": f"{image}-{k}", "image": image, "kind": "caption", "text": f"A {color} ball on the grass {k}."}
        for image, color in (("x.jpg", "red"), ("y.jpg", "blue"))
        for k in range(2)
    ]
    captions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = ("ask", str(captions), "-m", model, "--temperature", "0", "--max-new-tokens", "96", "-q")
    out = {}
    for engine, extra in (("hf", ("--device", "cpu")), ("openai", ("--base-url", transformers_serve_url))):
        result = run_in_process(
            *common,
            "--engine",
            engine,
            *extra,
            "-o",
            str(tmp_path / f"{engine}.jsonl"),
            "--rejects",
            str(tmp_path / f"{engine}.rejects.jsonl"),
        )
        assert result.returncode == 0, result.stderr
        out[engine] = [(tmp_path / f"{engine}{suffix}.jsonl").read_text() for suffix in ("", ".rejects")]
    questions, rejects = out["hf"]
    if llm == "tiny_llm_json":
        assert len(questions.splitlines()) == 4 and rejects == ""  # two questions per image, parsed
    else:
        assert questions == "" and len(rejects.splitlines()) == 2
    assert out["openai"] == out["hf"]


def test_transformers_serve_refusals_are_one_line(family_dir, transformers_serve_url, tmp_path):
    """What transformers serve cannot do is refused in one line: a per-request chat template (422) and
    yes/no probabilities (it returns no logprobs)."""
    from clipdpo_mini.models.families import chat_template

    folder = family_dir("llava15")
    queries = tmp_path / "q.jsonl"
    image = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (32, 32), "red").save(image)
    queries.write_text(
        json.dumps({"id": 1, "image": str(image), "prompt": "Is it red?", "yes_no": True}) + "\n"
    )
    template = tmp_path / "t.jinja"
    template.write_text(chat_template("llava15"))
    served = ("--engine", "openai", "--base-url", transformers_serve_url, "-m", folder)
    refused = run_in_process(
        "respond",
        str(queries),
        *served,
        "--chat-template",
        str(template),
        "--yes-no",
        "generate",
        "-o",
        str(tmp_path / "r.jsonl"),
    )
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "does not take --chat-template" in refused.stderr and "422" in refused.stderr
    no_logprobs = run_in_process("respond", str(queries), *served, "-o", str(tmp_path / "p.jsonl"))
    assert no_logprobs.returncode == 2 and no_logprobs.stderr.count("\n") == 1, no_logprobs.stderr
    assert "returned no logprobs" in no_logprobs.stderr and "--yes-no generate" in no_logprobs.stderr
