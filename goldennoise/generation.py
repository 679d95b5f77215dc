"""Prompt + parameters + seeds -> images, in one pipeline call per batch.

Each seed gets its own CPU `torch.Generator`, so a seed's noise is the same alone
or in any batch, on CPU or GPU (see `noise.py`). Inputs are checked before any
work, and each failure names the parameter and the fix.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import asdict, dataclass

import torch

from goldennoise import noise
from goldennoise.models import LoadedModel, with_scheduler

MAX_BATCH = 64
MAX_SIDE = 4096
MAX_STEPS = 500


@dataclass(frozen=True)
class GenerationParams:
    """The parameters of one batch, named as diffusers names them."""

    num_inference_steps: int
    guidance_scale: float
    height: int
    width: int
    max_sequence_length: int | None = None
    scheduler: str | None = None  # None: the pipeline's own

    def to_dict(self) -> dict:
        return asdict(self)


class GenerationError(RuntimeError):
    """Generation failed in a way the user can act on (e.g. out of memory)."""


def check_inputs(params: GenerationParams, seeds: list[int], multiple: int = 16) -> None:
    """Raise ValueError naming the bad argument and the fix."""
    if not isinstance(params.num_inference_steps, int) or not 1 <= params.num_inference_steps <= MAX_STEPS:
        raise ValueError(f"num_inference_steps must be a whole number in 1..{MAX_STEPS}, got {params.num_inference_steps!r}.")
    if not 0 <= params.guidance_scale <= 100:
        raise ValueError(f"guidance_scale must lie in 0..100, got {params.guidance_scale!r}.")
    for name in ("height", "width"):
        value = getattr(params, name)
        if not isinstance(value, int) or not multiple <= value <= MAX_SIDE or value % multiple:
            raise ValueError(f"{name} must be a multiple of {multiple} in {multiple}..{MAX_SIDE}, got {value!r}.")
    if params.max_sequence_length is not None and not 1 <= params.max_sequence_length <= 512:
        raise ValueError(f"max_sequence_length must lie in 1..512, got {params.max_sequence_length!r}.")
    if not 1 <= len(seeds) <= MAX_BATCH:
        raise ValueError(f"A batch needs 1..{MAX_BATCH} seeds, got {len(seeds)}.")
    if len(set(seeds)) != len(seeds):
        raise ValueError("Seeds in a batch must be distinct.")
    for seed in seeds:
        noise.check_seed(seed)


def size_multiple(model: LoadedModel) -> int:
    """Height and width must be multiples of this for the pipeline to keep them as given."""
    return model.pipe.vae_scale_factor * (2 if hasattr(model.pipe, "_pack_latents") else 1)


def _call_kwargs(pipe, prompt: str, seeds: list[int], params: GenerationParams) -> dict:
    kwargs = dict(
        prompt=[prompt] * len(seeds),
        num_inference_steps=params.num_inference_steps,
        guidance_scale=params.guidance_scale,
        height=params.height,
        width=params.width,
        generator=[noise.generator(seed) for seed in seeds],
        output_type="pt",  # tensors: CLIP scores them where they are; PIL is made once, for saving
    )
    if params.max_sequence_length is not None and "max_sequence_length" in inspect.signature(pipe.__call__).parameters:
        kwargs["max_sequence_length"] = params.max_sequence_length
    return kwargs


def to_pil(images: torch.Tensor) -> list:
    """(N, 3, H, W) in [0, 1] -> PIL images, rounded exactly as diffusers' output_type="pil" does."""
    from PIL import Image

    array = (images.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype("uint8")
    return [Image.fromarray(image) for image in array]


def generate(model: LoadedModel, prompt: str, seeds: list[int], params: GenerationParams) -> tuple[torch.Tensor, float]:
    """Generate one image per seed for `prompt`; return `(images (N, 3, H, W) in [0, 1], seconds)`.

    Raises ValueError for bad parameters and GenerationError for out-of-memory.
    """
    check_inputs(params, seeds, size_multiple(model))
    pipe = with_scheduler(model.pipe, params.scheduler)
    start = time.perf_counter()
    try:
        with torch.inference_mode():
            images = pipe(**_call_kwargs(pipe, prompt, seeds, params)).images
    except torch.OutOfMemoryError as error:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        smaller = max(1, len(seeds) // 2)
        raise GenerationError(
            f"Out of memory generating {len(seeds)} images at {params.width}x{params.height}: "
            f"try a batch of {smaller} or a smaller size."
        ) from error
    return images, time.perf_counter() - start


def initial_latent_scale(pipe, params: GenerationParams) -> float:
    """The scheduler's `init_noise_sigma` after `set_timesteps`, as the pipeline applies it.

    Read off a fresh copy of the scheduler, so the shared pipeline's is not touched.
    """
    scheduler = with_scheduler(pipe, params.scheduler).scheduler
    scheduler = type(scheduler).from_config(scheduler.config)
    try:
        scheduler.set_timesteps(params.num_inference_steps)
    except (TypeError, ValueError):  # flow-matching schedulers want sigmas / mu from the pipeline
        pass
    return float(getattr(scheduler, "init_noise_sigma", 1.0))


def noise_blocks(model: LoadedModel, seeds: list[int], params: GenerationParams) -> list[dict]:
    """The record's noise block for each seed at these parameters."""
    shape, packing = noise.latent_layout(model.pipe, params.height, params.width)
    scale = initial_latent_scale(model.pipe, params)
    return [noise.noise_block(seed, shape, packing, model.dtype, scale) for seed in seeds]
