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


def test_ask_through_transformers_serve_equals_in_process(
    tiny_llm_json_dir, transformers_serve_url, tmp_path
):
    captions = tmp_path / "caps.jsonl"
    rows = [
        {"id": f"{image}-{k}", "image": image, "kind": "caption", "text": f"A {color} ball on the grass {k}."}
        for image, color in (("x.jpg", "red"), ("y.jpg", "blue"))
        for k in range(2)
    ]
    captions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = (
        "ask",
        str(captions),
        "-m",
        tiny_llm_json_dir,
        "--temperature",
        "0",
        "--max-new-tokens",
        "96",
        "-q",
    )
    local = run_in_process(*common, "--device", "cpu", "-o", str(tmp_path / "hf.jsonl"))
    served = run_in_process(
        *common,
        "--engine",
        "openai",
        "--base-url",
        transformers_serve_url,
        "-o",
        str(tmp_path / "openai.jsonl"),
    )
    assert local.returncode == 0, local.stderr
    assert served.returncode == 0, served.stderr
    expected = (tmp_path / "hf.jsonl").read_text()
    assert len(expected.splitlines()) == 4  # two questions per image: the fixture's JSON reply parsed
    assert (tmp_path / "openai.jsonl").read_text() == expected
