"""ImageReward (Xu et al. 2023): BLIP (ViT-L/16 + a BERT text encoder with cross-attention) and an MLP head.

The published `THUDM/ImageReward` files (`ImageReward.pt`, a state dict of their
`ImageReward` module, and `med_config.json`, the text encoder's BERT config) are
mapped onto transformers' `BlipVisionModel` and `BlipTextModel` (the same BLIP code,
ported) plus the MLP. The vision tower is BLIP's "large" ViT as ImageReward builds it
(224 px, patch 16, width 1024, 24 blocks, 16 heads, LayerNorm eps 1e-6). The tokenizer
is `bert-base-uncased` (plus BLIP's [DEC]/[ENC] tokens), padded to 35 tokens.
Preprocessing is openai/CLIP's at 224 px. The score is ImageReward's: the MLP on the
text encoder's first token, then `(reward - 0.16717362830052426) / 1.0333394966054072`.
"""

from __future__ import annotations

import json
import re

import torch

from goldennoise.generation.verifiers.base import (MEAN_OPENAI, STD_OPENAI, Verifier, check_mapping, clip_pixels,
                                                   expected_shapes, folder_or_none, hub_file, load_error,
                                                   mlp_head, read_checkpoint, revision_of)

REPO, CHECKPOINT, MED_CONFIG = "THUDM/ImageReward", "ImageReward.pt", "med_config.json"
TOKENIZER = "google-bert/bert-base-uncased"
VISION_FILE = "blip_vision_config.json"  # a stand-in folder's vision tower; the real one is BLIP_VIT_LARGE
BLIP_VIT_LARGE = {"image_size": 224, "patch_size": 16, "hidden_size": 1024, "num_hidden_layers": 24,
                  "num_attention_heads": 16, "intermediate_size": 4096}
MEAN, STD = 0.16717362830052426, 1.0333394966054072  # ImageReward's published reward normalisation
MAX_LENGTH = 35
VERSION = "1"
DEFINITION = "ImageReward's normalised reward: (MLP(BLIP text-image [CLS]) - 0.16717) / 1.03334"
_IGNORED = ("blip.vision_proj.", "blip.text_proj.", "position_ids")  # ITC projections; a BERT buffer
# BLIP's timm-style ViT -> transformers' BlipVisionModel (same packed qkv layout, renamed).
_VISION_TOP = {"cls_token": "embeddings.class_embedding", "pos_embed": "embeddings.position_embedding",
               "patch_embed.proj.weight": "embeddings.patch_embedding.weight",
               "patch_embed.proj.bias": "embeddings.patch_embedding.bias",
               "norm.weight": "post_layernorm.weight", "norm.bias": "post_layernorm.bias"}
_VISION_BLOCK = {"norm1": "layer_norm1", "norm2": "layer_norm2", "attn.qkv": "self_attn.qkv",
                 "attn.proj": "self_attn.projection", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}


def _rename_vision(key: str, top: dict, block: dict, pattern: str, prefix: str) -> str | None:
    if (m := re.fullmatch(pattern, key)) and m[2] in block:
        return f"{prefix}.{m[1]}.{block[m[2]]}.{m[3]}"
    return top.get(key)


def from_image_reward(state: dict) -> tuple[dict, dict, dict, list[str]]:
    """ImageReward's state dict -> (BlipVisionModel state, BlipTextModel state, MLP state, keys not used)."""
    vision, text, head, unused = {}, {}, {}, []
    for key, value in state.items():
        rest = key.split(".", 2)[-1] if key.startswith("blip.") else key.removeprefix("mlp.layers.")
        if key.startswith("blip.visual_encoder.") and (renamed := _rename_vision(
                rest, _VISION_TOP, _VISION_BLOCK, r"blocks\.(\d+)\.(.+)\.(weight|bias)", "encoder.layers")):
            vision[renamed] = value
        elif key.startswith("blip.text_encoder.") and not key.endswith("position_ids"):
            text[rest] = value  # transformers' BLIP text model keeps BLIP's (BERT's) names
        elif key.startswith("mlp.layers."):
            head[rest] = value
        else:
            unused.append(key)
    return vision, text, head, [k for k in unused if not any(part in k for part in _IGNORED)]


def to_image_reward(vision: dict, text: dict, head: dict) -> dict:
    """The inverse of `from_image_reward` (for writing the offline stand-in in ImageReward's layout)."""
    top = {v: k for k, v in _VISION_TOP.items()}
    block = {v: k for k, v in _VISION_BLOCK.items()}
    out = {"blip.visual_encoder." + _rename_vision(k, top, block, r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)",
                                                   "blocks"): v for k, v in vision.items()}
    out.update({"blip.text_encoder." + k: v for k, v in text.items()})
    out.update({"mlp.layers." + k: v for k, v in head.items()})
    return out


def blip_configs(vision: dict, med: dict):
    """(BlipVisionConfig, BlipTextConfig) for BLIP's ViT `vision` and the BERT `med` config (med_config.json)."""
    from transformers import BlipTextConfig, BlipVisionConfig

    vision_config = BlipVisionConfig(**vision, hidden_act="gelu", layer_norm_eps=1e-6)
    text_config = BlipTextConfig(
        vocab_size=med["vocab_size"], hidden_size=med["hidden_size"], intermediate_size=med["intermediate_size"],
        num_hidden_layers=med["num_hidden_layers"], num_attention_heads=med["num_attention_heads"],
        max_position_embeddings=med["max_position_embeddings"], hidden_act=med.get("hidden_act", "gelu"),
        layer_norm_eps=med.get("layer_norm_eps", 1e-12), pad_token_id=med.get("pad_token_id", 0),
        encoder_hidden_size=vision["hidden_size"],  # BLIP sets encoder_width to the ViT's width
        is_decoder=True,  # builds the cross-attention layers; the forward stays bidirectional (is_decoder=False)
        bos_token_id=None, sep_token_id=None)
    return vision_config, text_config


class ImageReward(Verifier):
    name = "imagereward"
    version = VERSION
    definition = DEFINITION

    def __init__(self, vision, text, head, tokenizer, model_id: str, revision: str | None, device: str,
                 dtype: torch.dtype):
        from transformers import CLIPImageProcessor

        self.vision, self.text, self.head, self.tokenizer = vision, text, head, tokenizer
        self.model_id, self.revision, self.device, self.dtype = model_id, revision, device, dtype
        size = vision.config.image_size
        self.processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                            image_mean=list(MEAN_OPENAI), image_std=list(STD_OPENAI))

    def pixels(self, images) -> torch.Tensor:
        return clip_pixels(images, self.processor, self.device).to(self.dtype)

    def forward(self, pixels: torch.Tensor, prompt: str) -> torch.Tensor:
        tokens = self.tokenizer(prompt, padding="max_length", truncation=True, max_length=MAX_LENGTH,
                                return_tensors="pt")
        n = pixels.shape[0]
        image_embeds = self.vision(pixel_values=pixels).last_hidden_state  # (N, 1 + patches, width)
        image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=self.device)
        out = self.text(input_ids=tokens["input_ids"].to(self.device).expand(n, -1),
                        attention_mask=tokens["attention_mask"].to(self.device).expand(n, -1),
                        encoder_hidden_states=image_embeds, encoder_attention_mask=image_mask)
        reward = self.head(out.last_hidden_state[:, 0, :].float()).squeeze(1)
        return (reward - MEAN) / STD


def checked_states(state: dict, vision_cfg: dict, med: dict) -> tuple:
    """(vision config, text config, vision state, text state, MLP state) from ImageReward's state dict.

    Raises ModelLoadError unless every parameter of the three parts is filled with its shape.
    """
    from transformers import BlipTextModel, BlipVisionModel

    vision_config, text_config = blip_configs(vision_cfg, med)
    vision_state, text_state, head_state, unused = from_image_reward(state)
    parts = {"vision": (vision_state, expected_shapes(BlipVisionModel, vision_config)),
             "text": (text_state, expected_shapes(BlipTextModel, text_config, add_pooling_layer=False)),
             "head": (head_state, {k: v.shape for k, v in mlp_head(text_config.hidden_size).state_dict().items()})}
    check_mapping("imagereward", {f"{p}.{k}": v for p, (got, _) in parts.items() for k, v in got.items()},
                  {f"{p}.{k}": v for p, (_, shapes) in parts.items() for k, v in shapes.items()}, unused)
    return vision_config, text_config, vision_state, text_state, head_state


def build(state: dict, vision_cfg: dict, med: dict, dtype: torch.dtype = torch.float32):
    """(BlipVisionModel, BlipTextModel, MLP) from ImageReward's state dict (see `checked_states`)."""
    from transformers import BlipTextModel, BlipVisionModel

    vision_config, text_config, vision_state, text_state, head_state = checked_states(state, vision_cfg, med)
    vision = BlipVisionModel.from_pretrained(None, config=vision_config, state_dict=vision_state, dtype=dtype)
    text = BlipTextModel.from_pretrained(None, config=text_config, state_dict=text_state, dtype=dtype,
                                         add_pooling_layer=False)
    head = mlp_head(text_config.hidden_size)
    head.load_state_dict({k: v.float() for k, v in head_state.items()})
    return vision.eval(), text.eval(), head


def load(source: str | None = None, device: str = "cpu", dtype: torch.dtype = torch.float32,
         model_id: str | None = None) -> ImageReward:
    """ImageReward from the hub (`source=None`) or from a folder with the same files plus its vision config."""
    from transformers import BertTokenizer

    folder = folder_or_none(source)
    needs = [f"{REPO} {CHECKPOINT} {MED_CONFIG}", f"{TOKENIZER} --include '*.json' '*.txt'"]
    if folder is not None:
        checkpoint, med_path, tokenizer_source = folder / CHECKPOINT, folder / MED_CONFIG, source
        vision_cfg = json.loads((folder / VISION_FILE).read_text())
    else:
        checkpoint = hub_file("imagereward", REPO, CHECKPOINT, needs)
        med_path = hub_file("imagereward", REPO, MED_CONFIG, needs)
        tokenizer_source, vision_cfg = TOKENIZER, BLIP_VIT_LARGE
    try:
        tokenizer = BertTokenizer.from_pretrained(tokenizer_source)
    except Exception as error:
        raise load_error("imagereward", needs, error) from error
    tokenizer.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})  # as BLIP does
    vision, text, head = build(read_checkpoint("imagereward", checkpoint), vision_cfg,
                               json.loads(med_path.read_text()), dtype)
    name = model_id or (source if folder is not None else f"{REPO}/{CHECKPOINT}")
    return ImageReward(vision.to(device), text.to(device), head.to(device), tokenizer, name,
                       revision_of(source or REPO), device, dtype)
