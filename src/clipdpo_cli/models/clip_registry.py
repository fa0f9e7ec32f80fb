"""Which CLIP checkpoint a model name means, and where its weights are on this machine.

Resolution never downloads: `resolve_clip(name)` turns a name into a `ClipSource` (open_clip architecture,
pretrained tag or file, Hugging Face Hub repo and file) using open_clip's own tables, and
`find_cached_weights(source)` looks for the weights in the local caches the way open_clip would find them.

Accepted names:
  - an alias of the registry below (`dfn-h14`, the paper's scorer, ...), or `ALIAS:/path/to/weights.bin`;
  - `ARCH:TAG` with an open_clip architecture and one of its pretrained tags (`ViT-B-32:openai`);
  - `ARCH:/path/to/checkpoint.pt` (a local checkpoint file for that architecture);
  - `hf-hub:org/repo` (an open_clip repository on the Hugging Face Hub);
  - `local-dir:/path` or a plain directory holding `open_clip_config.json` and weights;
  - a checkpoint file with an `open_clip_config.json` beside it.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from clipdpo_cli.io.errors import InputError, UsageError
from clipdpo_cli.models.hub import offline as hub_offline

HF_HUB_PREFIX = "hf-hub:"
LOCAL_DIR_PREFIX = "local-dir:"
CONFIG_NAME = "open_clip_config.json"
# open_clip's default Hub weights file and its safetensors twin (open_clip.constants).
HF_WEIGHTS_NAME = "open_clip_pytorch_model.bin"
HF_SAFE_WEIGHTS_NAME = "open_clip_model.safetensors"
CHECKPOINT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".npz")
# The order in which open_clip picks a checkpoint inside a local directory (factory._find_checkpoint_in_dir).
DIR_WEIGHTS_ORDER = (
    "open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth", "model.safetensors", "pytorch_model.bin", "pytorch_model.pth", "model.pth",
)  # fmt: skip


@dataclass(frozen=True)
class ClipAlias:
    """A short name for a scorer used in the paper."""

    alias: str
    arch: str
    pretrained: str
    note: str


ALIASES: dict[str, ClipAlias] = {
    a.alias: a
    for a in (
        ClipAlias("dfn-h14", "ViT-H-14-quickgelu", "dfn5b", "paper default scorer: ViT-H/14 DFN-5B, 224 px"),
        ClipAlias("dfn-h14-378", "ViT-H-14-378-quickgelu", "dfn5b", "ViT-H/14 DFN-5B at 378 px"),
        ClipAlias("vit-l14", "ViT-L-14-quickgelu", "openai", "OpenAI ViT-L/14 (paper Table 6)"),
        ClipAlias("vit-h14-laion", "ViT-H-14", "laion2b_s32b_b79k", "ViT-H/14 LAION-2B (paper Table 6)"),
        ClipAlias("siglip-l16", "ViT-L-16-SigLIP-256", "webli", "SigLIP ViT-L/16 256 px (paper Table 6)"),
        ClipAlias("siglip-so400m", "ViT-SO400M-14-SigLIP-384", "webli", "SigLIP SO400M/14 384 px"),
    )
}
DEFAULT_MODEL = "dfn-h14"


@dataclass(frozen=True)
class ClipSource:
    """A resolved model name: what open_clip builds and where the weights come from.

    kind: 'tag' (open_clip architecture + pretrained tag), 'file' (architecture + checkpoint file),
    'hf-hub' (an open_clip Hub repository) or 'local-dir' (a directory with config and weights).
    """

    name: str
    kind: str
    arch: str | None = None
    pretrained: str | None = None
    checkpoint: str | None = None
    local_dir: str | None = None
    hf_repo: str | None = None
    hf_filename: str | None = None
    url: str | None = None
    quick_gelu: bool | None = None
    force_quick_gelu: bool = False
    preprocess: dict[str, Any] = field(default_factory=dict)

    def hub_candidates(self) -> list[str]:
        """Weight file names open_clip tries in the Hub repo, in its order (safetensors twin first)."""
        if not self.hf_repo:
            return []
        name = self.hf_filename or HF_WEIGHTS_NAME
        return [*_safe_alternatives(name), name]

    def fetch_hint(self) -> str:
        """How a user gets the weights (and a Hub text tokenizer) onto an offline machine."""
        tokenizer = hf_tokenizer_repo(self)
        also = f" and {tokenizer_fetch(tokenizer)}" if tokenizer else ""
        if self.hf_repo:
            files = " ".join(self.hub_candidates()[-1:])
            extra = f" {CONFIG_NAME}" if self.kind == "hf-hub" else ""
            return (
                f"fetch it on a machine with internet: `hf download {self.hf_repo} {files}{extra}`{also} "
                "(then copy the Hugging Face cache, or set HF_HUB_CACHE), or pass a local file as "
                f"{self.arch or 'ARCH'}:/path/to/weights"
            )
        if self.url:
            return f"download {self.url} into ~/.cache/clip/, or pass {self.arch}:/path/to/weights"
        return "check the path"


def hf_tokenizer_repo(source: ClipSource) -> str | None:
    """The Hub repo open_clip loads the text tokenizer from (SigLIP: timm/ViT-B-16-SigLIP), if any."""
    if not source.arch:
        return None
    config = _open_clip().get_model_config(source.arch) or {}
    return (config.get("text_cfg") or {}).get("hf_tokenizer_name")


def tokenizer_fetch(repo: str) -> str:
    """The download command of a Hub text tokenizer (its JSON files and SentencePiece model)."""
    return f"`hf download {repo} --include '*.json' '*.model'` (the text tokenizer)"


def missing_tokenizer_message(source: ClipSource, cache_dir: str | None = None) -> str | None:
    """One line when the model's Hub tokenizer is not cached and the Hub is offline; None otherwise."""
    repo = hf_tokenizer_repo(source)
    if not repo or not hub_offline() or cached_hub_file(repo, "tokenizer_config.json", cache_dir):
        return None
    return (
        f"CLIP model '{source.name}' needs its text tokenizer from {repo}, which is not in the Hugging Face "
        f"cache {hub_cache_dir(cache_dir)} (HF_HUB_OFFLINE set); fetch it on a machine with internet: "
        f"{tokenizer_fetch(repo)}"
    )


def _safe_alternatives(filename: str) -> list[str]:
    """open_clip.pretrained._get_safe_alternatives: the safetensors names tried before a .bin/.pth."""
    if filename == HF_WEIGHTS_NAME:
        return [HF_SAFE_WEIGHTS_NAME]
    if filename.endswith((".bin", ".pth")):
        return [filename[:-4] + ".safetensors"]
    return []


def _open_clip() -> Any:
    import open_clip

    return open_clip


def _preprocess_of(tag_cfg: dict[str, Any]) -> dict[str, Any]:
    """The image preprocessing keys of a pretrained tag (mean, std, interpolation, resize_mode, ...)."""
    keys = ("size", "mode", "mean", "std", "interpolation", "resize_mode", "fill_color")
    return {k: tag_cfg[k] for k in keys if k in tag_cfg}


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _read_local_config(directory: str, name: str) -> dict[str, Any]:
    path = os.path.join(directory, CONFIG_NAME)
    if not os.path.isfile(path):
        raise InputError(f"CLIP model '{name}': no {CONFIG_NAME} in {directory}")
    try:
        with open(path, encoding="utf-8") as fh:
            config = json.load(fh)
    except (OSError, ValueError) as exc:
        raise InputError(f"CLIP model '{name}': cannot read {path}: {exc}") from None
    if "model_cfg" not in config:
        raise InputError(f"CLIP model '{name}': {path} has no 'model_cfg'")
    return config


def _local_dir_source(name: str, directory: str) -> ClipSource:
    directory = os.path.abspath(os.path.expanduser(directory))
    if not os.path.isdir(directory):
        raise InputError(f"CLIP model '{name}': directory not found: {directory}")
    config = _read_local_config(directory, name)
    return ClipSource(
        name=name,
        kind="local-dir",
        local_dir=directory,
        quick_gelu=bool(config["model_cfg"].get("quick_gelu", False)),
        preprocess=dict(config.get("preprocess_cfg", {})),
    )


def _arch_source(name: str, arch: str, pretrained: str, preprocess_from: str | None = None) -> ClipSource:
    """An open_clip architecture with a pretrained tag or a checkpoint file."""
    oc = _open_clip()
    arch = arch.replace("/", "-")  # open_clip accepts 'ViT-B/32'
    if arch not in oc.list_models():
        raise UsageError(
            f"unknown CLIP architecture '{arch}'{_suggest(arch, oc.list_models())}; see `clipdpo models`"
        )
    model_cfg = oc.get_model_config(arch)
    arch_quick_gelu = bool(model_cfg.get("quick_gelu", False))
    tag_cfg = oc.get_pretrained_cfg(arch, pretrained)
    if tag_cfg:
        tag_quick_gelu = bool(tag_cfg.get("quick_gelu", False))
        hf_repo = hf_filename = None
        if tag_cfg.get("hf_hub"):
            hf_repo, hf_filename = os.path.split(tag_cfg["hf_hub"])
        return ClipSource(
            name=name,
            kind="tag",
            arch=arch,
            pretrained=pretrained.lower().replace("-", "_"),
            hf_repo=hf_repo,
            hf_filename=hf_filename or None,
            url=tag_cfg.get("url") or None,
            # The tag's weights were trained with QuickGELU: build it so even when the plain name was given
            # (open_clip would only warn and build GELU).
            quick_gelu=arch_quick_gelu or tag_quick_gelu,
            force_quick_gelu=tag_quick_gelu and not arch_quick_gelu,
            preprocess=_preprocess_of(tag_cfg),
        )
    looks_like_path = (
        os.sep in pretrained or pretrained.endswith(CHECKPOINT_SUFFIXES) or pretrained.startswith("~")
    )
    if looks_like_path:
        path = os.path.abspath(os.path.expanduser(pretrained))
        if not os.path.isfile(path):
            raise InputError(f"CLIP model '{name}': checkpoint file not found: {path}")
        preprocess: dict[str, Any] = {}
        if preprocess_from:
            preprocess = _preprocess_of(oc.get_pretrained_cfg(arch, preprocess_from))
        return ClipSource(
            name=name,
            kind="file",
            arch=arch,
            checkpoint=path,
            quick_gelu=arch_quick_gelu,
            preprocess=preprocess,
        )
    tags = oc.list_pretrained_tags_by_model(arch)
    known = f"known tags: {', '.join(tags)}" if tags else "open_clip knows no pretrained tags for it"
    hint = _suggest(pretrained, tags)
    raise UsageError(f"'{pretrained}' is neither a pretrained tag of {arch} nor a checkpoint{hint}; {known}")


def resolve_clip(name: str) -> ClipSource:
    """What a model name means (see the module docstring). Raises UsageError/InputError with one line."""
    name = name.strip()
    if not name:
        raise UsageError("empty CLIP model name")
    if name.startswith(HF_HUB_PREFIX):
        repo = name[len(HF_HUB_PREFIX) :].strip("/")
        if repo.count("/") != 1:
            raise UsageError(f"'{name}': expected hf-hub:ORG/REPO")
        return ClipSource(name=name, kind="hf-hub", hf_repo=repo)
    if name.startswith(LOCAL_DIR_PREFIX):
        return _local_dir_source(name, name[len(LOCAL_DIR_PREFIX) :])
    alias_name, _, rest = name.partition(":")
    alias = ALIASES.get(alias_name.lower())
    if alias is not None:
        if rest:  # ALIAS:/path/to/weights keeps the alias's architecture and preprocessing
            return _arch_source(name, alias.arch, rest, preprocess_from=alias.pretrained)
        return _arch_source(name, alias.arch, alias.pretrained)
    expanded = os.path.expanduser(name)
    if os.path.isdir(expanded):
        return _local_dir_source(name, expanded)
    if os.path.isfile(expanded):
        directory = os.path.dirname(os.path.abspath(expanded))
        if not os.path.isfile(os.path.join(directory, CONFIG_NAME)):
            raise UsageError(
                f"'{name}' is a checkpoint file but its architecture is unknown: pass ARCH:{name} "
                f"(e.g. ViT-H-14-quickgelu:{name}) or put its {CONFIG_NAME} beside it"
            )
        source = _local_dir_source(name, directory)
        return ClipSource(**{**source.__dict__, "kind": "file", "checkpoint": os.path.abspath(expanded)})
    if rest:
        return _arch_source(name, alias_name, rest)
    oc = _open_clip()
    if alias_name.replace("/", "-") in oc.list_models():
        tags = oc.list_pretrained_tags_by_model(alias_name.replace("/", "-"))
        raise UsageError(
            f"'{name}' names an architecture without weights: pass {name}:TAG "
            f"(known tags: {', '.join(tags) or 'none'}) or {name}:/path/to/checkpoint"
        )
    if os.sep in name or name.endswith(CHECKPOINT_SUFFIXES):
        raise InputError(f"CLIP model '{name}': no such file or directory")
    raise UsageError(
        f"unknown CLIP model '{name}'{_suggest(name.lower(), list(ALIASES))}; see `clipdpo models`"
    )


# --- where the weights are ------------------------------------------------------------------------------


def hub_cache_dir(cache_dir: str | None = None) -> str:
    if cache_dir:
        return cache_dir
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def cached_hub_file(repo: str, filename: str, cache_dir: str | None) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, cache_dir=hub_cache_dir(cache_dir))
    return found if isinstance(found, str) and os.path.isfile(found) else None


def dir_weights(directory: str) -> str | None:
    """The checkpoint open_clip would load from a local directory (its preference order), if any."""
    names = sorted(n for n in os.listdir(directory) if n.endswith((".safetensors", ".bin", ".pth")))
    preferred = [n for n in DIR_WEIGHTS_ORDER if n in names]
    if preferred:
        return os.path.join(directory, preferred[0])
    names.sort(key=lambda n: not n.endswith(".safetensors"))
    return os.path.join(directory, names[0]) if names else None


def find_cached_weights(source: ClipSource, cache_dir: str | None = None) -> str | None:
    """The local weights file for a source, or None when it would have to be downloaded."""
    if source.checkpoint:
        return source.checkpoint
    if source.kind == "local-dir":
        return dir_weights(source.local_dir or "")
    if source.hf_repo:
        for filename in source.hub_candidates():
            found = cached_hub_file(source.hf_repo, filename, cache_dir)
            if found:
                return found
        return None
    if source.url:
        path = os.path.join(cache_dir or os.path.expanduser("~/.cache/clip"), os.path.basename(source.url))
        return path if os.path.isfile(path) else None
    return None


def missing_weights_message(source: ClipSource, cache_dir: str | None = None) -> str:
    """One line: which model, where we looked, how to get it."""
    if source.kind == "local-dir":
        return f"CLIP model '{source.name}': no weights (*.safetensors, *.bin, *.pth) in {source.local_dir}"
    if source.hf_repo:
        files = ", ".join(source.hub_candidates())
        where = f"the Hugging Face cache {hub_cache_dir(cache_dir)} ({source.hf_repo}: {files})"
    else:
        where = cache_dir or os.path.expanduser("~/.cache/clip")
    offline = " with HF_HUB_OFFLINE set" if hub_offline() else ""
    return (
        f"CLIP model '{source.name}' weights are not on this machine{offline}: looked in {where}; "
        f"{source.fetch_hint()}"
    )


def describe(source: ClipSource) -> str:
    """A short human description: 'ViT-H-14-quickgelu / dfn5b (apple/DFN5B-CLIP-ViT-H-14)'."""
    if source.kind == "tag":
        where = source.hf_repo or source.url or ""
        return f"{source.arch} / {source.pretrained}" + (f" ({where})" if where else "")
    if source.kind == "file":
        return f"{source.arch or source.local_dir} / {source.checkpoint}"
    if source.kind == "hf-hub":
        return f"hf-hub:{source.hf_repo}"
    return f"local-dir:{source.local_dir}"


def registry_rows(cache_dir: str | None = None) -> list[dict[str, Any]]:
    """The aliases with what they resolve to and whether their weights are cached here."""
    rows = []
    for alias in ALIASES.values():
        source = resolve_clip(alias.alias)
        rows.append(
            {
                "alias": alias.alias,
                "arch": source.arch,
                "pretrained": source.pretrained,
                "hf_repo": source.hf_repo,
                "quick_gelu": source.quick_gelu,
                "cached": find_cached_weights(source, cache_dir) is not None,
                "default": alias.alias == DEFAULT_MODEL,
                "note": alias.note,
            }
        )
    return rows
