"""The LLM loader and wrapper on the tiny Llama: chat template, padding, seeds, clear errors."""

from __future__ import annotations

import pytest

from clipdpo_cli.io.errors import InputError
from clipdpo_cli.models.llm import load_llm


@pytest.fixture(scope="module")
def tiny_llm(tiny_llm_dir):
    return load_llm(tiny_llm_dir, device="cpu")


def test_loads_real_classes_with_chatml_template(tiny_llm) -> None:
    assert type(tiny_llm.model).__name__ == "LlamaForCausalLM"
    assert tiny_llm.chat_text("Hi?", system="Be brief.") == (
        "<s><|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert tiny_llm.tokenizer.eos_token == "<|im_end|>"


def test_inputs_are_left_padded_with_one_bos(tiny_llm) -> None:
    batch = tiny_llm.inputs(["a", "a much longer prompt than a"])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    bos = tiny_llm.tokenizer.bos_token_id
    assert mask[0, 0] == 0 and mask[1].all()
    assert int((ids[1] == bos).sum()) == 1 and ids[1, 0] == bos


def test_generation_is_batch_independent(tiny_llm) -> None:
    prompts = ["one", "two words", "three words here"]
    greedy = tiny_llm.generate(prompts, max_new_tokens=6, temperature=0)
    assert greedy == [tiny_llm.generate([p], max_new_tokens=6, temperature=0)[0] for p in prompts]
    sampled = tiny_llm.generate(prompts, max_new_tokens=6, seed=[5, 6, 7])
    assert sampled[1:] == tiny_llm.generate(prompts[1:], max_new_tokens=6, seed=[6, 7])
    assert sampled != tiny_llm.generate(prompts, max_new_tokens=6, seed=[8, 9, 10])


def test_missing_chat_template_and_missing_directory(tiny_llm_dir, tmp_path) -> None:
    import json
    import shutil

    copy = tmp_path / "plain"
    shutil.copytree(tiny_llm_dir, copy)
    for name in ("chat_template.jinja",):
        (copy / name).unlink(missing_ok=True)
    config_path = copy / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("chat_template", None)
    config_path.write_text(json.dumps(config))
    with pytest.raises(InputError, match="has no chat template; pass one with --chat-template FILE"):
        load_llm(str(copy))
    with pytest.raises(InputError, match="model directory not found: ./no/such/dir"):
        load_llm("./no/such/dir")


def test_a_template_without_system_role_gets_the_system_text_in_the_user_turn(tiny_llm_dir) -> None:
    template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}"
        "{% endif %}[INST] {{ m['content'] }} [/INST]{% endfor %}"
    )
    llm = load_llm(tiny_llm_dir, device="cpu", chat_template=template)
    assert llm.chat_text("Hi?", system="Be brief.") == "[INST] Be brief.\n\nHi? [/INST]"
    assert llm.chat_text("Hi?") == "[INST] Hi? [/INST]"


def test_an_image_text_model_given_to_ask_names_the_fix(tiny_llava_dir) -> None:
    with pytest.raises(InputError) as info:
        load_llm(tiny_llava_dir, device="cpu")
    assert str(info.value) == (
        f"model '{tiny_llava_dir}' (llava) is not a text causal language model; it is an image-text model: "
        "use it with caption"
    )
