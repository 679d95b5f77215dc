"""A model whose images mean something, offline: handwritten digits, and a judge that knows the truth.

Every other offline model here has random weights, so nothing could show that an
analysis or a noise optimisation works. This package is the project's own small
model, trained here on scikit-learn's 1,797 8x8 digits and shipped as package data:

    recipe.py    the UNet's config, the training recipe, the null class for guidance
    data.py      the real digits and the one image convention (8x8 grey, 0..16, like sklearn)
    prompts.py   "a handwritten 7" / "seven" / "the digit 7" -> 7
    pipeline.py  DigitsPipeline: a diffusers pipeline (unet + flow-matching scheduler)
    train.py     `python -m goldennoise.sandbox.train --out DIR` (1,900 steps: ~6 min idle, 9-11 min on busy cores)
    judge.py     the automatic annotator: an RBF SVC on the real digits; golden = p(asked digit) >= 0.8
    twin.py      a differentiable torch classifier that agrees with the judge, for gradient methods
    figures.py   recognisable rate, overdispersion of per-seed passes, split-half seed correlation

The package imports nothing from the rest of GoldenNoise except `errors`, so
`generation.models` can load the pipeline without a circle; callers make the
seeds' noise with `generation.latents` (the one place noise is made).
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent / "weights" / "digits"


def weights_path() -> Path:
    """The folder of the shipped, trained DigitsPipeline (model_index.json, unet/, scheduler/, README.md)."""
    return WEIGHTS
