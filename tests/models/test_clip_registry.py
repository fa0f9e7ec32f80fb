"""Model name resolution without downloading: aliases, name:tag, files, directories, the Hub cache."""

from __future__ import annotations

import json
import os

import pytest

from clipdpo_cli.io.errors import InputError, UsageError
from clipdpo_cli.models.clip_registry import ALIASES, find_cached_weights, resolve_clip

# alias -> (open_clip architecture, pretrained tag, Hub repo, QuickGELU)
EXPECTED = {
    "dfn-h14": ("ViT-H-14-quickgelu", "dfn5b", "apple/DFN5B-CLIP-ViT-H-14", True),
    "dfn-h14-378": ("ViT-H-14-378-quickgelu", "dfn5b", "apple/DFN5B-CLIP-ViT-H-14-378", True),
    "vit-l14": ("ViT-L-14-quickgelu", "openai", "timm/vit_large_patch14_clip_224.openai", True),
    "vit-h14-laion": ("ViT-H-14", "laion2b_s32b_b79k", "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", False),
    "siglip-l16": ("ViT-L-16-SigLIP-256", "webli", "timm/ViT-L-16-SigLIP-256", False),
    "siglip-so400m": ("ViT-SO400M-14-SigLIP-384", "webli", "timm/ViT-SO400M-14-SigLIP-384", False),
}


@pytest.mark.parametrize("alias", sorted(EXPECTED))
def test_aliases_resolve_to_open_clip_names_tags_and_hub_repos(alias):
    arch, tag, repo, quick_gelu = EXPECTED[alias]
    source = resolve_clip(alias)
    assert (source.kind, source.arch, source.pretrained, source.hf_repo) == ("tag", arch, tag, repo)
    assert source.quick_gelu is quick_gelu
    assert source.force_quick_gelu is False  # the -quickgelu configs already say so
    # open_clip tries the safetensors twin first, then its default .bin
    assert source.hub_candidates() == ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]


def test_registry_covers_the_issue_aliases():
    assert set(ALIASES) == set(EXPECTED)


def test_hub_candidates_match_open_clip():
    from open_clip.pretrained import _get_safe_alternatives

    source = resolve_clip("dfn-h14")
    name = source.hub_candidates()[-1]
    assert source.hub_candidates() == [*_get_safe_alternatives(name), name]


def test_dfn_config_really_is_quickgelu():
    import open_clip

    source = resolve_clip("dfn-h14")
    assert open_clip.get_model_config(source.arch)["quick_gelu"] is True
    assert source.preprocess["resize_mode"] == "squash"  # DFN's tag preprocessing, as open_clip applies it


def test_plain_vit_h14_with_dfn5b_is_built_with_quickgelu():
    """open_clip builds GELU for 'ViT-H-14' + dfn5b (it only warns); we force QuickGELU from the tag."""
    import open_clip

    source = resolve_clip("ViT-H-14:dfn5b")
    assert open_clip.get_model_config("ViT-H-14").get("quick_gelu", False) is False
    assert (source.arch, source.pretrained, source.quick_gelu, source.force_quick_gelu) == (
        "ViT-H-14", "dfn5b", True, True,
    )  # fmt: skip


def test_name_tag_pairs_and_tag_spelling():
    source = resolve_clip("ViT-B-32:LAION2B-S34B-B79K")
    assert (source.arch, source.pretrained, source.hf_repo) == (
        "ViT-B-32", "laion2b_s34b_b79k", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
    )  # fmt: skip
    assert resolve_clip("ViT-B/32:openai").arch == "ViT-B-32"


def test_hf_hub_and_local_dir(tmp_path, tiny_clip_name):
    assert resolve_clip("hf-hub:apple/DFN5B-CLIP-ViT-H-14").hf_repo == "apple/DFN5B-CLIP-ViT-H-14"
    directory = tiny_clip_name.split(":", 1)[1]
    for name in (tiny_clip_name, directory):
        source = resolve_clip(name)
        assert (source.kind, source.local_dir, source.quick_gelu) == ("local-dir", directory, False)
        assert find_cached_weights(source) == os.path.join(directory, "open_clip_model.safetensors")


def test_checkpoint_files(tmp_path, tiny_clip_name):
    directory = tiny_clip_name.split(":", 1)[1]
    weights = os.path.join(directory, "open_clip_model.safetensors")
    source = resolve_clip(weights)  # its open_clip_config.json is beside it
    assert (source.kind, source.checkpoint, source.local_dir) == ("file", weights, directory)
    lone = tmp_path / "model.bin"
    lone.write_bytes(b"x")
    with pytest.raises(UsageError, match="architecture is unknown: pass ARCH:"):
        resolve_clip(str(lone))
    source = resolve_clip(f"ViT-B-32:{lone}")
    assert (source.kind, source.arch, source.checkpoint) == ("file", "ViT-B-32", str(lone))
    source = resolve_clip(f"dfn-h14:{lone}")  # an alias with a local file keeps the alias's preprocessing
    assert (source.arch, source.quick_gelu, source.preprocess["resize_mode"]) == (
        "ViT-H-14-quickgelu",
        True,
        "squash",
    )


@pytest.mark.parametrize(
    "name, error, message",
    [
        ("dfn-h41", UsageError, "unknown CLIP model 'dfn-h41' (did you mean dfn-h14"),
        ("ViT-B-32", UsageError, "names an architecture without weights: pass ViT-B-32:TAG"),
        ("ViT-B-32:dfn5b", UsageError, "'dfn5b' is neither a pretrained tag of ViT-B-32 nor a checkpoint"),
        ("ViT-X-99:openai", UsageError, "unknown CLIP architecture 'ViT-X-99'"),
        ("ViT-B-32:/no/such/file.pt", InputError, "checkpoint file not found: /no/such/file.pt"),
        ("local-dir:/no/such/dir", InputError, "directory not found: /no/such/dir"),
        ("/no/such/ckpt.bin", InputError, "no such file or directory"),
        ("hf-hub:justarepo", UsageError, "expected hf-hub:ORG/REPO"),
    ],
)
def test_bad_names_give_one_clear_line(name, error, message):
    with pytest.raises(error) as info:
        resolve_clip(name)
    assert message in str(info.value) and "\n" not in str(info.value)


def _fake_hub_cache(root, repo: str, files: dict[str, bytes | str]) -> str:
    """A Hugging Face cache entry as `hf download` leaves it: refs/main -> snapshots/<sha>/<file>."""
    base = root / ("models--" + repo.replace("/", "--"))
    snap = base / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text("a" * 40)
    for name, content in files.items():
        target = snap / name
        if isinstance(content, str):  # copy a file
            target.write_bytes(open(content, "rb").read())
        else:
            target.write_bytes(content)
    return str(snap)


def test_cached_hub_weights_are_found_safetensors_first(tmp_path):
    snap = _fake_hub_cache(tmp_path, "apple/DFN5B-CLIP-ViT-H-14", {"open_clip_pytorch_model.bin": b"w"})
    source = resolve_clip("dfn-h14")
    assert find_cached_weights(source, str(tmp_path)) == os.path.join(snap, "open_clip_pytorch_model.bin")
    (
        tmp_path
        / "models--apple--DFN5B-CLIP-ViT-H-14"
        / "snapshots"
        / ("a" * 40)
        / "open_clip_model.safetensors"
    ).write_bytes(b"s")
    assert find_cached_weights(source, str(tmp_path)).endswith("open_clip_model.safetensors")
    assert find_cached_weights(resolve_clip("vit-l14"), str(tmp_path)) is None


def test_missing_weights_offline_is_one_line_naming_where_and_how(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from clipdpo_cli.models.clip import load_clip

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(InputError) as info:
        load_clip("dfn-h14", device="cpu", cache_dir=str(tmp_path))
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("CLIP model 'dfn-h14' weights are not on this machine with HF_HUB_OFFLINE set")
    assert str(tmp_path) in msg and "apple/DFN5B-CLIP-ViT-H-14" in msg
    assert "hf download apple/DFN5B-CLIP-ViT-H-14 open_clip_pytorch_model.bin" in msg
    with pytest.raises(InputError, match="hf-hub:org/none.*not on this machine"):
        load_clip("hf-hub:org/none", device="cpu", cache_dir=str(tmp_path))


def test_local_dir_without_weights(tmp_path):
    from clipdpo_cli.models.clip import load_clip

    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": {"embed_dim": 8}}))
    with pytest.raises(InputError, match=r"no weights \(\*.safetensors, \*.bin, \*.pth\) in"):
        load_clip(f"local-dir:{tmp_path}", device="cpu")


@pytest.fixture
def tiny_tag(tmp_path, monkeypatch, tiny_clip_name):
    """Register the tiny architecture and a pretrained tag in open_clip's tables, weights in a Hub cache."""
    import open_clip.factory
    import open_clip.pretrained

    directory = tiny_clip_name.split(":", 1)[1]
    cfg = json.load(open(os.path.join(directory, "open_clip_config.json")))["model_cfg"]
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, "Tiny-CLIP", cfg)
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, "Tiny-CLIP-quickgelu", {**cfg, "quick_gelu": True})
    tag = open_clip.pretrained._pcfg(hf_hub="clipdpo/tiny-clip/", quick_gelu=True, resize_mode="squash")
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, "Tiny-CLIP", {"tiny": tag})
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, "Tiny-CLIP-quickgelu", {"tiny": tag})
    weights = os.path.join(directory, "open_clip_model.safetensors")
    _fake_hub_cache(tmp_path, "clipdpo/tiny-clip", {"open_clip_model.safetensors": weights})
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return str(tmp_path)


def test_tag_loads_from_the_hub_cache_exactly_as_open_clip_does(tiny_tag):
    """Our loader and open_clip's own tag path (offline, same cache) give the same model and preprocessing."""
    import open_clip
    import torch
    from PIL import Image

    from clipdpo_cli.models.clip import load_clip

    ours = load_clip("Tiny-CLIP-quickgelu:tiny", device="cpu", cache_dir=tiny_tag)
    model, _, preprocess = open_clip.create_model_and_transforms(
        "Tiny-CLIP-quickgelu", "tiny", cache_dir=tiny_tag
    )
    assert repr(ours.preprocess) == repr(preprocess)
    assert "Resize(size=(32, 32)" in repr(preprocess)  # resize_mode squash from the tag
    image = Image.new("RGB", (50, 30), (10, 200, 90))
    pixels = preprocess(image)[None]
    with torch.no_grad():
        expected = torch.nn.functional.normalize(model.encode_image(pixels), dim=-1)
    assert torch.allclose(ours.encode_images([image]), expected, atol=1e-6)
    assert isinstance(ours.model.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)


def test_plain_arch_with_quickgelu_tag_is_forced_to_quickgelu(tiny_tag):
    import open_clip

    from clipdpo_cli.models.clip import load_clip

    ours = load_clip("Tiny-CLIP:tiny", device="cpu", cache_dir=tiny_tag)
    assert isinstance(ours.model.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
    with pytest.warns(UserWarning, match="QuickGELU mismatch"):
        plain = open_clip.create_model("Tiny-CLIP", "tiny", cache_dir=tiny_tag)
    assert not isinstance(plain.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)


def test_checkpoint_file_paths_load_the_same_model(tiny_tag, tiny_clip_name, tiny_clip):
    """A file beside its config, and ARCH:/path/file, load the same weights as the directory."""
    import torch

    from clipdpo_cli.models.clip import load_clip

    weights = os.path.join(tiny_clip_name.split(":", 1)[1], "open_clip_model.safetensors")
    texts = ["a cat on a mat", "two dogs"]
    expected = tiny_clip.encode_texts(texts)
    for name in (weights, f"Tiny-CLIP-quickgelu:{weights}"):
        clip = load_clip(name, device="cpu")
        assert clip.source.checkpoint == weights
        if name == weights:  # same architecture, so the same embeddings
            assert torch.allclose(clip.encode_texts(texts), expected, atol=1e-6)
        else:  # QuickGELU architecture on the same weights: loads, but computes something else
            assert not torch.allclose(clip.encode_texts(texts), expected, atol=1e-3)


def test_hf_hub_repo_loads_from_the_cache_and_never_falls_back_to_random(
    tmp_path, monkeypatch, tiny_clip_name, tiny_clip
):
    import torch
    from huggingface_hub import constants

    from clipdpo_cli.models.clip import load_clip

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    directory = tiny_clip_name.split(":", 1)[1]
    config = os.path.join(directory, "open_clip_config.json")
    weights = os.path.join(directory, "open_clip_model.safetensors")
    _fake_hub_cache(
        tmp_path, "org/tiny", {"open_clip_config.json": config, "open_clip_model.safetensors": weights}
    )
    clip = load_clip("hf-hub:org/tiny", device="cpu", cache_dir=str(tmp_path))
    assert torch.allclose(clip.encode_texts(["a red bus"]), tiny_clip.encode_texts(["a red bus"]), atol=1e-6)
    # config cached but no weights: open_clip alone would warn and build random weights; we stop
    _fake_hub_cache(tmp_path, "org/noweights", {"open_clip_config.json": config})
    with pytest.raises(InputError, match="'hf-hub:org/noweights' weights are not on this machine"):
        load_clip("hf-hub:org/noweights", device="cpu", cache_dir=str(tmp_path))


def test_siglip_offline_names_the_weights_and_the_tokenizer_repo(tmp_path, monkeypatch):
    """SigLIP's text tokenizer comes from a second Hub repo; offline, both must be named (one line)."""
    from huggingface_hub import constants

    from clipdpo_cli.models.clip import load_clip

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(InputError) as info:
        load_clip("siglip-so400m", device="cpu", cache_dir=str(tmp_path))
    msg = str(info.value)
    assert "\n" not in msg and "weights are not on this machine" in msg
    assert "hf download timm/ViT-SO400M-14-SigLIP-384 open_clip_pytorch_model.bin" in msg
    assert "hf download timm/ViT-B-16-SigLIP --include '*.json' '*.model'" in msg

    _fake_hub_cache(tmp_path, "timm/ViT-SO400M-14-SigLIP-384", {"open_clip_pytorch_model.bin": b"w"})
    with pytest.raises(InputError) as info:  # weights there, tokenizer not: said before any loading
        load_clip("siglip-so400m", device="cpu", cache_dir=str(tmp_path))
    msg = str(info.value)
    assert msg.startswith("CLIP model 'siglip-so400m' needs its text tokenizer from timm/ViT-B-16-SigLIP")
    assert "hf download timm/ViT-B-16-SigLIP" in msg and "\n" not in msg
    assert "timm/ViT-B-16-SigLIP" not in str(
        pytest.raises(InputError, load_clip, "dfn-h14", device="cpu", cache_dir=str(tmp_path)).value
    )  # a CLIP tokenizer ships with open_clip: nothing to fetch
