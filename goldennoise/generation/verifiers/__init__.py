"""Automatic verifiers beside CLIP: `load(name)` returns a scorer *with* its preprocessing.

    from goldennoise.generation import verifiers
    verifiers.available()                    # ['aesthetic', 'clip', 'digits', 'hpsv2', 'imagereward', 'learned', ...]
    scorer = verifiers.load("pickscore")     # published weights, from the hub cache, on the GPU if there is one
    scorer = verifiers.load("tiny-hpsv2")    # offline stand-in: same architecture and loader, random weights
    scorer.score(images, prompt)             # -> list[float], one per image (PIL list or (N, 3, H, W) in [0, 1])
    scorer.info()                            # -> {"name", "id", "revision", "version", "dtype", "score"} for records

| name        | weights                                              | score                                       |
|-------------|------------------------------------------------------|---------------------------------------------|
| clip        | openai/clip-vit-large-patch14 (or the model's CLIP)  | 100 * max(cos, 0) (torchmetrics)            |
| pickscore   | yuvalkirstain/PickScore_v1 + laion ViT-H-14 processor | logit_scale.exp() * cos (about 100 x cos)   |
| hpsv2       | xswu/HPSv2 HPS_v2.1_compressed.pt (open_clip ViT-H-14) | cos (not x100)                            |
| imagereward | THUDM/ImageReward ImageReward.pt + med_config.json   | (MLP(BLIP [CLS]) - 0.16717) / 1.03334        |
| aesthetic   | openai/clip-vit-large-patch14 + LAION's linear MLP   | MLP(normalised ViT-L/14 image embedding)    |
| digits      | none: fitted at load on scikit-learn's digits         | log p(prompt's digit), the sandbox's prompts |
| learned     | a `goldennoise train --kind verifier` checkpoint (`source`) + its CLIP | logit of P(golden) from people's labels |

Dtypes: towers in float16 on CUDA and float32 on the CPU unless `dtype` is given;
heads in float32; CLIP stays float32 everywhere (as `scoring.load_clip`). No extra
package is needed: every tower is a transformers class, the open_clip and BLIP
checkpoints are mapped onto them (`openclip.py`, `imagereward.py`).
"""

from __future__ import annotations

from importlib import import_module

import torch

from goldennoise.errors import UserError
from goldennoise.generation import hub
from goldennoise.generation.verifiers.base import Verifier, default_device, default_dtype
from goldennoise.generation.verifiers.standins import STAND_INS, stand_in_path

NAMES = ("clip", "pickscore", "hpsv2", "imagereward", "aesthetic", "digits", "learned")
__all__ = ["NAMES", "STAND_INS", "Verifier", "available", "load", "score_column"]


def available(stand_ins: bool = False) -> list[str]:
    """The verifier names `load` accepts (and the offline stand-ins' names with `stand_ins=True`)."""
    return sorted(NAMES) + (sorted(STAND_INS) if stand_ins else [])


def load(name: str, device: str | None = None, dtype: torch.dtype | str | None = None,
         source: str | None = None) -> Verifier:
    """Load verifier `name` ("pickscore", ...) or its stand-in ("tiny-pickscore", ...) on `device`.

    `source`: other weights for the same verifier, a hub id or a folder in the loader's layout
    (for "clip", the CLIP to use). Raises UserError for an unknown name (listing the valid ones)
    and ModelLoadError when weights cannot be had (saying which, and what fixes it).
    """
    if name in STAND_INS:
        verifier, source, model_id = STAND_INS[name], str(stand_in_path(name)), name
        if verifier == "clip":
            source = name  # scoring.load_clip resolves "tiny-clip" itself
    elif name in NAMES:
        verifier, model_id = name, None
    else:
        raise UserError(f"verifiers: unknown verifier {name!r}; choose from {', '.join(available())} "
                        f"(offline stand-ins: {', '.join(sorted(STAND_INS))}).", "verifiers")
    device = default_device(device)
    module = import_module(f"goldennoise.generation.verifiers.{verifier}")

    hub.quiet_loading()
    return module.load(source, device=device, dtype=default_dtype(device, dtype), model_id=model_id)


def score_column(name: str) -> str:
    """The analysis tables' column for verifier `name`: `clip_score` for CLIP (as recorded today), else
    `score_<name>`; the pair table has `left_<column>` and `right_<column>`."""
    return "clip_score" if name == "clip" else f"score_{name}"
