"""HPSv2.1 (Wu et al. 2023): an open_clip ViT-H-14 fine-tuned on human preference pairs.

The published checkpoint (`xswu/HPSv2`, `HPS_v2.1_compressed.pt`, `{"state_dict": ...}`
in open_clip's layout) is mapped onto a transformers `CLIPModel` of the same
architecture (`openclip.py`); the tokenizer is the one of the CLIP it was tuned from.
Preprocessing is HPSv2's `preprocess_val` (open_clip with `light_augmentation=True`):
to tensor, resize the *longest* side to 224 (bicubic; antialiased, as torchvision >= 0.17
does on tensors), pad to a square with black, normalise with openai/CLIP's mean and std.
The score is what `hpsv2.score` returns: the cosine of the L2-normalised image and text
features, not multiplied by 100 (papers often print it x100, e.g. 0.285 as 28.5).
"""

from __future__ import annotations

import json

import torch

from goldennoise.generation.verifiers import openclip
from goldennoise.generation.verifiers.base import (MEAN_OPENAI, STD_OPENAI, Verifier, as_tensor, check_mapping,
                                                   expected_shapes, folder_or_none, hub_file, load_error,
                                                   normalize, read_checkpoint, revision_of)

REPO, CHECKPOINT = "xswu/HPSv2", "HPS_v2.1_compressed.pt"
TOKENIZER = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
CONFIG_FILE = "open_clip_config.json"  # a stand-in folder's architecture; the real one is VIT_H_14
# open_clip's model_configs/ViT-H-14.json, the architecture HPSv2 loads.
VIT_H_14 = {"embed_dim": 1024,
            "vision_cfg": {"image_size": 224, "layers": 32, "width": 1280, "head_width": 80, "patch_size": 14},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 1024, "heads": 16, "layers": 24}}
VERSION = "1"
DEFINITION = "cos(image, prompt) of HPSv2.1's features, as hpsv2.score returns it (not x100)"


def fit_and_pad(x: torch.Tensor, size: int) -> torch.Tensor:
    """open_clip's `ResizeMaxSize`: longest side to `size` (bicubic, antialiased), centred, padded with 0."""
    h, w = x.shape[-2:]
    scale = size / max(h, w)
    new_h, new_w = round(h * scale), round(w * scale)
    if (new_h, new_w) != (h, w):
        x = torch.nn.functional.interpolate(x, size=(new_h, new_w), mode="bicubic", antialias=True,
                                            align_corners=False)
    pad_h, pad_w = size - new_h, size - new_w
    return torch.nn.functional.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=0.0)


class HPSv2(Verifier):
    name = "hpsv2"
    version = VERSION
    definition = DEFINITION

    def __init__(self, model, tokenizer, model_id: str, revision: str | None, device: str, dtype: torch.dtype):
        self.model, self.tokenizer = model, tokenizer
        self.model_id, self.revision, self.device, self.dtype = model_id, revision, device, dtype
        self.image_size = model.config.vision_config.image_size

    def pixels(self, images) -> torch.Tensor:
        # PIL and tensors alike: the original converts to a tensor first, then resizes the tensor.
        return normalize(fit_and_pad(as_tensor(images, self.device), self.image_size), MEAN_OPENAI,
                         STD_OPENAI).to(self.dtype)

    def forward(self, pixels: torch.Tensor, prompt: str) -> torch.Tensor:
        tokens = self.tokenizer([prompt], padding="max_length", max_length=77, truncation=True, return_tensors="pt")
        text = self.model.get_text_features(input_ids=tokens["input_ids"].to(self.device)).pooler_output.float()
        image = self.model.get_image_features(pixel_values=pixels).pooler_output.float()
        text = text / text.norm(dim=-1, keepdim=True)
        image = image / image.norm(dim=-1, keepdim=True)
        return (image @ text.T).squeeze(1)


def checked_state(checkpoint: dict, config: dict, tokenizer) -> tuple:
    """(CLIPConfig, CLIPModel state dict) from an HPSv2 checkpoint and its open_clip config.

    Raises ModelLoadError unless every parameter is filled with its shape.
    """
    from transformers import CLIPModel

    raw = checkpoint.get("state_dict", checkpoint)
    state, unused = openclip.from_open_clip({k.removeprefix("module."): v for k, v in raw.items()})  # DDP prefix
    clip_config = openclip.clip_config(config, tokenizer.eos_token_id, tokenizer.bos_token_id, tokenizer.pad_token_id)
    check_mapping("hpsv2", state, expected_shapes(CLIPModel, clip_config), unused)
    return clip_config, state


def load(source: str | None = None, device: str = "cpu", dtype: torch.dtype = torch.float32,
         model_id: str | None = None) -> HPSv2:
    """HPSv2.1 from the hub (`source=None`) or from a folder with the same checkpoint file, its config and tokenizer."""
    from transformers import CLIPModel, CLIPTokenizer

    folder = folder_or_none(source)
    needs = [f"{REPO} {CHECKPOINT}", f"{TOKENIZER} --include '*.json' '*.txt'"]
    if folder is not None:
        checkpoint, tokenizer_source = folder / CHECKPOINT, source
        config = json.loads((folder / CONFIG_FILE).read_text())
    else:
        checkpoint, config, tokenizer_source = hub_file("hpsv2", REPO, CHECKPOINT, needs), VIT_H_14, TOKENIZER
    try:
        tokenizer = CLIPTokenizer.from_pretrained(tokenizer_source)
    except Exception as error:
        raise load_error("hpsv2", needs, error) from error
    clip_config, state = checked_state(read_checkpoint("hpsv2", checkpoint), config, tokenizer)
    model = CLIPModel.from_pretrained(None, config=clip_config, state_dict=state, dtype=dtype).eval().to(device)
    name = model_id or (source if folder is not None else f"{REPO}/{CHECKPOINT}")
    return HPSv2(model, tokenizer, name, revision_of(source or REPO), device, dtype)
