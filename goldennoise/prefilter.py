"""Pre-filtering (active learning): generate more candidates than shown, show the top-K.

Candidates are ranked by CLIP score or by a trained seed selector (its held-out
AUC is in the analysis report). The record keeps the hidden candidates too (seed,
scores, image, noise) and says how the shown ones were chosen, so the selection
bias this introduces can be measured later.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from goldennoise.engine import Batch
from goldennoise.noise import remake_noise
from goldennoise.selector import SeedSelector

METHODS = ("clip", "selector")


def selector_scores(selector: SeedSelector, noise_blocks: list[dict], seeds: list[int]) -> list[float]:
    """Probability of golden for each seed's noise, by the trained selector."""
    shape = noise_blocks[0]["shape"]
    if list(shape[1:]) != list(selector.noise_shape[1:]):
        raise ValueError(f"The seed selector was trained on noise {selector.noise_shape}, this model and size give {shape}: "
                         "retrain it (python -m goldennoise.analysis) or pre-filter by CLIP.")
    noises = np.stack([remake_noise(s, b).numpy() for s, b in zip(seeds, noise_blocks)])
    return [float(p) for p in selector.score_noises(noises)]


def choose(batch: Batch, keep: int, method: str, selector: SeedSelector | None) -> Batch:
    """The `keep` best candidates of `batch`, best first; the rest recorded as hidden."""
    if method == "clip":
        if batch.clip_scores is None:
            raise ValueError("Pre-filtering by CLIP needs CLIP scores: turn CLIP scoring on.")
        scores = batch.clip_scores
    elif method == "selector":
        if selector is None:
            raise ValueError("No seed selector trained yet: run python -m goldennoise.analysis OUTPUTS first.")
        scores = selector_scores(selector, batch.noise, batch.seeds)
    else:
        raise ValueError(f"Unknown pre-filter {method!r}; choose one of {', '.join(METHODS)}.")
    order = sorted(range(len(batch.seeds)), key=lambda i: -scores[i])
    shown, hidden = order[:keep], order[keep:]
    clip = batch.clip_scores

    def pick(indices, values):
        return [values[i] for i in indices]

    return replace(
        batch,
        seeds=pick(shown, batch.seeds), image_paths=pick(shown, batch.image_paths),
        clip_scores=None if clip is None else pick(shown, clip), noise=pick(shown, batch.noise),
        prefilter={"method": method, "candidates": len(batch.seeds), "shown": len(shown),
                   "scores": {str(batch.seeds[i]): scores[i] for i in order},
                   "hidden": [{"seed": batch.seeds[i], "clip_score": None if clip is None else clip[i],
                               "rank_score": scores[i], "image_path": batch.image_paths[i], "noise": batch.noise[i]}
                              for i in hidden]},
    )
