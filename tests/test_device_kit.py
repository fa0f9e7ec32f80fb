"""The device kit (tools/device_kit.sh): the wheels the lent GPU image lacks, pinned to what this venv
installs, and the proof that benchmarks/gpu.py's import path needs nothing else: its modules import in a
Python where the packages neither the image nor the kit has (deepspeed, webdataset) are truly absent (no
module, no metadata)."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import sysconfig

import pytest

from tests.conftest import REPO

KIT = REPO / "tools" / "device_kit.sh"
# What the lent image lacks among this project's dependencies (/work/.library/device/KINDS.md, 2026-11):
IMAGE_LACKS = {"orjson", "trl", "datasets", "open_clip_torch", "ftfy", "webdataset", "deepspeed"}
# every clipdpo module benchmarks/gpu.py and the `clipdpo train` / `ref-logps` it runs import
GPU_PY_MODULES = [
    "clipdpo_cli.models.device", "clipdpo_cli.models.hub", "clipdpo_cli.models.lvlm",
    "clipdpo_cli.models.clip", "clipdpo_cli.models.clip_images", "clipdpo_cli.io.stage",
    "clipdpo_cli.stages.caption", "clipdpo_mini.models.families", "clipdpo_mini.models.tiny_clip",
    "clipdpo_cli.commands.train", "clipdpo_cli.commands.ref_logps", "clipdpo_cli.train.trainer",
    "clipdpo_cli.train.build", "clipdpo_cli.train.lora", "clipdpo_cli.train.dpo_trainer",
    "clipdpo_cli.train.refcache", "clipdpo_cli.stages.ref_logps",
]  # fmt: skip


def kit_pins() -> dict[str, str]:
    text = KIT.read_text()
    block = re.search(r"^WHEELS=\((.*?)^\)", text, re.M | re.S).group(1)
    return dict(re.findall(r"^\s*([A-Za-z0-9_.-]+)==([^\s#]+)", block, re.M))


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def test_make_installs_the_kits_versions():
    """constraints.txt pins every wheel of the kit, so a fresh `make test` installs what the kit brings (a
    new typer on PyPI once made the fresh venv and the kit differ, and CI failed on a clean clone)."""
    constraints = dict(
        re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (REPO / "constraints.txt").read_text(), re.M)
    )
    pinned = {norm(k): v for k, v in constraints.items()}
    assert {norm(k): v for k, v in kit_pins().items()}.items() <= pinned.items()


def test_the_kit_brings_what_gpu_py_needs_at_this_venvs_versions():
    pins = kit_pins()
    assert {norm(n) for n in IMAGE_LACKS - {"webdataset", "deepspeed"}} <= {norm(n) for n in pins}
    for name, version in pins.items():
        assert importlib.metadata.version(name) == version, f"{name}: the kit pins {version}"
    # each wheel's own needs are in the kit or in the image (pip downloads with --no-deps)
    image = {"accelerate", "transformers", "torch", "torchvision", "huggingface_hub", "numpy", "pandas",
             "pyarrow", "packaging", "pyyaml", "jinja2", "psutil", "filelock", "tqdm", "xxhash", "fsspec",
             "regex", "safetensors", "timm", "shellingham", "annotated_doc", "colorama", "httpx",
             "requests", "markdown_it_py", "pygments"}  # fmt: skip
    for name in pins:
        for requirement in importlib.metadata.requires(name) or []:
            if "extra ==" in requirement or "platform_system" in requirement:
                continue
            needed = norm(re.match(r"[A-Za-z0-9_.-]+", requirement).group(0))
            assert needed in image | {norm(n) for n in pins}, f"{name} needs {requirement}"


def filtered_site(tmp_path, absent: set[str]) -> str:
    """A site-packages of links to this venv's, without the distributions named in `absent`."""
    site = sysconfig.get_paths()["purelib"]
    hidden = set()
    for name in absent:
        dist = importlib.metadata.distribution(name)
        hidden |= {str(f).split("/")[0] for f in dist.files or []}
    folder = tmp_path / "site"
    folder.mkdir()
    for entry in os.listdir(site):
        if entry not in hidden and not entry.endswith(".pth"):
            (folder / entry).symlink_to(os.path.join(site, entry))
    return str(folder)


def test_gpu_py_imports_without_the_packages_the_image_and_kit_lack(tmp_path):
    absent = IMAGE_LACKS - {n for n in IMAGE_LACKS if norm(n) in {norm(p) for p in kit_pins()}}
    assert absent == {"webdataset", "deepspeed"}
    site = filtered_site(tmp_path, absent)
    script = f"""
import importlib, importlib.util, sys
for name in {sorted(absent)!r}:
    assert importlib.util.find_spec(name) is None, name
for module in {GPU_PY_MODULES!r}:
    importlib.import_module(module)
spec = importlib.util.spec_from_file_location("gpu_bench", {str(REPO / "benchmarks" / "gpu.py")!r})
gpu = sys.modules["gpu_bench"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu)
assert set(gpu.SECTIONS) == {{"caption", "score", "train_lora", "train_full"}}
import open_clip, trl, orjson, datasets  # what the kit brings
from clipdpo_cli.cli import main
try:
    main(["train", "--help"])
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
print("imported", len(sys.modules), "modules;", "deepspeed" in sys.modules, "webdataset" in sys.modules)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), site])
    r = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True, env=env,
                       timeout=300, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().endswith("False False")  # neither was imported, nor needed


@pytest.mark.parametrize("name", ["deepspeed"])
def test_the_filter_really_hides_a_package(tmp_path, name):
    """The check above can fail: a module that imports a hidden package fails to import."""
    site = filtered_site(tmp_path, {name})
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = site
    r = subprocess.run([sys.executable, "-S", "-c", f"import {name}"], capture_output=True, text=True,
                       env=env, timeout=60)  # fmt: skip
    assert r.returncode == 1 and f"No module named '{name}'" in r.stderr
