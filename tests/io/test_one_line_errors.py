"""Failures that were tracebacks and are one line naming the file and what to do (issue 26, finding 5): a
pickled weight file, a broken or sandbox-violating chat template, a template its processor disagrees with,
`$` in the report's texts (matplotlib math), a malformed zero-shot file, `--config DIR`, a webdataset .json
holding the internal image-bytes key."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile

import pytest
from PIL import Image

from clipdpo_cli.io.errors import InputError
from tests.conftest import run_in_process


def one_error_line(result, code: int = 1) -> str:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


# --- models -------------------------------------------------------------------------------------------


class _Evil:
    """A pickled object that would run code when loaded (it would write the file named)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (shutil.copy, (__file__, self.path))


def test_pickled_weights_are_one_line_and_never_run(tiny_llava_path, tmp_path):
    import torch
    from safetensors.torch import load_file

    from clipdpo_cli.models.lvlm import load_lvlm

    folder = tmp_path / "model"
    shutil.copytree(tiny_llava_path, folder)
    weights = load_file(folder / "model.safetensors")
    ran = tmp_path / "ran.txt"
    weights["evil"] = _Evil(str(ran))
    torch.save(weights, folder / "pytorch_model.bin")
    os.remove(folder / "model.safetensors")
    with pytest.raises(InputError) as caught:
        load_lvlm(str(folder), device="cpu")
    message = str(caught.value)
    assert message == (
        f"cannot load model '{folder}': a weight file in it (pytorch_model.bin / .pt) holds pickled objects "
        "other than tensors, which torch refuses to run; use a copy with safetensors weights from a source "
        "you trust"
    )  # before: torch's UnpicklingError traceback, advising to allowlist the global or weights_only=False
    assert not ran.exists()


def test_a_pickled_open_clip_checkpoint_is_one_line(tiny_clip_path, tmp_path):
    import torch
    from safetensors.torch import load_file

    from clipdpo_cli.models.clip import load_clip

    folder = tmp_path / "clip"
    shutil.copytree(tiny_clip_path(0).removeprefix("local-dir:"), folder)
    weights = load_file(folder / "open_clip_model.safetensors")
    ran = tmp_path / "ran.txt"
    weights["evil"] = _Evil(str(ran))
    torch.save(weights, folder / "open_clip_pytorch_model.bin")
    os.remove(folder / "open_clip_model.safetensors")
    with pytest.raises(InputError, match="holds pickled objects other than tensors, which torch refuses"):
        load_clip(f"local-dir:{folder}", device="cpu")
    assert not ran.exists()


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ messages.__class__.__mro__ }}", "(SecurityError: access to attribute '__class__' of 'list' "
         "object is unsafe)"),  # fmt: skip
        ("{% for m in messages %}{{ m.content", "(TemplateSyntaxError at line 1: unexpected end of template, "
         "expected 'end of print statement')"),  # fmt: skip
        ("{{ raise_exception('only one turn') }}", "(TemplateError: only one turn)"),
    ],
)
def test_a_template_that_fails_is_one_line(tiny_llava_path, template, expected):
    from clipdpo_cli.models.conversation import ChatEncoding
    from clipdpo_cli.models.lvlm import load_lvlm_processor

    encoding = ChatEncoding(load_lvlm_processor(tiny_llava_path, chat_template=template))
    with pytest.raises(InputError) as caught:
        encoding.prompt_batch([Image.new("RGB", (16, 16))], ["Describe."])
    assert str(caught.value) == (
        f"the chat template cannot be used {expected}: fix it, or pass one written for this model with "
        "--chat-template FILE"
    )


def test_a_template_the_processor_disagrees_with_is_one_line(tiny_llava_path, tmp_path):
    """InternVL's case in small: the template writes another image token than the processor counts."""
    template = tmp_path / "other.jinja"
    template.write_text(
        "{% for m in messages %}USER: {% for c in m['content'] %}{% if c['type'] == 'image' %}"
        "<IMG_CONTEXT>{% else %}{{ c['text'] }}{% endif %}{% endfor %} {% endfor %}"
        "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
    )
    image = tmp_path / "x.png"
    Image.new("RGB", (16, 16), "red").save(image)
    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"id": "q", "image": str(image), "prompt": "Describe."}) + "\n")
    result = run_in_process("respond", str(queries), "-m", tiny_llava_path, "--device", "cpu",
                            "--chat-template", str(template))  # fmt: skip
    line = one_error_line(result)
    assert line == (
        "clipdpo respond: error: the model's processor refuses the prompt its chat template writes (it "
        "expects <image> where the image goes): The total number of <image> tokens in the prompts should be "
        "the same as the number of images passed. Found total 0 <image> tokens and 1 images; pass a template "
        "written for this model with --chat-template FILE"
    )


# --- report -------------------------------------------------------------------------------------------


def _jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_dollar_signs_in_the_report_are_text(tmp_path):
    odd = r"$x^$ and $\frac$"  # before: matplotlib's ParseSyntaxException traceback
    scored = _jsonl(tmp_path / "s.jsonl", [
        {"id": f"s{i}", "image": "x.jpg", "text": "a cat", "kind": "caption", "clip_score": 20.0 + 3 * i,
         "category": odd} for i in range(6)])  # fmt: skip
    rejects = _jsonl(tmp_path / "r.jsonl", [{"id": "r", "reject_reason": f"cost {odd}"}])
    zs_line = {"dataset": "food101", "model": f"m{odd}", "caption": {"top1": 5}}
    zeroshot = _jsonl(tmp_path / "z.jsonl", [zs_line])
    out = tmp_path / "report.html"
    result = run_in_process("report", "--scored", scored, "--rejects", rejects, "--zeroshot", zeroshot,
                            "-o", str(out), "-q")  # fmt: skip
    assert result.returncode == 0, result.stderr
    html = out.read_text()
    assert "m$x^$ and $\\frac$" in html  # the label, escaped for HTML (nothing to escape here) and drawn


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ({"dataset": "food101", "caption": "oops"}, "'caption' must be an object of accuracies"),
        ({"dataset": "food101", "clip": [1]}, "'clip' must be an object of accuracies"),
        ({"dataset": {"a": 1}, "caption": {"top1": 5}}, "'dataset' must be a string"),
    ],
)
def test_a_malformed_zeroshot_file_is_one_line(tmp_path, line, problem):
    path = _jsonl(tmp_path / "z.jsonl", [{"dataset": "pets", "caption": {"top1": 1}}, line])
    result = run_in_process("report", "--zeroshot", path, "-o", str(tmp_path / "r.html"))
    assert one_error_line(result) == (
        f"clipdpo report: error: {path}: line 2: {problem}"
        + (' ({"top1": ...}): ' if "accuracies" in problem else ": ")
        + "not an eval-zeroshot output as it writes them"
    )  # before: AttributeError: 'str' object has no attribute 'get'


# --- options and inputs ---------------------------------------------------------------------------------


def test_config_given_a_folder_is_one_line(tmp_path):
    pairs = _jsonl(tmp_path / "p.jsonl", [{"id": "p", "image": "x.jpg", "prompt": "D.", "chosen": "a",
                                          "rejected": "b"}])  # fmt: skip
    (tmp_path / "cfg").mkdir()
    result = run_in_process("train", pairs, "--config", str(tmp_path / "cfg"), "-m", "x", "--output-dir",
                            str(tmp_path / "out"))  # fmt: skip
    assert one_error_line(result) == (
        f"clipdpo train: error: --config {tmp_path / 'cfg'} is a folder: pass a YAML file"
    )  # before: IsADirectoryError traceback


def _tar(path, samples) -> str:
    with tarfile.open(path, "w") as tar:
        for key, members in samples:
            for ext, payload in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return str(path)


def test_webdataset_json_with_the_internal_image_key_is_a_bad_record(tmp_path):
    meta = json.dumps({"text": "a red cat", "\u0000image_bytes": "boom"}).encode()
    png = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(png, "PNG")
    good = {"png": png.getvalue(), "json": b'{"text": "x"}'}
    tar = _tar(tmp_path / "s.tar", [("a", {"json": meta}), ("b", good)])
    args = ["perturb", tar, "--text-column", "text", "--extract-images-to", str(tmp_path / "img"),
            "--method", "rules", "--types", "attribute"]  # fmt: skip
    assert one_error_line(run_in_process(*args)) == (
        "clipdpo perturb: error: s.tar: sample a: a.json has a field named '\\x00image_bytes', which clipdpo "
        "keeps for image bytes: rename it (use --on-error skip to skip such records)"
    )  # before: KeyError: 'image'
    skipped = run_in_process(*args, "--on-error", "skip")
    assert skipped.returncode == 0 and "skipped bad 1 reserved field name" in skipped.stderr
    assert [json.loads(line)["key"] for line in skipped.stdout.splitlines()] == ["b"]
