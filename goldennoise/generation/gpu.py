"""Where device work runs: plainly, or inside `spaces.GPU` on a Hugging Face ZeroGPU Space.

ZeroGPU attaches a GPU only inside a function decorated with `spaces.GPU`,
forbids CUDA initialisation anywhere else, and pickles the function's arguments
to the GPU worker. So: models are loaded at start-up in the main thread and
*installed* here by worker key; `run` is one module-level function that takes
only small, picklable arguments (a worker key, the prompt, the seeds, a dict
of parameters and the seeds' noise sources), looks the pipeline up, generates and scores on the device (CLIP,
and the campaign's verifiers on the 8-bit pixels that are saved),
and returns CPU data (uint8 images as numpy, floats, dicts). Its ZeroGPU duration
is computed from the batch. Where ZeroGPU is not active, `run` is the same
function, undecorated.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from goldennoise.errors import CampaignError
from goldennoise.generation import pipeline, scoring
from goldennoise.generation.pipeline import GenerationParams

BASE_SECONDS = 15  # start-up of a ZeroGPU slot, plus a margin
SECONDS_PER_MEGAPIXEL_STEP = 0.35  # FLUX.1 on a ZeroGPU H200 slice, with a margin
MAX_SECONDS = 120
_WORKERS: dict[str, tuple] = {}  # worker key -> (LoadedModel, ClipScorer | None, {name: Verifier})


def zero_gpu() -> bool:
    """True on a ZeroGPU Space (the `spaces` package is present and says so)."""
    if not os.environ.get("SPACES_ZERO_GPU"):
        return False
    try:
        import spaces  # noqa: F401
    except ImportError:
        return False
    return True


def install(key: str, model, clip, verifiers: dict | None = None) -> None:
    """Make a loaded model (its CLIP scorer and verifiers) available to `run` under `key` (main thread, at start)."""
    _WORKERS[key] = (model, clip, dict(verifiers or {}))


def uninstall(key: str) -> None:
    _WORKERS.pop(key, None)


def duration(key: str, prompt: str, seeds: list[int], params: dict, sources: list | None = None) -> int:
    """Seconds of GPU a batch may need (ZeroGPU's `duration`), from its size and steps."""
    megapixels = params["height"] * params["width"] / 1e6
    sourced = sum(1 for source in sources or [] if source)  # re-denoise: two more model calls per such seed
    work = (len(seeds) * params["num_inference_steps"] + 2 * sourced) * megapixels
    return int(min(MAX_SECONDS, BASE_SECONDS + SECONDS_PER_MEGAPIXEL_STEP * work))


def _run(key: str, prompt: str, seeds: list[int], params: dict, sources: list | None = None) -> dict:
    if key not in _WORKERS:
        raise CampaignError("The campaign was switched while this batch waited; nothing was generated. Go on.")
    model, clip, verifiers = _WORKERS[key]
    made = pipeline.generate(model, prompt, seeds, GenerationParams(**params), sources)
    scores = None
    if clip is not None and clip.device != "cpu":
        scores = scoring.clip_scores(clip, made.images, prompt)  # on the device, no PIL round-trip
    pixels = (made.images.float().clamp(0, 1) * 255).round().to(torch.uint8)  # (N, 3, H, W), as saved
    start = time.perf_counter()
    saved = pixels.float() / 255
    # On a GPU, verifiers score the 8-bit pixels as tensors here; on a CPU, `batch.finish` scores the PIL images
    # (the published preprocessing exactly, so a score is re-made from the PNG).
    verifier_scores = {name: verifier.score(saved.to(verifier.device), prompt) for name, verifier in verifiers.items()
                       if verifier.device != "cpu"}
    return {"images": np.ascontiguousarray(pixels.permute(0, 2, 3, 1).cpu().numpy()), "noise": made.noise,
            "scores": scores, "seconds": made.seconds, "verifier_scores": verifier_scores,
            "made": {sha: noise.numpy() for sha, noise in made.made.items()},
            "verifier_seconds": time.perf_counter() - start}


run = _run
if zero_gpu():
    import spaces

    run = spaces.GPU(duration=duration)(_run)
