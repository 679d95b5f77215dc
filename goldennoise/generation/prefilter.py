"""Pre-filtering with exploration: make more candidates than shown, show the best and a few at random.

Candidates are ranked by CLIP score, by one of the campaign's verifiers
("verifier:<name>") or by a trained `SeedSelector`. Of the K
shown slots, K - E go to the top-ranked candidates (shown with probability 1)
and E "exploration" slots are filled uniformly at random from the rest, so every
candidate has a known probability of being shown (its propensity). Records keep
every candidate (shown or hidden) with its rank score and propensity, so the
analysis can undo the selection with inverse-propensity weights. The random
draw is seeded by the batch id: the choice can be re-made from the record.
The shown images are displayed in a random order, so position says nothing about rank.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from goldennoise.errors import UserError
from goldennoise.generation.batch import Batch
from goldennoise.generation.features import feature_matrix
from goldennoise.generation.latents import remake_noise

METHODS = ("clip", "selector")  # and "verifier:<name>"
SELECTOR_FILE = "selector.json"


@dataclass
class SeedSelector:
    """Logistic regression on standardized noise features; JSON-serializable."""

    feature_names: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    noise_shape: list[int]
    configuration: str | None = None  # the generation configuration it was trained on
    evaluation: dict | None = None  # held-out figures (see research/selector.py)
    recommended: bool = False  # True only when a held-out figure was significantly above chance

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Probability of golden for each row of `features` (in `feature_names` order)."""
        z = (features - np.array(self.mean)) / np.array(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.array(self.coef) + self.intercept)))

    def score_noises(self, noises: np.ndarray) -> np.ndarray:
        features, names = feature_matrix(noises)
        if names != self.feature_names:
            raise UserError("prefilter: this selector was trained on other noise features; retrain it on this "
                            "model's data.", "prefilter")
        return self.predict(features)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> "SeedSelector":
        return cls(**json.loads(Path(path).read_text()))


def selector_scores(selector: SeedSelector, noise_blocks: list[dict], seeds: list[int]) -> list[float]:
    """Probability of golden for each seed's noise, by the trained selector."""
    shape = noise_blocks[0]["shape"]
    if list(shape[1:]) != list(selector.noise_shape[1:]):
        raise UserError(f"prefilter: the seed selector was trained on noise {selector.noise_shape}, this model and "
                        f"size give {shape}: retrain it (goldennoise analyze) or pre-filter by CLIP.", "prefilter")
    noises = np.stack([remake_noise(s, b).numpy() for s, b in zip(seeds, noise_blocks)])
    return [float(p) for p in selector.score_noises(noises)]


def plan(scores: list[float], keep: int, explore: int, rng: random.Random) -> tuple[list[int], list[dict]]:
    """(indices shown, per-candidate {"slot", "propensity"}) for candidates with `scores`."""
    n = len(scores)
    if not 0 <= explore <= keep < n:
        raise UserError(f"prefilter: need 0 <= explore ({explore}) <= shown ({keep}) < candidates ({n}).", "prefilter")
    order = sorted(range(n), key=lambda i: (-scores[i], i))
    ranked, rest = order[:keep - explore], order[keep - explore:]
    explored = rng.sample(rest, explore)
    p_rest = explore / len(rest)
    info = [{"slot": "hidden", "propensity": p_rest} for _ in range(n)]
    for i in ranked:
        info[i] = {"slot": "ranked", "propensity": 1.0}
    for i in explored:
        info[i] = {"slot": "explore", "propensity": p_rest}
    shown = ranked + explored
    rng.shuffle(shown)  # display order carries no rank
    return shown, info


def choose(batch: Batch, keep: int, method: str, selector: SeedSelector | None, explore: int = 1) -> Batch:
    """The batch as shown: `keep` of its candidates (see module docstring), the rest recorded as hidden."""
    if method == "clip":
        if batch.clip_scores is None:
            raise UserError("prefilter: ranking by CLIP needs CLIP scores; turn CLIP scoring on.", "prefilter")
        scores = list(batch.clip_scores)
    elif method == "selector":
        if selector is None:
            raise UserError("prefilter: no seed selector trained yet; run `goldennoise analyze OUTPUTS` first.",
                            "prefilter")
        scores = selector_scores(selector, batch.noise, batch.seeds)
    elif method.startswith("verifier:") and method.split(":", 1)[1] in batch.scores:
        scores = list(batch.scores[method.split(":", 1)[1]])
    elif method.startswith("verifier:"):
        raise UserError(f"prefilter: ranking by {method} needs that verifier's scores; add it to scoring.verifiers.",
                        "prefilter")
    else:
        raise UserError(f"prefilter: unknown method {method!r}; choose one of {', '.join(METHODS)} or "
                        "verifier:<name>.", "prefilter")
    shown, info = plan(scores, keep, explore, random.Random(f"goldennoise-explore:{batch.batch_id}"))
    clip = batch.clip_scores
    hidden = [i for i in range(len(batch.seeds)) if i not in shown]
    return batch.select(
        shown, slots=[{**info[i], "rank_score": scores[i]} for i in shown],
        prefilter={"method": method, "candidates": len(batch.seeds), "shown": keep, "explore": explore,
                   "hidden": [{"seed": batch.seeds[i], "clip_score": None if clip is None else clip[i],
                               **({"scores": {n: v[i] for n, v in batch.scores.items()}} if batch.scores else {}),
                               "rank_score": scores[i], "image_path": batch.image_paths[i], "noise": batch.noise[i],
                               **info[i]} for i in hidden]},
    )
