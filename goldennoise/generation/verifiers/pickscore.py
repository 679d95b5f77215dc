"""PickScore (Kirstain et al. 2023): a CLIP ViT-H/14 fine-tuned on Pick-a-Pic preferences.

It is a plain transformers `CLIPModel` (`yuvalkirstain/PickScore_v1`) with the
processor of the CLIP it was tuned from (`laion/CLIP-ViT-H-14-laion2B-s32B-b79K`),
scored as the PickScore README does: `logit_scale.exp() * cos(image, prompt)`, where
the learned scale is about 100, so scores sit around 18-23. Unlike the CLIP score,
nothing is clamped at 0.
"""

from __future__ import annotations

import torch

from goldennoise.generation.verifiers.base import Verifier, clip_pixels, folder_or_none, load_error, revision_of

MODEL = "yuvalkirstain/PickScore_v1"
PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
VERSION = "1"
DEFINITION = "logit_scale.exp() * cos(image, prompt), the PickScore README's score (about 100 x cosine)"


class PickScore(Verifier):
    name = "pickscore"
    version = VERSION
    definition = DEFINITION

    def __init__(self, model, processor, model_id: str, revision: str | None, device: str, dtype: torch.dtype):
        self.model, self.processor = model, processor
        self.model_id, self.revision, self.device, self.dtype = model_id, revision, device, dtype

    def pixels(self, images) -> torch.Tensor:
        return clip_pixels(images, self.processor.image_processor, self.device).to(self.dtype)

    def text_embeds(self, prompt: str) -> torch.Tensor:
        inputs = self.processor(text=[prompt], padding=True, truncation=True, max_length=77, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        text = self.model.get_text_features(**inputs).pooler_output.float()  # (1, D), projected
        return text / text.norm(dim=-1, keepdim=True)

    def forward(self, pixels: torch.Tensor, prompt: str) -> torch.Tensor:
        image = self.model.get_image_features(pixel_values=pixels).pooler_output.float()  # (N, D)
        image = image / image.norm(dim=-1, keepdim=True)
        return self.model.logit_scale.float().exp() * (image @ self.text_embeds(prompt).T).squeeze(1)


def load(source: str | None = None, device: str = "cpu", dtype: torch.dtype = torch.float32,
         model_id: str | None = None) -> PickScore:
    """PickScore from the hub (`source=None`) or from a folder holding model and processor together."""
    from transformers import CLIPModel, CLIPProcessor

    model_source, processor_source = (source, source) if folder_or_none(source) else (source or MODEL, PROCESSOR)
    try:
        model = CLIPModel.from_pretrained(model_source, dtype=dtype).eval().to(device)
        processor = CLIPProcessor.from_pretrained(processor_source)
    except Exception as error:  # hub, file and config errors all mean "cannot load these weights"
        needs = [model_source, f"{processor_source} --include '*.json' '*.txt'"]
        raise load_error("pickscore", needs, error) from error
    return PickScore(model, processor, model_id or model_source, revision_of(model_source), device, dtype)
