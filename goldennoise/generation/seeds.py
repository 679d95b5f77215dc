"""Seed strategies: which seeds a prompt's batch shows.

- "random": fresh seeds from the OS's randomness, in 0..2**32-1 (a range every
  tool and JavaScript UI handles exactly).
- "sequential": prompt i gets `start + i*batch_size ... + batch_size - 1`, so a
  run is reproducible and resumes with the same seeds.
- "pool": a fixed pool `start .. start + pool_size - 1`; each prompt shows a
  reproducible sample of it, so every seed is judged across many prompts and a
  seed's quality across prompts can be measured.
"""

from __future__ import annotations

import random

from goldennoise.errors import UserError
from goldennoise.generation.latents import MAX_SEED

STRATEGIES = ("random", "sequential", "pool")
RANDOM_SEED_LIMIT = 2**32
MAX_POOL = 100_000

_system_random = random.SystemRandom()


def draw_seeds(strategy: str, batch_size: int, prompt_index: int, start_seed: int = 0, pool_size: int = 64) -> list[int]:
    """Return `batch_size` distinct seeds for the prompt at `prompt_index`."""
    if strategy == "random":
        seeds: list[int] = []
        while len(seeds) < batch_size:
            seed = _system_random.randrange(RANDOM_SEED_LIMIT)
            if seed not in seeds:
                seeds.append(seed)
        return seeds
    if strategy not in STRATEGIES:
        raise UserError(f"seed_strategy: {strategy!r} is unknown; choose one of {', '.join(STRATEGIES)}.", "seed_strategy")
    span = pool_size if strategy == "pool" else (prompt_index + 1) * batch_size
    if start_seed < 0 or start_seed + span - 1 > MAX_SEED:
        raise UserError(f"start_seed: must keep seeds within 0..{MAX_SEED}, got {start_seed}.", "start_seed")
    if strategy == "sequential":
        first = start_seed + prompt_index * batch_size
        return list(range(first, first + batch_size))
    if not batch_size <= pool_size <= MAX_POOL:
        raise UserError(f"pool_size: must lie in {batch_size}..{MAX_POOL} (at least the batch size), got {pool_size}.", "pool_size")
    # A string seed keeps the sample the same on every machine and Python version.
    return random.Random(f"goldennoise-pool:{start_seed}:{pool_size}:{prompt_index}").sample(
        range(start_seed, start_seed + pool_size), batch_size)
