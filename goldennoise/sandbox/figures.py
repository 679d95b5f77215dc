"""Do seeds matter, and how hard is the task? The figures, from a pass matrix of seeds x digits.

`judge_seeds` runs the pipeline once per (seed, digit) from the seed's noise and
asks the judge p(requested digit); `passes = p >= THRESHOLD` is the (S, 10) bool
matrix everything else reads:
- recognisable rate: the share of passes (guidance w is the difficulty knob);
- overdispersion: with k_s the digits seed s passes and p_d the share of seeds
  passing digit d, Var_s(k_s) (population variance, ddof 0) divided by
  sum_d p_d (1 - p_d), the variance k_s would have if every seed passed digit d
  independently with probability p_d (class-specific binomials, same plug-in
  estimates). ~1 when seeds do not matter; > 1 when some seeds are good for
  every digit;
- split-half: Spearman correlation, over seeds, of the pass rate on digits 0-4
  with the pass rate on digits 5-9 (a seed's quality carries across prompts);
- top-k transfer: the seeds ranked best on digits 0-4, judged on digits 5-9.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from goldennoise.sandbox import data, judge
from goldennoise.sandbox.prompts import prompt_of

DIGITS = tuple(range(10))
CHUNK = 500  # images per pipeline call (x2 with guidance): bounded memory at any number of seeds


def judge_seeds(pipe, noises: torch.Tensor, guidance_scale: float, num_inference_steps: int = 20) -> np.ndarray:
    """p(requested digit) for each seed and digit, (S, 10), sampling from `noises` (S, C, 8, 8) at 8x8."""
    seeds = len(noises)
    latents = noises.repeat_interleave(len(DIGITS), dim=0)  # (seed, digit) rows, seed-major
    prompts = [prompt_of(d) for d in DIGITS] * seeds
    images = []
    for start in range(0, len(prompts), CHUNK):
        out = pipe(prompts[start:start + CHUNK], latents=latents[start:start + CHUNK],
                   num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, output_type="pt")
        images.append(out.images.cpu())
    return judge.p_requested(torch.cat(images), list(DIGITS) * seeds).reshape(seeds, len(DIGITS))


def sample(pipe, noises: torch.Tensor, digits: list[int], guidances: list[float]) -> torch.Tensor:
    """Images (N, 1, 8, 8) in [0, 1] from `noises` (N, C, 8, 8), one step per entry of `guidances` at that guidance.

    The pipeline's own sampler written out, so a method can change the guidance of one
    step (the first-step boost that re-denoise is compared with); with a constant
    schedule it equals `pipe(..., output_type="pt")` (tested).
    """
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    out = []
    for start in range(0, len(noises), CHUNK):
        x = noises[start:start + CHUNK].to(pipe.unet.device, pipe.unet.dtype)
        labels = torch.tensor(digits[start:start + CHUNK], device=pipe.unet.device)
        scheduler.set_timesteps(len(guidances))
        with torch.no_grad():
            for t, w in zip(scheduler.timesteps, guidances):
                x = scheduler.step(pipe.velocity(x, t, labels, float(w)), t, x).prev_sample
        out.append(data.to_unit(x.float()).cpu())
    return torch.cat(out)


def judge_raw_noise(noises: torch.Tensor) -> np.ndarray:
    """p(requested digit) for the noise itself shown as an image (the control), (S, 10)."""
    return judge.probabilities(data.to_grid(data.to_unit(noises.float())))  # every digit asked of one image


def recognisable_rate(passes: np.ndarray) -> float:
    """Share of (seed, digit) samples that pass."""
    return float(np.mean(passes))


def overdispersion(passes: np.ndarray) -> float:
    """Var_s(k_s) / sum_d p_d (1 - p_d) (see the module docstring); NaN when no digit varies."""
    passes = np.asarray(passes, dtype=np.float64)
    counts = passes.sum(axis=1)
    p = passes.mean(axis=0)
    expected = float(np.sum(p * (1 - p)))
    return float(np.var(counts) / expected) if expected > 0 else float("nan")


def split_half(passes: np.ndarray) -> float:
    """Spearman rank correlation over seeds of pass rates on digits 0-4 vs 5-9; NaN if either is constant."""
    from scipy.stats import spearmanr  # scipy comes with scikit-learn (the `analysis` extra)

    first, second = np.asarray(passes[:, :5], float).mean(1), np.asarray(passes[:, 5:], float).mean(1)
    if np.ptp(first) == 0 or np.ptp(second) == 0:
        return float("nan")
    return float(spearmanr(first, second).statistic)


def top_transfer(passes: np.ndarray, k: int = 20) -> float:
    """Pass rate on digits 5-9 of the k seeds with the highest pass rate on digits 0-4 (stable ties: lower index)."""
    order = np.argsort(-np.asarray(passes[:, :5], float).mean(1), kind="stable")
    return float(np.mean(passes[order[:k], 5:]))


@dataclass(frozen=True)
class Figures:
    """The headline figures of one pass matrix."""

    seeds: int
    rate: float
    overdispersion: float
    split_half: float
    top20_on_5_9: float
    all_on_5_9: float

    @classmethod
    def of(cls, passes: np.ndarray) -> Figures:
        return cls(len(passes), recognisable_rate(passes), overdispersion(passes), split_half(passes),
                   top_transfer(passes, min(20, len(passes))), float(np.mean(passes[:, 5:])))

    def to_dict(self) -> dict:
        return asdict(self)
