"""Offline stand-ins for the verifiers: the real architectures from small configs, random weights.

Like `tiny-clip` (see `generation/tiny.py`), each is built once under a fixed seed
into the cache folder, *in the published file layout* (an open_clip-layout
`HPS_v2.1_compressed.pt`, an `ImageReward.pt` with BLIP's key names and its unused
ITC projections, the aesthetic MLP's `.pth`), and loaded by the same `load` as the
real weights, so the key mappings and checks run in every test. Scores are
meaningless; shapes, dtypes, batching and preprocessing are exercised for real.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from goldennoise.generation import tiny
from goldennoise.generation.verifiers import aesthetic, hpsv2, imagereward, openclip
from goldennoise.generation.verifiers.base import mlp_head

STAND_INS = {"tiny-clip": "clip", "tiny-pickscore": "pickscore", "tiny-hpsv2": "hpsv2",
             "tiny-imagereward": "imagereward", "tiny-aesthetic": "aesthetic"}
VERSION = "1"  # bump when a config below changes, so stale caches are rebuilt
_SEED = 23
_VISION = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=2)
TINY_OPEN_CLIP = {"embed_dim": 16,
                  "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
                  "text_cfg": {"context_length": 77, "vocab_size": 1000, "width": 32, "heads": 2, "layers": 2}}


def _image_processor(size: int = 32):
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def _save_pickscore(folder: Path) -> None:
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    torch.manual_seed(_SEED)
    model = CLIPModel(CLIPConfig(text_config=tiny._CLIP_TEXT, vision_config=_VISION, projection_dim=16)).eval()
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=_image_processor(), tokenizer=tiny._clip_tokenizer()).save_pretrained(folder)


def _save_hpsv2(folder: Path) -> None:
    from transformers import CLIPModel


    tokenizer = tiny._clip_tokenizer()
    config = openclip.clip_config(TINY_OPEN_CLIP, tokenizer.eos_token_id, tokenizer.bos_token_id,
                                  tokenizer.pad_token_id)
    torch.manual_seed(_SEED)
    state = openclip.to_open_clip(CLIPModel(config).state_dict())
    torch.save({"epoch": 1, "name": "tiny-hpsv2", "state_dict": state}, folder / hpsv2.CHECKPOINT)
    (folder / hpsv2.CONFIG_FILE).write_text(json.dumps(TINY_OPEN_CLIP, indent=1))
    tokenizer.save_pretrained(folder)


def _bert_tokenizer():
    from transformers import BertTokenizer

    # WordPiece over lowercase letters, digits and punctuation: tokenizes any prompt without a download.
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + ["##" + c for c in chars]
    return BertTokenizer(vocab={word: i for i, word in enumerate(vocab)})


def _save_imagereward(folder: Path) -> None:
    from transformers import BlipTextModel, BlipVisionModel


    tokenizer = _bert_tokenizer()
    med = {"architectures": ["BertModel"], "hidden_act": "gelu", "hidden_size": 32, "intermediate_size": 64,
           "layer_norm_eps": 1e-12, "max_position_embeddings": 64, "model_type": "bert", "num_attention_heads": 2,
           "num_hidden_layers": 2, "pad_token_id": 0, "type_vocab_size": 2,
           "vocab_size": len(tokenizer) + 2,  # + BLIP's [DEC] and [ENC], as 30522 + 2 in the real config
           "encoder_width": 32, "add_cross_attention": True}
    # Wider inits than BLIP's defaults (vision std 1e-10, text 0.02), so tiny rewards differ between images.
    vision_config, text_config = imagereward.blip_configs({**_VISION, "initializer_range": 0.02}, med)
    text_config.initializer_range = 0.3
    torch.manual_seed(_SEED)
    vision, text = BlipVisionModel(vision_config).eval(), BlipTextModel(text_config, add_pooling_layer=False).eval()
    head = mlp_head(32)  # PyTorch's default init: ImageReward's (std 1/769) would make every tiny reward equal
    state = imagereward.to_image_reward(vision.state_dict(), text.state_dict(), head.state_dict())
    # What the published file also holds and scoring ignores: BLIP's ITC projections and BERT's position ids.
    state.update({"blip.vision_proj.weight": torch.randn(16, 32), "blip.vision_proj.bias": torch.zeros(16),
                  "blip.text_proj.weight": torch.randn(16, 32), "blip.text_proj.bias": torch.zeros(16),
                  "blip.text_encoder.embeddings.position_ids": torch.arange(64).expand(1, -1)})
    torch.save(state, folder / imagereward.CHECKPOINT)
    (folder / imagereward.MED_CONFIG).write_text(json.dumps(med, indent=1))
    (folder / imagereward.VISION_FILE).write_text(json.dumps(_VISION, indent=1))
    tokenizer.save_pretrained(folder)


def _save_aesthetic(folder: Path) -> None:
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor


    # A whole CLIPModel, as openai/clip-vit-large-patch14 is: the loader takes its vision tower.
    torch.manual_seed(_SEED + 1)
    CLIPModel(CLIPConfig(text_config=tiny._CLIP_TEXT, vision_config=_VISION, projection_dim=16)).save_pretrained(folder)
    CLIPProcessor(image_processor=_image_processor(), tokenizer=tiny._clip_tokenizer()).save_pretrained(folder)
    torch.save({f"layers.{k}": v for k, v in mlp_head(16).state_dict().items()}, folder / aesthetic.HEAD_FILE)


_BUILDERS = {"tiny-pickscore": _save_pickscore, "tiny-hpsv2": _save_hpsv2, "tiny-imagereward": _save_imagereward,
             "tiny-aesthetic": _save_aesthetic}


def stand_in_path(name: str) -> Path:
    """The folder of stand-in `name` ("tiny-pickscore", ...), built and cached on first use."""
    if name == tiny.TINY_CLIP:
        return tiny.tiny_model_path(name)
    if name not in _BUILDERS:
        raise KeyError(f"Unknown stand-in {name!r}; choose one of {sorted(STAND_INS)}.")
    return tiny.cached_folder(f"{name}-v{VERSION}", _BUILDERS[name])
