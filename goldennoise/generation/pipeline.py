"""Prompt + parameters + seeds -> images, in one pipeline call per batch, from latents made here.

Each seed gets its own CPU `torch.Generator`; its float32 draw becomes the
family's initial latents (see `latents.py`), passed as `latents=`. The same
generators are passed on, already advanced past the draw, so a scheduler that
adds noise at each step (ancestral samplers) continues exactly as it would have
had the pipeline drawn the noise itself. Inputs are checked before any work.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import asdict, dataclass

import torch

from goldennoise.errors import GenerationError, UserError
from goldennoise.generation import latents
from goldennoise.generation.models import LoadedModel, with_scheduler

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


def _whole(value, name: str, low: int, high: int, multiple: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high or value % multiple:
        rule = f"a multiple of {multiple} in {low}..{high}" if multiple > 1 else f"a whole number in {low}..{high}"
        raise UserError(f"{name}: must be {rule}, got {value!r}.", name)


def check_params(params: GenerationParams, multiple: int = 16) -> None:
    """Raise a UserError naming the bad parameter and the fix."""
    _whole(params.num_inference_steps, "num_inference_steps", 1, MAX_STEPS)
    g = params.guidance_scale
    if isinstance(g, bool) or not isinstance(g, (int, float)) or not 0 <= g <= 100:
        raise UserError(f"guidance_scale: must be a number in 0..100, got {g!r}.", "guidance_scale")
    _whole(params.height, "height", multiple, MAX_SIDE, multiple)
    _whole(params.width, "width", multiple, MAX_SIDE, multiple)
    if params.max_sequence_length is not None:
        _whole(params.max_sequence_length, "max_sequence_length", 1, 512)


def check_seeds(seeds: list[int]) -> list[int]:
    if not 1 <= len(seeds) <= MAX_BATCH:
        raise UserError(f"seeds: a batch needs 1..{MAX_BATCH} seeds, got {len(seeds)}.", "seeds")
    checked = [latents.check_seed(seed) for seed in seeds]
    if len(set(checked)) != len(checked):
        raise UserError("seeds: the seeds of a batch must be distinct.", "seeds")
    return checked


def size_multiple(pipe) -> int:
    """Height and width must be multiples of this for the pipeline to keep them as given."""
    if latents.FAMILIES.get(type(pipe).__name__) == "pixel":
        return pipe.unet.config.sample_size  # integer nearest-neighbour upscaling of the sample_size grid
    packed = latents.FAMILIES.get(type(pipe).__name__) in ("flux1", "flux2")
    return pipe.vae_scale_factor * (2 if packed else 1)


def _call_kwargs(pipe, prompt: str, params: GenerationParams, passed: torch.Tensor, generators: list) -> dict:
    kwargs = dict(prompt=[prompt] * len(generators), num_inference_steps=params.num_inference_steps,
                  guidance_scale=params.guidance_scale, height=params.height, width=params.width,
                  latents=passed, generator=generators,
                  output_type="pt")  # tensors: CLIP scores them where they are; PIL is made once, for saving
    if params.max_sequence_length is not None and "max_sequence_length" in inspect.signature(pipe.__call__).parameters:
        kwargs["max_sequence_length"] = params.max_sequence_length
    return kwargs


def to_pil(images: torch.Tensor) -> list:
    """(N, 3, H, W) in [0, 1] -> PIL images, rounded exactly as diffusers' output_type="pil" does."""
    from PIL import Image

    array = (images.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype("uint8")
    return [Image.fromarray(image) for image in array]


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA OOM, or a CPU allocation refused (RLIMIT_AS, cgroup): both mean 'try something smaller'."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("can't allocate memory" in text or "not enough memory" in text
                                                 or "out of memory" in text.lower())


@dataclass
class Generated:
    images: torch.Tensor  # (N, 3, H, W) in [0, 1], on the pipeline's device
    noise: list[dict]  # one provenance block per seed (latents.provenance)
    seconds: float


def prepare(model: LoadedModel, seeds: list[int], params: GenerationParams):
    """(pipe, generators, passed latents, provenance blocks) for a batch: all CPU work before the device."""
    pipe = with_scheduler(model.pipe, params.scheduler)
    lay = latents.layout(pipe, params.height, params.width, params.num_inference_steps)
    dtype = getattr(torch, model.dtype)
    generators = [latents.generator(seed) for seed in seeds]
    draws = [latents.draw(gen, lay.draw_shape) for gen in generators]  # advances each generator past the draw
    passed = torch.cat([latents.to_passed(d, lay.family, dtype) for d in draws])
    blocks = [latents.provenance(seed, d, lay, dtype) for seed, d in zip(seeds, draws)]
    return pipe, generators, passed, blocks


def generate(model: LoadedModel, prompt: str, seeds: list[int], params: GenerationParams) -> Generated:
    """Generate one image per seed for `prompt` from latents made here.

    Raises UserError for bad parameters and GenerationError when out of memory.
    """
    check_params(params, size_multiple(model.pipe))
    seeds = check_seeds(seeds)
    start = time.perf_counter()
    try:
        pipe, generators, passed, blocks = prepare(model, seeds, params)
        start = time.perf_counter()
        with torch.inference_mode():
            images = pipe(**_call_kwargs(pipe, prompt, params, passed, generators)).images
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        smaller = max(1, len(seeds) // 2)
        raise GenerationError(f"Out of memory generating {len(seeds)} image(s) at {params.width}x{params.height}; nothing "
                              f"was recorded. An administrator can make the campaign's batches smaller (e.g. "
                              f"{smaller}) or its images smaller.", "batch_size") from None
    return Generated(images, blocks, time.perf_counter() - start)
