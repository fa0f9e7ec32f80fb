"""MobileVLMProcessor: pad to a square, CLIP preprocessing at 336 px, the `v1` conversation as chat template.

The official checkpoints ship a tokenizer and nothing else: no processor config, no image-processor config
(the official code reads the CLIP image processor of `mm_vision_tower`), no chat template (the official code
renders `conv_templates["v1"]` in Python). `from_pretrained` builds all three for such a folder; a folder this
processor saved (after `clipdpo train`) loads as any transformers processor.

Images are padded to a square with the image processor's mean colour when the config says
`image_aspect_ratio: pad` (every published checkpoint), as the official `process_images` does, and each
`<image>` in the text becomes 144 placeholder tokens (the id after the official vocabulary).
"""

from __future__ import annotations

import json
import os
from typing import Any

from PIL import Image
from transformers import AutoConfig, AutoTokenizer, BatchFeature, CLIPImageProcessor, ProcessorMixin
from transformers.image_utils import make_flat_list_of_images
from transformers.utils import PROCESSOR_NAME, cached_file

IMAGE_TOKEN = "<image>"

# conv_templates["v1"] of the official mobilevlm/conversation.py (SeparatorStyle.TWO, sep " ", sep2 "</s>"):
# "<system> USER: <image>\n<prompt> ASSISTANT: <answer></s>USER: ... ASSISTANT:"; a system turn replaces the
# default system text. The image comes first in its turn, then "\n", as the official get_prompt writes it.
V1_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
V1_CHAT_TEMPLATE = (
    "{%- set ns = namespace(system='" + V1_SYSTEM.replace("'", "\\'") + "') -%}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}{%- set ns.system = messages[0]['content'] -%}"
    "{%- else -%}{%- set ns.system = messages[0]['content'] | selectattr('type', 'equalto', 'text')"
    " | map(attribute='text') | join('') -%}{%- endif -%}{%- endif -%}"
    "{{- ns.system + ' ' -}}"
    "{%- for message in messages if message['role'] != 'system' -%}"
    "{%- if message['role'] == 'user' -%}{{- 'USER: ' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}{%- else -%}"
    "{%- for part in message['content'] | selectattr('type', 'equalto', 'image') -%}{{- '<image>\n' -}}"
    "{%- endfor -%}"
    "{%- for part in message['content'] | selectattr('type', 'equalto', 'text') -%}{{- part['text'] -}}"
    "{%- endfor -%}{%- endif -%}{{- ' ' -}}"
    "{%- else -%}{{- 'ASSISTANT: ' -}}{% generation %}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}{%- else -%}"
    "{%- for part in message['content'] | selectattr('type', 'equalto', 'text') -%}{{- part['text'] -}}"
    "{%- endfor -%}{%- endif -%}{{- '</s>' -}}{% endgeneration %}"
    "{%- endif -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}"
)

# openai/clip-vit-large-patch14-336's preprocessor_config.json (the settings llava-hf/llava-1.5-7b-hf
# publishes for the same tower): the official code loads this image processor from `mm_vision_tower`.
CLIP_336_PREPROCESSING: dict[str, Any] = {
    "size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 336}, "do_center_crop": True,
    "do_resize": True, "do_rescale": True, "do_normalize": True, "do_convert_rgb": True, "resample": 3,
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
}  # fmt: skip


def pad_to_square(image: Image.Image, mean: list[float]) -> Image.Image:
    """The image centred on a square of the mean colour (official `expand2square`)."""
    image = image.convert("RGB")
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new("RGB", (side, side), tuple(int(x * 255) for x in mean))
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


class MobileVLMProcessor(ProcessorMixin):
    """CLIPImageProcessor + the Llama tokenizer; `<image>` expands to `image_seq_length` placeholders."""

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        chat_template: str | None = None,
        image_token: str = IMAGE_TOKEN,
        image_seq_length: int = 144,
        image_aspect_ratio: str = "pad",
        **kwargs: Any,
    ) -> None:
        if image_token not in tokenizer.get_vocab():
            tokenizer.add_special_tokens({"additional_special_tokens": [image_token]})
        self.image_token = image_token
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        self.image_seq_length = image_seq_length
        self.image_aspect_ratio = image_aspect_ratio
        super().__init__(image_processor, tokenizer, chat_template=chat_template, **kwargs)

    def replace_image_token(self, image_inputs: dict, image_idx: int, **kwargs: Any) -> str:
        return self.image_token * self.image_seq_length

    def __call__(self, images: Any = None, text: Any = None, **kwargs: Any) -> BatchFeature:
        """Pixel values and ids as the official code tokenises: the text between images on its own.

        The official `tokenizer_image_token` tokenises each piece of text around an `<image>` separately,
        so the piece after an image starts with SentencePiece's word-start `▁` (`▁`, `<0x0A>` for a newline),
        whatever the tokenizer's `legacy` setting makes of text after a special token.
        """
        if text is None:
            return super().__call__(images=images, text=text, **kwargs)
        texts = [text] if isinstance(text, str) else list(text)
        return_tensors = kwargs.get("return_tensors")
        first = kwargs.get("add_special_tokens", True)
        rows = [self.text_ids(t, first) for t in texts]
        found = sum(t.count(self.image_token) for t in texts)
        given = len(make_flat_list_of_images(images)) if images is not None else 0
        if found != given:
            raise ValueError(f"{found} {self.image_token} in the text for {given} images")
        padding = kwargs.get("padding", False)
        data = dict(
            self.tokenizer.pad({"input_ids": rows}, padding=padding, padding_side=kwargs.get("padding_side"))
        )
        if images is not None:
            data.update(self._process_images(images)[0])
        return BatchFeature(data, tensor_type=return_tensors)

    def text_ids(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Ids of one text: its pieces around `<image>` tokenised apart, each image as its placeholders."""
        pieces = text.split(self.image_token)
        ids = list(self.tokenizer(pieces[0], add_special_tokens=add_special_tokens)["input_ids"])
        for piece in pieces[1:]:
            ids += [self.image_token_id] * self.image_seq_length
            ids += self.tokenizer(piece, add_special_tokens=False)["input_ids"] if piece else []
        return ids

    def _process_images(self, images: Any, **kwargs: Any) -> Any:
        flat = make_flat_list_of_images(images)
        if self.image_aspect_ratio == "pad":
            flat = [pad_to_square(to_pil(image), self.image_processor.image_mean) for image in flat]
        return super()._process_images(flat, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> Any:
        """A folder this processor saved loads as usual; an official checkpoint gets its parts built."""
        hub = {k: kwargs[k] for k in ("cache_dir", "revision", "token", "local_files_only", "subfolder")
               if k in kwargs}  # fmt: skip
        saved = cached_file(
            pretrained_model_name_or_path, PROCESSOR_NAME, _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False, **hub,
        )  # fmt: skip
        if saved is not None:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        return cls.from_official(pretrained_model_name_or_path, **hub)

    @classmethod
    def from_official(cls, path: str | os.PathLike, **hub: Any) -> MobileVLMProcessor:
        """The processor the official code uses for checkpoint `path` (tokenizer from `path`)."""
        config = AutoConfig.from_pretrained(path, **hub)
        config.check_vision_settings()
        tokenizer = AutoTokenizer.from_pretrained(path, **hub)
        processor = cls(
            image_processor=official_image_processor(config.mm_vision_tower), tokenizer=tokenizer,
            chat_template=V1_CHAT_TEMPLATE, image_seq_length=config.image_seq_length,
            image_aspect_ratio=config.image_aspect_ratio,
        )  # fmt: skip
        if processor.image_token_id != config.image_placeholder_id:
            raise ValueError(
                f"{path}: the tokenizer gives {IMAGE_TOKEN} id {processor.image_token_id}, the model expects "
                f"{config.image_placeholder_id} (the first id after its vocabulary)"
            )
        return processor


def official_image_processor(vision_tower: str) -> CLIPImageProcessor:
    """CLIPImageProcessor of `mm_vision_tower`: the published CLIP-336 settings, or a local tower's own."""
    config_file = os.path.join(os.path.expanduser(vision_tower), "preprocessor_config.json")
    if os.path.isfile(config_file):
        with open(config_file, encoding="utf-8") as fh:
            values = json.load(fh)
        values.pop("image_processor_type", None)
        values.pop("processor_class", None)
        return CLIPImageProcessor(**values)
    return CLIPImageProcessor(**CLIP_336_PREPROCESSING)


def to_pil(image: Any) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    from transformers.image_utils import to_pil_image

    return to_pil_image(image)
