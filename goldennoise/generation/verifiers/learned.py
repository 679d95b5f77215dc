"""A verifier learned from a campaign's own labels: a logistic head on CLIP's image and text embeddings.

`goldennoise train OUTPUTS --kind verifier --out v.safetensors` fits it on the live
judgements (research/train.py): for each judged image, the campaign model's CLIP gives
an image embedding i and a text embedding t (L2-normalised), and a logistic head on
[i, t, i * t] predicts "golden". The score is the head's logit. The checkpoint is one
safetensors file: the head's weights, with the CLIP id and the training card in its
metadata; a campaign uses it as the verifier `learned` with `scoring.learned_checkpoint`,
so it is recorded, pre-filters (`prefilter.method = "verifier:learned"`) and is compared
with people in the analysis like any other verifier.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from goldennoise.errors import UserError
from goldennoise.generation import scoring
from goldennoise.generation.verifiers.base import Verifier
from goldennoise.ids import file_sha256

VERSION = "1"
FORMAT = "goldennoise-learned-verifier-1"
DEFINITION = ("logit of P(golden) by a logistic head on CLIP's [image, text, image x text] embeddings, fitted on "
              "people's labels (goldennoise train --kind verifier)")


@torch.no_grad()
def features(scorer: scoring.ClipScorer, images, prompt: str) -> torch.Tensor:
    """[i, t, i * t] per image, float32 `(N, 3D)` on the CPU (i, t: CLIP's normalised image and text embeddings)."""
    output = scoring.clip_outputs(scorer, images, prompt)
    image, text = output.image_embeds.float().cpu(), output.text_embeds.float().cpu().expand(len(images), -1)
    return torch.cat([image, text, image * text], dim=1)


class Learned(Verifier):
    name = "learned"
    version = VERSION
    definition = DEFINITION

    def __init__(self, scorer: scoring.ClipScorer, head: torch.nn.Linear, sha256: str, card: dict):
        self.scorer, self.head, self.card = scorer, head, card
        self.model_id, self.revision = f"learned:{sha256[:16]}+{scorer.model_id}", sha256
        self.device, self.dtype = scorer.device, torch.float32

    def pixels(self, images):
        return images  # `features` preprocesses PIL images and tensors itself

    @torch.no_grad()
    def forward(self, images, prompt: str) -> torch.Tensor:
        return self.head(features(self.scorer, images, prompt)).squeeze(1)


def save(head: torch.nn.Linear, path: str | Path, clip_id: str, card: dict) -> str:
    """Write the head (safetensors; the CLIP id and card in its metadata); return the file's sha256."""
    from safetensors.torch import save_file

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(path),
              metadata={"format": FORMAT, "clip": clip_id, "card": json.dumps(card, sort_keys=True)})
    return file_sha256(path)


def load(source: str | None = None, device: str = "cpu", dtype: torch.dtype | None = None,
         model_id: str | None = None) -> Learned:
    """The verifier of checkpoint `source` (a `goldennoise train --kind verifier` file) with its CLIP, float32."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not source or not Path(source).is_file():
        raise UserError("scoring.learned_checkpoint: the learned verifier needs its checkpoint file (train one with "
                        "`goldennoise train OUTPUTS --kind verifier --out FILE`).", "scoring.learned_checkpoint")
    try:
        with safe_open(str(source), "pt") as handle:
            metadata = handle.metadata() or {}
        if metadata.get("format") != FORMAT:
            raise ValueError("not a GoldenNoise learned verifier")
        weights = load_file(str(source))
        head = torch.nn.Linear(weights["weight"].shape[1], 1)
        head.load_state_dict(weights)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise UserError(f"scoring.learned_checkpoint: {Path(source).name} is not a learned verifier ({error}).",
                        "scoring.learned_checkpoint") from None
    scorer = scoring.load_clip(metadata["clip"], device=device)  # ModelLoadError names what is missing
    return Learned(scorer, head.eval().to("cpu"), file_sha256(source), json.loads(metadata.get("card") or "{}"))
