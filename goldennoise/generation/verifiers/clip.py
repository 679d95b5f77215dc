"""Today's CLIP score as one of the verifiers: `scoring.py` does the work, this gives it the shared interface.

The score is torchmetrics' CLIP score per image, `100 * max(cos, 0)`; the model is
the campaign's CLIP (openai/clip-vit-large-patch14 unless a model spec names
another), loaded in float32 as `scoring.load_clip` always has, so existing records'
CLIP scores and this verifier's agree exactly.
"""

from __future__ import annotations

import torch

from goldennoise.errors import ModelLoadError
from goldennoise.generation import scoring
from goldennoise.generation.verifiers.base import Verifier, load_error

DEFAULT = "openai/clip-vit-large-patch14"  # the torchmetrics default, as models.ModelSpec.clip
VERSION = "1"
DEFINITION = "100 * max(cos(image, prompt), 0): torchmetrics' CLIP score, per image"


class ClipVerifier(Verifier):
    name = "clip"
    version = VERSION
    definition = DEFINITION

    def __init__(self, scorer: scoring.ClipScorer, model_id: str):
        self.scorer, self.model_id, self.revision = scorer, model_id, scorer.revision
        self.device, self.dtype = scorer.device, scorer.model.dtype

    def pixels(self, images):
        return images  # scoring.clip_cosines preprocesses PIL and tensors itself

    def forward(self, images, prompt: str) -> torch.Tensor:
        return torch.tensor(scoring.clip_scores(self.scorer, images, prompt))


def load(source: str | None = None, device: str = "cpu", dtype: torch.dtype | None = None,
         model_id: str | None = None) -> ClipVerifier:
    """CLIP `source` (a hub id, a folder, or "tiny-clip"; default openai/clip-vit-large-patch14), float32."""
    source = source or DEFAULT
    try:
        scorer = scoring.load_clip(source, device=device)
    except ModelLoadError as error:
        raise load_error("clip", [source], error.__cause__ or error) from error
    return ClipVerifier(scorer, model_id or source)
