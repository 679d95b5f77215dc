"""A dataset made by driving the app's session loop, with annotators whose choices follow a planted rule.

The rule looks only at the noise: a seed is golden when channel 0 of its noise
has a high mean (plus some judging noise). A seed selector should find this; with
labels shuffled within each prompt it must not.
"""

from __future__ import annotations

import numpy as np

from goldennoise import answers, noise, session
from goldennoise.assignment import Assigner
from goldennoise.prompts import parse_prompts
from goldennoise.records import RecordStore


def planted_golden(seed: int, shape, rng: np.random.Generator) -> bool:
    channel0_mean = float(noise.initial_noise(seed, shape)[0, 0].mean())
    return channel0_mean + rng.normal(0, 0.04) > 0.04


def make_dataset(engine, prompts: int = 40, batch_size: int = 6, strategy: str = "pool", annotators=("ann", "bob"),
                 overlap: float = 0.25, size: int = 64, seed: int = 0, rule=planted_golden) -> RecordStore:
    store = RecordStore(engine.outputs)
    prompt_set = parse_prompts("\n".join(f"a planted prompt number {i}" for i in range(prompts)).encode(), "planted.txt")
    settings = session.default_settings("tiny-flux")
    settings.height = settings.width = size
    settings.batch_size, settings.seed_strategy, settings.start_seed, settings.pool_size = batch_size, strategy, 0, 24
    assigner = Assigner(overlap=overlap)
    rng = np.random.default_rng(seed)
    states = [session.new_session(prompt_set, name) for name in annotators]
    for state in states:
        session.apply_settings(engine, state, settings, store, assigner)
    active = list(states)
    while active:
        for state in list(active):
            if session.advance(state, assigner) is None:
                active.remove(state)
                continue
            batch = session.generate(engine, state, assigner=assigner)
            shape = batch.noise[0]["shape"]
            answers.submit(store, state, [s for s in batch.seeds if rule(s, shape, rng)], assigner)
    return store
