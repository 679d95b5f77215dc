"""Datasets made by driving the app's own annotation loop, with annotators who follow a known rule.

`planted_golden`: a seed is golden when channel 0 of its noise has a high mean
(plus judging noise): a selector should find it on unseen seeds. `lookup_golden`:
golden by a random per-seed table with no relation to the noise: with the pool
strategy the same seed recurs under many prompts, and an honest evaluation on
unseen seeds must find nothing.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

import numpy as np
import torch

from goldennoise.annotation.service import Caller, Service
from goldennoise.generation import latents
from goldennoise.store.campaign import Campaign


def planted_golden(seed: int, shape, rng: np.random.Generator) -> bool:
    channel0_mean = float(latents.initial_noise(seed, tuple(shape))[0, 0].mean())
    return channel0_mean + rng.normal(0, 0.04) > 0.04


def lookup_golden(seed: int, shape, rng: np.random.Generator) -> bool:
    """Golden for a fixed, random half of seeds: seed identity, no noise feature."""
    return int(hashlib.sha256(f"lookup:{seed}".encode()).hexdigest(), 16) % 2 == 0


def make_dataset(outputs, tmp, prompts: int = 40, batch_size: int = 6, strategy: str = "pool", pool_size: int = 24,
                 annotators=("ann", "bob"), overlap: float = 0.25, size: int = 64, seed: int = 0,
                 rule=planted_golden, service: Service | None = None, start_seed: int = 0,
                 **campaign_values) -> Service:
    """Label every prompt of a fresh campaign by `rule`; returns the service (its outputs hold the records)."""
    prompt_file = tmp / f"planted-{prompts}.txt"
    prompt_file.write_text("\n".join(f"a planted prompt number {i}" for i in range(prompts)) + "\n")
    campaign = Campaign(name="planted", model="tiny-flux", height=size, width=size, prompts=str(prompt_file),
                        batch_size=batch_size, seed_strategy=strategy, start_seed=start_seed, pool_size=pool_size,
                        overlap=overlap, min_view_ms=0, **campaign_values)
    service = service or Service(outputs, prefetch=False)
    service.start(campaign)
    rng = np.random.default_rng(seed)
    callers = {name: Caller(f"tab-{name}-{service.epoch}") for name in annotators}
    screens = {name: service.join(caller, name) for name, caller in callers.items()}
    while any(s.state == "batch" for s in screens.values()):
        for name, screen in list(screens.items()):
            if screen.state != "batch":
                continue
            shape = screen.batch.noise[0]["shape"]
            golden = [s for s in screen.batch.seeds if rule(s, shape, rng)]
            screens[name] = service.answer(callers[name], "batch", screen.batch.batch_id, golden=golden).screen
    return service


@contextmanager
def one_thread():
    """Tiny models run fastest on one torch thread when the machine is shared (extra threads only spin)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
