"""MobileVLM as a transformers image-text-to-text model: Llama LM, CLIP vision tower, LDP / LDPv2 projector.

Written from the description in Meituan-AutoML/MobileVLM (mobilevlm/model/*.py, Apache-2.0) and checked
against it numerically (tests/models/families/test_mobilevlm_parity.py, docs/families.md). Unlike the
official code, images are a run of placeholder tokens in `input_ids` (one per image feature, 144 per
image, LLaVA's convention in transformers) rather than one `-200` marker, so every row keeps its length
through the model: padding, TRL's collators, generation and DPO work on it unchanged.

The official weight names (`model.layers.*`, `model.vision_tower.vision_tower.vision_model.*`,
`model.mm_projector.*`) are mapped to this module tree on load and back on save (transformers' checkpoint
conversion mapping), so a saved model is again in the official layout.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from transformers import CLIPVisionModel, GenerationMixin, LlamaModel, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from clipdpo_cli.models.mobilevlm.configuration import IMAGE_GRID, MobileVLMConfig


def to_grid(x: torch.Tensor) -> torch.Tensor:
    """(batch, tokens, channels) with a square number of tokens -> (batch, channels, side, side)."""
    b, n, c = x.shape
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"{n} image tokens are not a square grid")
    return x.transpose(1, 2).reshape(b, c, side, side)


def from_grid(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)


class LDPv2Projector(nn.Module):
    """MobileVLM V2's projector: Linear-GELU-Linear, average-pool to 12x12, depthwise 3x3 conv + residual."""

    def __init__(self, config: MobileVLMConfig) -> None:
        super().__init__()
        width = config.hidden_size
        self.fc1 = nn.Linear(config.mm_hidden_size, width)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(width, width)
        self.pos = nn.Conv2d(width, width, kernel_size=3, padding=1, groups=width, bias=True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        grid = to_grid(self.fc2(self.act(self.fc1(features))))
        grid = nn.functional.adaptive_avg_pool2d(grid, IMAGE_GRID)
        return from_grid(grid + self.pos(grid))


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map (timm's LayerNorm2d without an activation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class LDPBlock(nn.Module):
    """One MobileNetV3 block of MobileVLM's LDP: depthwise 3x3 (Hardswish), squeeze-excite, pointwise 1x1.

    torchvision's InvertedResidual with LayerNorm instead of BatchNorm; with stride 1 a residual is added.
    """

    def __init__(self, width: int, stride: int) -> None:
        from torchvision.models.mobilenetv3 import InvertedResidual, InvertedResidualConfig
        from torchvision.ops.misc import SqueezeExcitation

        super().__init__()

        def squeeze(channels: int, squeezed: int) -> nn.Module:
            return SqueezeExcitation(channels, squeezed, scale_activation=nn.Hardsigmoid)

        settings = InvertedResidualConfig(width, 3, width, width, True, "HS", stride, 1, 1)
        self.block = InvertedResidual(settings, lambda c: ChannelLayerNorm(c, eps=1e-5), squeeze)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class LDPProjector(nn.Module):
    """MobileVLM (v1)'s LDP: Linear-GELU-Linear, a stride-1 and a stride-2 MobileNetV3 block (24 -> 12)."""

    def __init__(self, config: MobileVLMConfig) -> None:
        super().__init__()
        width = config.hidden_size
        self.linear_1 = nn.Linear(config.mm_hidden_size, width)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(width, width)
        self.block1 = LDPBlock(width, stride=1)
        self.block2 = LDPBlock(width, stride=2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        grid = to_grid(self.linear_2(self.act(self.linear_1(features))))
        return from_grid(self.block2(self.block1(grid)))


def build_projector(config: MobileVLMConfig) -> nn.Module:
    return LDPv2Projector(config) if config.mm_projector_type == "ldpnetv2" else LDPProjector(config)


# Official key -> this module tree (renamed back on save). v1's torchvision blocks keep their inner names.
OFFICIAL_KEYS = (
    (r"^model\.embed_tokens\.", "model.language_model.embed_tokens."),
    (r"^model\.layers\.", "model.language_model.layers."),
    (r"^model\.norm\.", "model.language_model.norm."),
    (r"^model\.vision_tower\.vision_tower\.vision_model\.", "model.vision_tower."),
    (r"^model\.mm_projector\.mlp\.mlp\.0\.", "model.mm_projector.fc1."),
    (r"^model\.mm_projector\.mlp\.mlp\.2\.", "model.mm_projector.fc2."),
    (r"^model\.mm_projector\.peg\.peg\.0\.", "model.mm_projector.pos."),
    (r"^model\.mm_projector\.model\.mlp\.1\.", "model.mm_projector.linear_1."),
    (r"^model\.mm_projector\.model\.mlp\.3\.", "model.mm_projector.linear_2."),
    (r"^model\.mm_projector\.model\.mb_block\.1\.", "model.mm_projector.block1.block."),
    (r"^model\.mm_projector\.model\.mb_block\.2\.", "model.mm_projector.block2.block."),
)


class MobileVLMPreTrainedModel(PreTrainedModel):
    config: MobileVLMConfig
    config_class = MobileVLMConfig
    base_model_prefix = "model"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["LlamaDecoderLayer", "CLIPEncoderLayer"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_attention_backend = True


class MobileVLMModel(MobileVLMPreTrainedModel):
    """The Llama backbone with the CLIP tower and the projector; image placeholders become image features."""

    def __init__(self, config: MobileVLMConfig) -> None:
        config.check_vision_settings()
        super().__init__(config)
        self.language_model = LlamaModel(config)
        self.vision_tower = CLIPVisionModel(config.vision_config)
        self.mm_projector = build_projector(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_decoder(self) -> nn.Module:
        return self.language_model

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(images, 144, hidden) projected features of `mm_vision_select_layer`, CLS dropped."""
        tower = self.vision_tower
        out = tower(pixel_values.to(tower.dtype), output_hidden_states=True)
        features = out.hidden_states[self.config.mm_vision_select_layer][:, 1:]
        return self.mm_projector(features.to(pixel_values.dtype))

    def embed(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None) -> torch.Tensor:
        placeholders = input_ids == self.config.image_placeholder_id
        embeds = self.get_input_embeddings()(input_ids.masked_fill(placeholders, 0))
        if pixel_values is None:
            if placeholders.any():
                raise ValueError("image placeholder tokens without pixel_values")
            return embeds
        features = self.get_image_features(pixel_values).to(embeds.dtype)
        if int(placeholders.sum()) != features.shape[0] * features.shape[1]:
            raise ValueError(
                f"{int(placeholders.sum())} image placeholder tokens for {features.shape[0]} images of "
                f"{features.shape[1]} tokens"
            )
        return embeds.masked_scatter(placeholders.unsqueeze(-1), features.reshape(-1, features.shape[-1]))

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed(input_ids, pixel_values)
        kwargs.pop("return_dict", None)
        return self.language_model(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
            cache=cache, use_cache=use_cache, **kwargs,
        )  # fmt: skip


class MobileVLMForConditionalGeneration(MobileVLMPreTrainedModel, GenerationMixin):
    """MobileVLM with its LM head; loads the official checkpoints (see the module doc)."""

    _tied_weights_keys = {"lm_head.weight": "model.language_model.embed_tokens.weight"}

    def __init__(self, config: MobileVLMConfig) -> None:
        super().__init__(config)
        self.model = MobileVLMModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value

    def get_decoder(self) -> nn.Module:
        return self.model.get_decoder()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        out = self.model(
            input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask,
            position_ids=position_ids, cache=cache, inputs_embeds=inputs_embeds, use_cache=use_cache,
            **kwargs,
        )  # fmt: skip
        hidden = out.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden[:, keep, :])
        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs
            )
        return CausalLMOutputWithPast(
            loss=loss, logits=logits, cache=out.cache, hidden_states=out.hidden_states,
            attentions=out.attentions,
        )  # fmt: skip

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> Any:
        """As transformers' from_pretrained; a checkpoint without the CLIP tower's weights (MobileVLM v1 as
        published) gets them from `mm_vision_tower`, as the official loader does."""
        wants_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        if any(key.startswith("model.vision_tower.") for key in info.get("missing_keys", ())):
            tower = CLIPVisionModel.from_pretrained(model.config.mm_vision_tower, dtype=model.dtype)
            model.model.vision_tower.load_state_dict(tower.state_dict())
            info["missing_keys"] = {
                k for k in info["missing_keys"] if not k.startswith("model.vision_tower.")
            }
        return (model, info) if wants_info else model
