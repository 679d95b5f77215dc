"""Seed strategies: which seeds a prompt's batch shows.

- "random": fresh seeds from the OS's randomness, in 0..2**32-1 (a range every
  tool and JavaScript UI handles exactly).
- "sequential": prompt i gets `start + i*batch_size ... + batch_size - 1`, so a
  run is reproducible and resumes with the same seeds.
"""

from __future__ import annotations

import random

from goldennoise.noise import MAX_SEED

STRATEGIES = ("random", "sequential")
RANDOM_SEED_LIMIT = 2**32

_system_random = random.SystemRandom()


def draw_seeds(strategy: str, batch_size: int, prompt_index: int, start_seed: int = 0) -> list[int]:
    """Return `batch_size` distinct seeds for the prompt at `prompt_index`."""
    if strategy == "random":
        seeds: list[int] = []
        while len(seeds) < batch_size:
            seed = _system_random.randrange(RANDOM_SEED_LIMIT)
            if seed not in seeds:
                seeds.append(seed)
        return seeds
    if strategy == "sequential":
        first = start_seed + prompt_index * batch_size
        if start_seed < 0 or first + batch_size - 1 > MAX_SEED:
            raise ValueError(f"start_seed must keep seeds within 0..{MAX_SEED}, got {start_seed}.")
        return list(range(first, first + batch_size))
    raise ValueError(f"Unknown seed strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}.")
