"""The lmms-eval hand-off (docs/evaluation.md, Table 4): a clipdpo-trained folder loads through lmms-eval's
`llava_hf` model class with the documented arguments and answers one `generate_until` request.

lmms-eval is optional (installing 0.7.3 into the project's environment would downgrade protobuf and
python-dateutil), so this test is skipped, with that reason, where it is not installed."""

from __future__ import annotations

import pytest

pytest.importorskip(
    "lmms_eval",
    reason="lmms-eval is not installed (optional: 0.7.3 would downgrade protobuf and python-dateutil)",
)
pytest.importorskip("decord", reason="lmms-eval's llava_hf imports decord at module import")

from lmms_eval.api.instance import Instance  # noqa: E402
from lmms_eval.models.simple import llava_hf  # noqa: E402

from tests.train.train_helpers import QUICK_TRAINING, main_in_process  # noqa: E402

# what llava_hf itself uses when a tokenizer has no template: string content, which its requests carry
STRING_CONTENT_TEMPLATE = (
    "{% for message in messages %}{% if loop.index0 == 0 %}A chat between a curious user and an artificial "
    "intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's "
    "questions. "
    "USER: {{ message['content'] }} {% elif message['role'] == 'user' %}USER: {{ message['content'] }} "
    "{% else %} ASSISTANT: {{ message['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


@pytest.mark.slow
def test_trained_folder_answers_through_lmms_eval_llava_hf(tiny_llava, toy_pairs, tmp_path, capsys):
    from PIL import Image

    out = str(tmp_path / "trained")
    args = ("--max-steps", "1", "--per-device-batch-size", "2", *QUICK_TRAINING)
    code, _, err = main_in_process(
        capsys, "train", toy_pairs, "--model", tiny_llava, "--output-dir", out, *args
    )
    assert code == 0, err
    model = llava_hf.LlavaHf(pretrained=out, device="cpu", device_map="cpu", dtype="float32",
                             chat_template=STRING_CONTENT_TEMPLATE)  # fmt: skip
    doc = {"image": Image.new("RGB", (40, 32), "red"), "question": "Is there a dog in the image?"}
    model.task_dict = {"pope": {"test": {0: doc}}}
    request = Instance(
        request_type="generate_until",
        arguments=("Is there a dog in the image?\nAnswer the question using a single word or phrase.",
                   {"max_new_tokens": 4, "temperature": 0, "do_sample": False}, lambda d: [d["image"]], 0,
                   "pope", "test"),
        idx=0, metadata={"task": "pope", "doc_id": 0, "repeats": 1},
    )  # fmt: skip
    (answer,) = model.generate_until([request])
    text = answer if isinstance(answer, str) else answer.text
    assert isinstance(text, str)
    # the rendered prompt keeps the question (the list-content template of the folder would lose it)
    rendered = model.tokenizer.apply_chat_template(
        [{"role": "user", "content": "<image>\nIs there a dog?"}], tokenize=False, add_generation_prompt=True
    )
    assert "Is there a dog?" in rendered and rendered.endswith("ASSISTANT:")
