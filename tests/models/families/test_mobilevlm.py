"""MobileVLM-v2 beyond the shared family tests: its official layout, reference log-probs, eval-zeroshot, v1,
Hub names offline, and the errors a user can meet."""

from __future__ import annotations

import json
import os

import pytest
import torch
from PIL import Image

from tests.models.families.test_family_cli import QUICK
from tests.train.train_helpers import main_in_process

HUB_NAMES = ["mtgv/MobileVLM_V2-1.7B", "mtgv/MobileVLM_V2-3B", "mtgv/MobileVLM_V2-7B"]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("mobilevlm-pairs")
    rows = []
    for i, (size, color) in enumerate((((60, 40), "red"), ((30, 70), "blue"))):
        path = root / f"{color}.png"
        Image.new("RGB", size, color).save(path)
        rows.append({"id": f"p{i}", "image": str(path), "prompt": "Describe the image.",
                     "chosen": f"A {color} square.", "rejected": "A green dog on a lawn."})  # fmt: skip
    (root / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(root / "pairs.jsonl")


def test_the_fixture_is_the_official_layout(family_dir):
    """config.json has the published keys and values but the sizes; weights carry the official names."""
    from clipdpo_mini.models.families import facts

    folder = family_dir("mobilevlm_v2")
    assert sorted(os.listdir(folder)) == [
        ".complete",
        "config.json",
        "generation_config.json",
        "pytorch_model.bin",
        "tokenizer.json",
        "tokenizer_config.json",
    ]  # fmt: skip  (no processor config, no image-processor config, no chat template: as on the Hub)
    with open(os.path.join(folder, "config.json")) as fh:
        config = json.load(fh)
    published = facts("mobilevlm_v2")["config"]
    cut = {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
           "num_key_value_heads", "mm_hidden_size", "vocab_size"}  # fmt: skip
    assert {k: v for k, v in config.items() if k not in cut | {"vision_config"}} == {
        k: v for k, v in published.items() if k not in cut
    }
    keys = set(torch.load(os.path.join(folder, "pytorch_model.bin")))
    assert {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
            "model.layers.0.self_attn.q_proj.weight", "model.mm_projector.mlp.mlp.0.weight",
            "model.mm_projector.mlp.mlp.2.bias", "model.mm_projector.peg.peg.0.weight",
            "model.vision_tower.vision_tower.vision_model.embeddings.patch_embedding.weight",
            "model.vision_tower.vision_tower.vision_model.post_layernorm.weight"} <= keys  # fmt: skip
    assert not any(k.startswith("model.language_model.") for k in keys)


def test_official_names_load_exactly_and_save_back(family_dir, tmp_path):
    """Every official weight lands in the model (none missing, none left over) and save_pretrained writes the
    official names back, so a trained model is again in the official layout."""
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    from clipdpo_cli.models.hub import load_pretrained
    from clipdpo_mini.models.families.mobilevlm import official_state_dict

    folder = family_dir("mobilevlm_v2")
    model, info = load_pretrained(
        AutoModelForImageTextToText.from_pretrained, folder, "model", dtype=torch.float32,
        output_loading_info=True,
    )  # fmt: skip
    assert type(model).__name__ == "MobileVLMForConditionalGeneration"
    assert not info["missing_keys"] and not info["unexpected_keys"]
    published = torch.load(os.path.join(folder, "pytorch_model.bin"))
    assert all(torch.equal(published[k], v) for k, v in official_state_dict(model).items())
    model.save_pretrained(tmp_path / "saved")
    saved = load_file(str(tmp_path / "saved" / "model.safetensors"))
    assert set(saved) == set(published) and all(torch.equal(saved[k], published[k]) for k in saved)


def test_prompt_is_the_official_v1_conversation(family_dir):
    from clipdpo_cli.models.lvlm import load_lvlm_processor

    processor = load_lvlm_processor(family_dir("mobilevlm_v2"))
    assert type(processor.image_processor).__name__ == "CLIPImageProcessor"
    assert processor.image_processor.crop_size == {"height": 336, "width": 336}
    conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi?"}]}]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    assert text == (
        "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
        "helpful, detailed, and polite answers to the user's questions. USER: <image>\nHi? ASSISTANT:"
    )
    answered = conversation + [{"role": "assistant", "content": [{"type": "text", "text": "Yes."}]},
                               {"role": "user", "content": [{"type": "text", "text": "Why?"}]}]  # fmt: skip
    assert processor.apply_chat_template(answered, add_generation_prompt=True).endswith(
        "USER: <image>\nHi? ASSISTANT: Yes.</s>USER: Why? ASSISTANT:"
    )
    system = [{"role": "system", "content": "Be brief."}, *conversation]
    assert processor.apply_chat_template(system, add_generation_prompt=True).startswith(
        "Be brief. USER: <image>"
    )


def test_images_are_padded_to_a_square_of_the_mean_colour(family_dir):
    """A 60x20 white image: centred on a 60x60 square of the CLIP mean colour, then resized to 336."""
    import numpy as np

    from clipdpo_cli.models.lvlm import load_lvlm_processor

    processor = load_lvlm_processor(family_dir("mobilevlm_v2"))
    out = processor(images=[Image.new("RGB", (60, 20), "white")], text=["<image>\nHi"], return_tensors="pt")
    pixels = out["pixel_values"][0]
    assert tuple(pixels.shape) == (3, 336, 336)
    mean, std = np.array(processor.image_processor.image_mean), np.array(processor.image_processor.image_std)
    padding = (np.floor(mean * 255) / 255 - mean) / std  # the pad colour int(mean * 255), normalised
    white = (1.0 - mean) / std
    assert np.allclose(pixels[:, 10, 168].numpy(), padding, atol=2e-2)  # top band: padding
    assert np.allclose(pixels[:, 168, 168].numpy(), white, atol=2e-2)  # middle: the image
    assert int((out["input_ids"][0] == processor.image_token_id).sum()) == 144


def test_reference_log_probs_precomputed_then_trained_on(family_dir, pairs, tmp_path, capsys):
    model = family_dir("mobilevlm_v2")
    ref = str(tmp_path / "pairs.ref.jsonl")
    code, _, err = main_in_process(
        capsys, "ref-logps", pairs, "-m", model, "-o", ref, "--batch-size", "2"
    )
    assert code == 0, err[-3000:]
    records = [json.loads(line) for line in open(ref)]
    assert len(records) == 2 and all(r["ref_chosen_logps"] < 0 and r["ref_model"] == model for r in records)
    out_dir = str(tmp_path / "o")
    code, out, err = main_in_process(capsys, "train", ref, "--model", model, "--output-dir", out_dir, *QUICK)
    assert code == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["reference"] == "precomputed"
    assert summary["first_loss"] == pytest.approx(0.6931, abs=1e-4)  # the policy is the reference at step 0


def test_eval_zeroshot_captions_with_mobilevlm(family_dir, tmp_path, capsys):
    from clipdpo_mini.models.tiny_clip import build_tiny_clip

    root = tmp_path / "colours"
    for name, color in (("red", (220, 20, 20)), ("blue", (20, 20, 220))):
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (40 + 8 * i, 32), color).save(root / name / f"{i}.png")
    clip = build_tiny_clip(str(tmp_path / "clip"), seed=0)
    caps, out = tmp_path / "caps.jsonl", tmp_path / "zs.jsonl"
    code, _, err = main_in_process(
        capsys, "eval-zeroshot", str(root), "--model", family_dir("mobilevlm_v2"), "--text-encoder", clip,
        "--captions", str(caps), "--max-new-tokens", "4", "--batch-size", "2", "--device", "cpu", "-q",
        "-o", str(out),
    )  # fmt: skip
    assert code == 0, err[-3000:]
    (metrics,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert metrics["n_classes"] == 2 and metrics["caption"]["n"] == 4
    assert len(caps.read_text().splitlines()) == 4


def test_mobilevlm_v1_without_tower_weights_takes_them_from_mm_vision_tower(tmp_path):
    """MobileVLM v1 (`ldpnet`) as published: the CLIP tower's weights come from `mm_vision_tower`."""
    from transformers import CLIPVisionModel

    from clipdpo_cli.models.lvlm import load_lvlm
    from clipdpo_mini.models.families.mobilevlm import build_mobilevlm

    folder = build_mobilevlm(str(tmp_path / "v1"), projector="ldpnet", with_tower=False)
    lvlm = load_lvlm(folder, device="cpu")
    tower = CLIPVisionModel.from_pretrained(os.path.join(folder, "clip-tower"))
    ours = lvlm.model.model.vision_tower.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in tower.state_dict().items())
    assert type(lvlm.model.model.mm_projector).__name__ == "LDPProjector"
    assert len(lvlm.generate([Image.new("RGB", (50, 30))], ["Describe."], max_new_tokens=3, seed=0)) == 1


def test_unsupported_projector_is_one_line(family_dir, tmp_path, capsys):
    import shutil

    folder = tmp_path / "mlp"
    shutil.copytree(family_dir("mobilevlm_v2"), folder)
    config = json.loads((folder / "config.json").read_text())
    config["mm_projector_type"] = "mlp2x_gelu"
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "imgs").mkdir()
    Image.new("RGB", (8, 8)).save(folder / "imgs" / "a.png")
    code, _, err = main_in_process(capsys, "caption", str(folder / "imgs"), "--model", str(folder))
    assert code == 1
    assert err.strip() == (
        f"clipdpo caption: error: cannot load model from {folder}: mm_projector_type 'mlp2x_gelu' is not "
        "supported (MobileVLM: ldpnetv2, ldpnet)"
    )


OFFLINE_SCRIPT = """
import sys
from clipdpo_cli.cli import main
for name in sys.argv[2:]:
    try:
        main(["caption", sys.argv[1], "--model", name, "--device", "cpu", "--max-new-tokens", "2"])
    except SystemExit as exc:
        print(exc.code, file=sys.stderr)
"""


def hub_cache(home, repo: str, folder: str) -> None:
    """`folder` as the Hugging Face cache holds a downloaded `repo` (HF_HOME layout, one snapshot)."""
    import shutil

    commit = "0" * 40
    entry = home / "hub" / f"models--{repo.replace('/', '--')}"
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text(commit)
    shutil.copytree(folder, entry / "snapshots" / commit, ignore=shutil.ignore_patterns(".complete"))


def test_hub_names_resolve_offline_as_llava_does(family_dir, tmp_path):
    """Offline: a cached MobileVLM-v2 Hub id loads and captions; one not cached gives the same one line as
    llava-hf/llava-1.5-7b-hf (names resolved as on a user's machine, nothing downloaded)."""
    import subprocess
    import sys

    from tests.conftest import cli_env

    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / "a.png")
    hub_cache(tmp_path / "hf", HUB_NAMES[0], family_dir("mobilevlm_v2"))
    names = ["llava-hf/llava-1.5-7b-hf", *HUB_NAMES]
    env = cli_env(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    result = subprocess.run([sys.executable, "-c", OFFLINE_SCRIPT, str(tmp_path / "imgs"), *names],
                            capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    lines = result.stderr.strip().splitlines()
    expected = []
    for name in names:
        if name == HUB_NAMES[0]:  # cached: five captions (the default prompts), exit 0
            expected += ["clipdpo caption: 1 in, 5 out", "0"]
            continue
        expected += [
            f"clipdpo caption: error: model '{name}' is not a local directory and is not in the Hugging Face "
            "cache (HF_HUB_OFFLINE=1: download it first, or pass a local directory)", "1",
        ]  # fmt: skip
    lines = [line.split(";")[0] for line in lines]  # the summary's timing varies
    assert lines == expected, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 5 and all(r["model"] == HUB_NAMES[0] for r in records)


def test_registration_is_lazy():
    """`clipdpo --help` does not import transformers (MobileVLM registers when a model is loaded)."""
    import subprocess
    import sys

    from tests.conftest import cli_env

    code = "import sys; from clipdpo_cli.cli import main\ntry:\n main(['--help'])\nexcept SystemExit: pass\n"
    code += "print('transformers' in sys.modules, 'clipdpo_cli.models.mobilevlm' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=120
    )
    assert out.stdout.strip().splitlines()[-1] == "False False", out.stderr


LIT_GPT_KEYS_3B = {  # keys mtgv/MobileVLM_V2-3B's config.json carries besides the Llama and mm_* keys
    "_mlp_class": "LLaMAMLP", "_norm_class": "RMSNorm", "bias": False, "block_size": 2048,
    "gelu_approximate": "none", "lm_head_bias": False, "n_embd": 2560, "n_head": 16, "n_layer": 32,
    "n_query_groups": 16, "name": "huggy_llama_3b", "norm_eps": 1e-06, "org": "meta",
    "padded_vocab_size": 32000, "padding_multiple": 64, "parallel_residual": False,
}  # fmt: skip
SIZES = {
    "1.7B": {},
    "3B": {"hidden_size": 2560, "intermediate_size": 6912, "num_attention_heads": 32,
           "num_hidden_layers": 32, "num_key_value_heads": 32, **LIT_GPT_KEYS_3B},
    "7B": {"hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32,
           "num_hidden_layers": 32, "num_key_value_heads": 32, "max_position_embeddings": 4096,
           "rms_norm_eps": 1e-05},
}  # fmt: skip
# pytorch_model.bin sizes on the Hub (bf16): 1.7B 3.35 GB; 7B 9.98 + 4.15 GB (mobilevlm_v2/facts.json)
PUBLISHED_GB = {"1.7B": 3.35, "7B": 14.13}


@pytest.mark.parametrize("size", sorted(SIZES))
def test_published_configs_build_the_published_model(size, tmp_path):
    """The three published configs load through AutoConfig (the 3B one with its lit-gpt keys) and, built on
    the meta device, have the parameters of the published weight files: LM + the CLIP ViT-L/14 tower."""
    from transformers import AutoConfig

    from clipdpo_cli.models.mobilevlm import register
    from clipdpo_cli.models.mobilevlm.modeling import MobileVLMForConditionalGeneration
    from clipdpo_mini.models.families import facts

    register()
    config = {**facts("mobilevlm_v2")["config"], **SIZES[size]}
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded).__name__ == "MobileVLMConfig" and loaded.hidden_size == config["hidden_size"]
    assert (loaded.vision_config.hidden_size, loaded.vision_config.num_hidden_layers) == (1024, 24)
    assert loaded.image_placeholder_id == 32000 and loaded.image_seq_length == 144
    with torch.device("meta"):
        model = MobileVLMForConditionalGeneration(loaded)
    params = sum(p.numel() for p in model.parameters())
    if size in PUBLISHED_GB:
        assert params * 2 / 1e9 == pytest.approx(PUBLISHED_GB[size], abs=0.01)
