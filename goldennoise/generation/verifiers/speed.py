"""What a verifier costs: seconds to score one batch, measured as the benchmarks measure generation."""

from __future__ import annotations

import statistics
import time

import torch

from goldennoise.generation.pipeline import to_pil
from goldennoise.generation.verifiers.base import Verifier

PROMPT = "a lighthouse on a cliff in a storm"


def seconds_per_batch(verifier: Verifier, n: int = 4, size: int = 256, repeats: int = 3, pil: bool = False,
                      prompt: str = PROMPT) -> float:
    """Median seconds of `verifier.score` on `n` images of `size` x `size` (after one warm-up call).

    The images are uniform noise made on the CPU under a fixed seed, on the verifier's
    device as tensors (the generation path), or as PIL images with `pil=True`.
    """
    images = torch.rand((n, 3, size, size), generator=torch.Generator().manual_seed(0))
    if pil:

        images = to_pil(images)
    else:
        images = images.to(verifier.device)
    synchronize = torch.cuda.synchronize if str(verifier.device).startswith("cuda") else (lambda: None)
    verifier.score(images, prompt)
    times = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        verifier.score(images, prompt)
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
