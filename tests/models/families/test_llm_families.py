"""`ask`'s LLM on shrunken checkpoints of the real chat families: published templates, BOS, end of turn.

Each family's checkpoint (clipdpo_mini.models.families.text) is built once; the model loaded from it is then
taught, in a few steps, to answer the one `ask` prompt used here with REPLY and the family's end-of-turn
token, so `clipdpo ask` has JSON to turn into records and a stop to make.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from subprocess import PIPE
from typing import Any

import pytest

from clipdpo_cli.models.llm import Llm, load_llm
from clipdpo_cli.stages.ask import SYSTEM_PROMPT, build_prompt
from clipdpo_mini.models.families import facts
from clipdpo_mini.models.families.text import TEXT_FAMILIES
from tests.conftest import cli_env

CAPTION = "A red car on a road."
PROMPT = build_prompt([CAPTION], 1)  # what `ask --questions 1` sends for one caption record
REPLY = '{"questions": [{"question": "What color is the car?", "answer_pos": "red", "answer_neg": "blue"}]}'
LLAMA31_SYSTEM = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
    "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
)
QWEN_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


@dataclass(frozen=True)
class Expected:
    model: str  # model class (AutoModelForCausalLM)
    tokenizer_class: str  # as tokenizer_config.json names it
    prompt: str  # chat_text("Hi")
    with_system: str  # chat_text("Hi", system="Be brief.")
    bos: str | None  # the one BOS the input ids start with (None: no BOS token)
    end_of_turn: str
    eos: list[str]  # the generation config's EOS ids, as tokens


EXPECTED = {
    "openhermes": Expected(
        "MistralForCausalLM", "LlamaTokenizer",
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
        # ChatML in the text, but a Llama tokenizer with add_bos_token: the tokenizer adds <s>
        "<s>", "<|im_end|>", ["<|im_end|>"],
    ),
    "mistral_instruct": Expected(
        "MistralForCausalLM", "LlamaTokenizer",
        "<s> [INST] Hi [/INST]",
        "<s> [INST] Be brief.\n\nHi [/INST]",
        "<s>", "</s>", ["</s>"],
    ),
    "llama31_instruct": Expected(
        "LlamaForCausalLM", "PreTrainedTokenizerFast",
        LLAMA31_SYSTEM + "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        LLAMA31_SYSTEM + "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "<|begin_of_text|>", "<|eot_id|>", ["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"],
    ),
    "qwen25_instruct": Expected(
        "Qwen2ForCausalLM", "Qwen2Tokenizer",
        f"<|im_start|>system\n{QWEN_DEFAULT_SYSTEM}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n",
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
        None, "<|im_end|>", ["<|im_end|>", "<|endoftext|>"],
    ),
    "gemma2_it": Expected(
        "Gemma2ForCausalLM", "GemmaTokenizer",
        "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
        # the template refuses a system turn: the system text opens the user turn
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n",
        "<bos>", "<end_of_turn>", ["<eos>", "<end_of_turn>"],
    ),
}  # fmt: skip
KEYS = list(TEXT_FAMILIES)


def teach(llm: Llm, lr: float = 1e-2, max_steps: int = 300, margin: float = 0.05) -> None:
    """Train the random model in place to answer PROMPT (with ask's system text) with REPLY + end of turn.

    Steps until the teacher-forced greedy predictions are the target and the loss is below `margin` (one
    thread: a few seconds a family, while the CLI runs started meanwhile have the other core).
    """
    import torch

    prompt = llm.inputs([PROMPT], SYSTEM_PROMPT)["input_ids"][0].tolist()
    target = llm.encoding.completion_ids(PROMPT, REPLY)  # ends with the end-of-turn token
    ids = torch.tensor([prompt + target])
    labels = torch.tensor([[-100] * len(prompt) + target])
    llm.model.requires_grad_(True)  # load_llm loads frozen weights (an inference pass): train them here
    optimizer = torch.optim.AdamW(llm.model.parameters(), lr=lr)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    llm.model.train()
    try:
        for _ in range(max_steps):
            out = llm.model(input_ids=ids, labels=labels)
            greedy = out.logits[0, len(prompt) - 1 : -1].argmax(-1).tolist()
            if greedy == target and out.loss.item() < margin:
                return
            out.loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        raise AssertionError(f"{llm.name}: not taught the reply in {max_steps} steps")
    finally:
        llm.model.eval()
        llm.model.requires_grad_(False)
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("text-families")
    return {key: family.build(str(root / key)) for key, family in TEXT_FAMILIES.items()}


@pytest.fixture(scope="module")
def llms(family_dirs: dict[str, str]) -> dict[str, Llm]:
    return {key: load_llm(path, device="cpu") for key, path in family_dirs.items()}


@pytest.fixture(scope="module")
def asked(llms: dict[str, Llm], tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, Any]]:
    """Per family: a copy of its checkpoint taught REPLY, and `clipdpo ask` on one caption record with it.

    Each CLI run starts as soon as its model is saved, so the runs overlap the teaching of the next ones.
    """
    from clipdpo_cli.models.hub import quiet_transformers

    root = tmp_path_factory.mktemp("text-families-asked")
    record = {"id": "a.jpg-c0", "image": "a.jpg", "kind": "caption", "text": CAPTION, "prompt": "p"}
    src = root / "caps.jsonl"
    src.write_text(json.dumps(record) + "\n")
    options = ("--questions", "1", "--temperature", "0", "--max-new-tokens", "80", "--device", "cpu")
    runs = {}
    for key, llm in llms.items():
        teach(llm)
        taught = str(root / key)
        shutil.copytree(llm.name, taught)
        with quiet_transformers():
            llm.model.save_pretrained(taught)
        args = [sys.executable, "-m", "clipdpo_cli", "ask", str(src), "-m", taught, *options]
        env = cli_env(HF_HUB_OFFLINE="1")
        runs[key] = (taught, subprocess.Popen(args, stdout=PIPE, stderr=PIPE, text=True, env=env))
    yield {key: (taught, proc) for key, (taught, proc) in runs.items()}
    for _, proc in runs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("key", KEYS)
def test_loads_the_real_classes(key: str, family_dirs: dict[str, str], llms: dict[str, Llm]) -> None:
    llm, want = llms[key], EXPECTED[key]
    assert type(llm.model).__name__ == want.model
    assert type(llm.model.config).__name__ == want.model.replace("ForCausalLM", "Config")
    config = json.loads((Path(family_dirs[key]) / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == want.tokenizer_class
    assert llm.model.config.num_hidden_layers == 2 and llm.model.config.hidden_size == 64
    assert llm.model.config.vocab_size == len(llm.tokenizer)
    eos = llm.model.generation_config.eos_token_id
    assert llm.tokenizer.convert_ids_to_tokens([eos] if isinstance(eos, int) else eos) == want.eos
    assert TEXT_FAMILIES[key].kind == "llm" and TEXT_FAMILIES[key].repo == facts(key)["repo"]


def test_published_config_values(llms: dict[str, Llm]) -> None:
    llama = llms["llama31_instruct"].model.config
    real = facts("llama31_instruct")["config"]
    assert {k: llama.rope_parameters[k] for k in real["rope_scaling"]} == real["rope_scaling"]
    assert llama.rope_parameters["rope_theta"] == real["rope_theta"] == 500000.0
    assert llama.max_position_embeddings == 131072 and not llama.tie_word_embeddings
    gen = llms["llama31_instruct"].model.generation_config
    assert (gen.do_sample, gen.temperature, gen.top_p) == (True, 0.6, 0.9)
    qwen = llms["qwen25_instruct"].model.config
    assert qwen.rope_parameters["rope_theta"] == 1000000.0 and qwen.rms_norm_eps == 1e-6
    gemma = llms["gemma2_it"].model.config
    assert (gemma.attn_logit_softcapping, gemma.final_logit_softcapping) == (50.0, 30.0)
    assert gemma.layer_types == ["sliding_attention", "full_attention"] and gemma.sliding_window == 4096
    mistral = llms["mistral_instruct"].tokenizer
    assert mistral.convert_tokens_to_ids(["<unk>", "<s>", "</s>"]) == [0, 1, 2]
    gemma_tok = llms["gemma2_it"].tokenizer
    assert gemma_tok.convert_tokens_to_ids(["<pad>", "<eos>", "<bos>", "<unk>"]) == [0, 1, 2, 3]


@pytest.mark.parametrize("key", KEYS)
def test_prompt_for_one_user_turn_is_the_published_shape(key: str, llms: dict[str, Llm]) -> None:
    assert llms[key].chat_text("Hi") == EXPECTED[key].prompt


@pytest.mark.parametrize("key", KEYS)
def test_system_text(key: str, llms: dict[str, Llm]) -> None:
    assert llms[key].chat_text("Hi", system="Be brief.") == EXPECTED[key].with_system


def test_gemma_template_refuses_a_system_turn(llms: dict[str, Llm]) -> None:
    from jinja2 import TemplateError

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    with pytest.raises(TemplateError, match="System role not supported"):
        llms["gemma2_it"].tokenizer.apply_chat_template(messages, tokenize=False)


@pytest.mark.parametrize("key", KEYS)
def test_input_ids_start_with_bos_exactly_once(key: str, llms: dict[str, Llm]) -> None:
    llm, bos = llms[key], EXPECTED[key].bos
    for system in (None, SYSTEM_PROMPT):
        batch = llm.inputs(["Hi", "a longer prompt than the first"], system)
        for row, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True):
            tokens = llm.tokenizer.convert_ids_to_tokens(row[mask.bool()].tolist())
            if bos is None:
                assert llm.tokenizer.bos_token is None and tokens[0] == "<|im_start|>"
            else:
                assert llm.tokenizer.bos_token == bos
                assert tokens[0] == bos and tokens.count(bos) == 1


@pytest.mark.parametrize("key", KEYS)
def test_end_of_turn_is_the_familys_and_generation_stops_on_it(key: str, llms: dict[str, Llm]) -> None:
    llm = llms[key]
    eot = llm.encoding.end_of_turn_id
    assert llm.tokenizer.convert_ids_to_tokens(eot) == EXPECTED[key].end_of_turn
    assert eot in llm.stop_ids
    assert llm.encoding.completion_ids("Hi", "Yes.")[-1] == eot


@pytest.mark.parametrize("key", KEYS)
def test_generation_stops_at_the_end_of_turn_token(
    key: str, llms: dict[str, Llm], asked: dict[str, tuple[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    llm = llms[key]  # taught REPLY + end of turn by the `asked` fixture
    # only the end-of-turn token can stop it: the generation config's EOS ids are gone
    monkeypatch.setattr(llm.model.generation_config, "eos_token_id", None)
    assert llm.stop_ids == [llm.encoding.end_of_turn_id]
    outputs = []
    generate = llm.model.generate

    def spy(*args: Any, **kwargs: Any) -> Any:
        outputs.append(generate(*args, **kwargs))
        return outputs[-1]

    monkeypatch.setattr(llm.model, "generate", spy)
    assert llm.generate([PROMPT], max_new_tokens=80, temperature=0, system=SYSTEM_PROMPT) == [REPLY]
    prompt_length = llm.inputs([PROMPT], SYSTEM_PROMPT)["input_ids"].shape[1]
    new = outputs[0][0, prompt_length:].tolist()
    assert new == llm.encoding.completion_ids(PROMPT, REPLY)  # stopped right after the end-of-turn token


@pytest.mark.parametrize("key", KEYS)
def test_cli_ask_writes_records(key: str, asked: dict[str, tuple[str, Any]]) -> None:
    taught, proc = asked[key]
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    out = [json.loads(line) for line in stdout.splitlines()]
    assert [(r["kind"], r["image"], r["question"], r["answer_pos"], r["answer_neg"]) for r in out] == [
        ("qa", "a.jpg", "What color is the car?", "red", "blue")
    ]
    assert out[0]["from"] == ["a.jpg-c0"] and out[0]["model"] == taught
    assert "1 in, 1 out" in stderr
