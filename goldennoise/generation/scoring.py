"""CLIP score per image: `100 * max(cos(image, text), 0)`, as torchmetrics defines it.

`load_clip` returns the model *with* its processor so they cannot be mismatched.
The prompt is encoded once per batch; each image gets its own score (torchmetrics'
functional form clamps the batch mean instead, which is no use for ranking seeds).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from goldennoise.errors import ModelLoadError
from goldennoise.generation import hub, tiny


@dataclass
class ClipScorer:
    model: object
    processor: object
    model_id: str
    revision: str | None
    device: str

    def info(self) -> dict:
        return {"id": self.model_id, "revision": self.revision}


def load_clip(name: str, device: str | None = None) -> ClipScorer:
    """Load CLIP `name` (a hub id, a folder, or "tiny-clip") with its processor."""
    from transformers import CLIPModel, CLIPProcessor

    hub.quiet_loading()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    source = str(tiny.tiny_model_path(name)) if name == tiny.TINY_CLIP else name
    try:
        model = CLIPModel.from_pretrained(source).eval().to(device)
        processor = CLIPProcessor.from_pretrained(source)
    except Exception as error:  # hub, file and config errors all mean "cannot load this"
        raise ModelLoadError(hub.explain_load_error(name, error) + " Turn CLIP scoring off or pick another CLIP.",
                             "clip") from error
    revision = hub.folder_fingerprint(Path(source)) if Path(source).is_dir() else hub.hub_revision(source)
    return ClipScorer(model, processor, name, revision, device)


def pixel_values(scorer: ClipScorer, images: torch.Tensor) -> torch.Tensor:
    """CLIP preprocessing on tensors `(N, 3, H, W)` in [0, 1], on their device (no PIL round-trip).

    Resize the short side (bicubic, antialiased), centre-crop, normalise: the
    processor's steps, so scores match the PIL path to a fraction of a point.
    """
    processor = scorer.processor.image_processor
    short = processor.size["shortest_edge"]
    crop_h, crop_w = processor.crop_size["height"], processor.crop_size["width"]
    x = images.to(scorer.device, torch.float32)
    h, w = x.shape[-2:]
    scale = short / min(h, w)
    x = torch.nn.functional.interpolate(x, size=(round(h * scale), round(w * scale)), mode="bicubic",
                                        antialias=True, align_corners=False)
    top, left = (x.shape[-2] - crop_h) // 2, (x.shape[-1] - crop_w) // 2
    x = x[..., top:top + crop_h, left:left + crop_w]
    mean = torch.tensor(processor.image_mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def clip_outputs(scorer: ClipScorer, images, prompt: str):
    """CLIP's output for `images` and `prompt`: `image_embeds` (N, D) and `text_embeds` (1, D), L2-normalised.

    `images`: a list of PIL images, or a tensor `(N, 3, H, W)` in [0, 1] (preprocessed on its device).
    """
    if isinstance(images, torch.Tensor):
        inputs = scorer.processor(text=[prompt], return_tensors="pt", padding=True, truncation=True)
        inputs = {key: value.to(scorer.device) for key, value in inputs.items()}
        inputs["pixel_values"] = pixel_values(scorer, images)
    else:
        inputs = scorer.processor(text=[prompt], images=images, return_tensors="pt", padding=True, truncation=True)
        inputs = {key: value.to(scorer.device) for key, value in inputs.items()}
    return scorer.model(**inputs)


def clip_cosines(scorer: ClipScorer, images, prompt: str) -> torch.Tensor:
    """Cosine similarity of each image with `prompt`, shape `(N,)` (`images` as `clip_outputs` takes them)."""
    output = clip_outputs(scorer, images, prompt)
    return (output.image_embeds @ output.text_embeds.T).squeeze(1).float().cpu()


def clip_scores(scorer: ClipScorer, images, prompt: str) -> list[float]:
    """CLIP score of each image for `prompt`: `100 * max(cos, 0)`."""
    return [float(s) for s in 100 * clip_cosines(scorer, images, prompt).clamp(min=0)]
