"""A differentiable twin of the judge: a small torch classifier on 8x8 digits, for gradient-based methods.

The SVC judge has no gradients; methods that optimise the noise by backpropagating
through the sampler need a classifier that does. The twin takes what the pipeline
returns with output_type="pt", (N, C, H, W) in [0, 1] with H, W multiples of 8, and
box-averages it to the judge's 8x8 grid inside the graph (the same convention as
`data.to_grid`). An MLP 64-128-128-10 trained on the judge's train split, seeded,
full batch, in about a second. Its parameters are frozen: gradients flow to the
images only.

Use the judge for figures and the twin for gradients; `agreement` says how often
they agree (tested: >= 95% of real held-out digits).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from goldennoise.sandbox import data, judge

SEED = 0
EPOCHS = 400
HIDDEN = 128


class Twin(torch.nn.Module):
    """(N, C, H, W) images in [0, 1], H and W multiples of 8 -> (N, 10) digit logits, differentiably."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(data.GRID ** 2, HIDDEN), torch.nn.SiLU(),
                                       torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.SiLU(), torch.nn.Linear(HIDDEN, 10))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        grey = images.mean(dim=1, keepdim=True)  # (N, 1, H, W)
        box = (grey.shape[-2] // data.GRID, grey.shape[-1] // data.GRID)
        grid = F.avg_pool2d(grey, box).flatten(1)  # (N, 64) in [0, 1] = value / 16
        return self.net(grid * 2 - 1)


def grid_to_images(values: np.ndarray) -> torch.Tensor:
    """sklearn values (N, 64) in 0..16 -> (N, 1, 8, 8) float32 in [0, 1], what the twin takes."""
    return torch.as_tensor(values / data.INK, dtype=torch.float32).reshape(-1, 1, data.GRID, data.GRID)


@lru_cache(maxsize=1)
def twin() -> Twin:
    """The trained twin (eval mode, parameters frozen), built once per process."""
    values, labels = data.real_digits()
    train, _ = data.split()
    gen = torch.Generator("cpu").manual_seed(SEED)
    with torch.random.fork_rng():  # the seeded init must not disturb, or depend on, the caller's global RNG
        torch.manual_seed(SEED)
        model = Twin()
    x, y = grid_to_images(values[train]), torch.as_tensor(labels[train])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-3)
    for _ in range(EPOCHS):
        noisy = (x + 0.05 * torch.randn(x.shape, generator=gen)).clamp(0, 1)  # smooths the twin for gradient use
        loss = F.cross_entropy(model(noisy), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval().requires_grad_(False)


def probabilities(images) -> np.ndarray:
    """(N, 10) twin probabilities for anything `data.to_grid` takes (no gradients; for comparisons)."""
    with torch.no_grad():
        return torch.softmax(twin()(grid_to_images(data.to_grid(images))), dim=1).numpy()


def agreement(values: np.ndarray) -> float:
    """Share of sklearn-valued digits (N, 64) on which the twin's and the judge's top class agree."""
    mine = twin()(grid_to_images(values)).argmax(1).numpy()
    return float(np.mean(mine == judge.probabilities(values).argmax(1)))
