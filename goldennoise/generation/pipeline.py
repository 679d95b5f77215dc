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
from pathlib import Path
from dataclasses import asdict, dataclass, field

import torch

from goldennoise.errors import GenerationError, UserError
from goldennoise.generation import latents, noises
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


def check_seeds(seeds: list[int], sources: list[dict | None] | None = None) -> list[int]:
    """The seeds as ints, or UserError: 1..MAX_BATCH of them, each in range, distinct (a seed may appear twice only
    with `sources` giving its two candidates different noises: its draw and a noise source's, or two sources)."""
    if not 1 <= len(seeds) <= MAX_BATCH:
        raise UserError(f"seeds: a batch needs 1..{MAX_BATCH} seeds, got {len(seeds)}.", "seeds")
    checked = [latents.check_seed(seed) for seed in seeds]
    kinds = [None if not s else s.get("name") for s in (sources or [None] * len(checked))]
    if len(set(zip(checked, kinds))) != len(checked):
        raise UserError("seeds: the seeds of a batch must be distinct (a seed twice only from two noise sources).",
                        "seeds")
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
    made: dict[str, torch.Tensor] = field(default_factory=dict)  # source_sha256 -> a made float32 noise, to keep


def make_sources(pipe, prompt: str, draws: list[torch.Tensor], sources: list[dict | None], lay: latents.Layout,
                 params: GenerationParams) -> tuple[list[dict | None], list[torch.Tensor | None]]:
    """Per seed: the source's full description and its made noise (None, None for a plain seed)."""
    from goldennoise.generation import noise_model, redenoise  # lazy: only campaigns with a noise source use them

    full, made = [None] * len(draws), [None] * len(draws)
    groups: dict[tuple, list[int]] = {}  # a source and its parameters -> the seeds made with it, in one call
    for i, source in enumerate(sources):
        if source:
            if source.get("name") not in noises.MADE:
                raise UserError(f"sources: {source.get('name')!r} is not a noise source ({', '.join(noises.MADE)}).",
                                "sources")
            key = tuple(source.get(k) for k in ("name", "guidance_scale", "inversion_guidance_scale", "checkpoint"))
            groups.setdefault(key, []).append(i)
    for (name, guidance, inversion, checkpoint), chosen in groups.items():
        batch = torch.cat([draws[i] for i in chosen])
        length = params.max_sequence_length or 512
        if name == "model":
            net, info = noise_model.load(checkpoint)
            out = noise_model.apply(net, pipe, batch, [prompt] * len(chosen), length)
            described = {"name": "model", "checkpoint": Path(checkpoint).name, "checkpoint_sha256": info["sha256"]}
        else:
            given = {k: v for k, v in (("guidance_scale", guidance), ("inversion_guidance_scale", inversion))
                     if v is not None}
            method = redenoise.Redenoise.for_family(lay.family, num_inference_steps=max(2, params.num_inference_steps),
                                                    **given)
            out = redenoise.redenoise(pipe, batch, prompt, method, length)
            described = {"name": "redenoise", **method.to_dict()}
            transformer = getattr(pipe, "transformer", None)
            if not (transformer is not None and getattr(transformer.config, "guidance_embeds", False)):
                del described["embedded_guidance"]  # only a guidance-embedding model (FLUX.1-dev) uses it
        if not torch.isfinite(out).all():
            raise GenerationError(f"The {name} noise source gave values that are not finite (this model's scheduler "
                                  "or checkpoint does not suit it); nothing was recorded. Use noise.source = \"seed\".",
                                  "noise.source")
        for row, i in enumerate(chosen):
            full[i] = {**described, "share": float(sources[i]["share"])}
            made[i] = out[row:row + 1].contiguous()
    return full, made


def prepare(model: LoadedModel, seeds: list[int], params: GenerationParams, prompt: str = "",
            sources: list[dict | None] | None = None):
    """(pipe, generators, passed latents, provenance blocks, made noises) for a batch: all work before sampling.

    `sources`: per seed None (its draw) or {"name", "share", ...} (see `noises`)."""
    pipe = with_scheduler(model.pipe, params.scheduler)
    lay = latents.layout(pipe, params.height, params.width, params.num_inference_steps)
    dtype = getattr(torch, model.dtype)
    generators = [latents.generator(seed) for seed in seeds]
    draws = [latents.draw(gen, lay.draw_shape) for gen in generators]  # advances each generator past the draw
    full, made = make_sources(pipe, prompt, draws, sources or [None] * len(seeds), lay, params)
    passed = torch.cat([latents.to_passed(d if m is None else m, lay.family, dtype) for d, m in zip(draws, made)])
    blocks = [latents.provenance(seed, d, lay, dtype, f, m) for seed, d, f, m in zip(seeds, draws, full, made)]
    kept = {b["source_sha256"]: m for b, m in zip(blocks, made) if m is not None}
    return pipe, generators, passed, blocks, kept


def generate(model: LoadedModel, prompt: str, seeds: list[int], params: GenerationParams,
             sources: list[dict | None] | None = None) -> Generated:
    """Generate one image per seed for `prompt` from latents made here (from the seed's draw, or per `sources`
    from a noise made from it).

    Raises UserError for bad parameters and GenerationError when out of memory.
    """
    check_params(params, size_multiple(model.pipe))
    if sources is not None and len(sources) != len(seeds):
        raise UserError(f"sources: one per seed ({len(seeds)}), got {len(sources)}.", "sources")
    seeds = check_seeds(seeds, sources)
    start = time.perf_counter()
    try:
        pipe, generators, passed, blocks, kept = prepare(model, seeds, params, prompt, sources)
        if not kept:  # the draws' CPU work is not the batch's time; a noise source's model calls are
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
    return Generated(images, blocks, time.perf_counter() - start, kept)
