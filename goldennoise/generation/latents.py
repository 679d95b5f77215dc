"""The initial latents of a seed: drawn here, passed to the pipeline, recorded, re-made, verified.

GoldenNoise never lets a pipeline draw its own noise. For each seed it draws a
float32 tensor on a CPU generator, `torch.randn(shape, generator=Generator("cpu")
.manual_seed(seed))` (the values diffusers users know), turns it into the exact
initial latents of the pipeline's family and passes them as `latents=`. So the
record says what the pipeline received, whatever its dtype, device or torch
version (older torch draws bf16 noise that differs from the float32 draw).

Families (f = the VAE scale factor, H x W the image size; draw is per seed):

| family | pipelines                          | draw `(1, C, h, w)`              | `latents=` we pass       | the pipeline then          |
|--------|------------------------------------|----------------------------------|--------------------------|----------------------------|
| flux1  | FluxPipeline                       | C = in_channels/4, h = 2*(H//2f) | packed 2x2, cast         | nothing                    |
| flux2  | Flux2Pipeline, Flux2KleinPipeline  | C = in_channels, h = H//2f       | cast                     | flattens to (h*w, C)       |
| sd     | StableDiffusion(XL)Pipeline        | C = unet.in_channels, h = H//f   | cast                     | multiplies by init_noise_sigma in its dtype |
| sd3    | StableDiffusion3Pipeline           | C = in_channels, h = H//f        | cast                     | nothing                    |
| pixel  | DigitsPipeline (pixel-space UNet)  | C = unet.in_channels, h = S      | cast                     | nothing (upscales output)  |

(S = unet.sample_size: a pixel-space model draws its own grid whatever H x W,
which only sets the nearest-neighbour upscaling of its output.)

Other pipelines are refused: a mislabelled layout would pass a hash check while
every spatial feature is wrong. Each noise block records the float32 draw's
sha256, the initial latents' sha256 (the tensor `prepare_latents` returns), and a
fingerprint (fixed-position values and moments). The sha256 of a float32 draw
depends on the CPU's kernels (AVX2 and plain differ by ~1e-6), so verification
on another machine falls back to the fingerprint, within a tolerance that no other
seed, shape or packing can meet.

A hash is over bytes, and a draw re-read in another shape has the same bytes: so
`verify` first checks a block against what its record's configuration implies
(`check_block`: family, packing, shape, latents shape, scale; see the last section).
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from goldennoise.errors import NoiseMismatch, UnsupportedPipeline, UserError
from goldennoise.generation import tiny
from goldennoise.generation.hub import folder_fingerprint
from goldennoise.generation.noises import MADE, NoiseStore

GENERATOR_DEVICE = "cpu"
DRAW_DTYPE = "float32"
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed accepts 64-bit values; keep them signed (int64 everywhere)
FINGERPRINT_DRAW = 64  # values of the draw kept per seed
FINGERPRINT_LATENTS = 32  # values of the initial latents kept per seed
DRAW_TOLERANCE = 1e-5  # |difference| allowed per draw value across CPU kernels (observed: <= 2e-6)
FAMILIES = {
    "FluxPipeline": "flux1",
    "Flux2Pipeline": "flux2",
    "Flux2KleinPipeline": "flux2",
    "StableDiffusionPipeline": "sd",
    "StableDiffusionXLPipeline": "sd",
    "StableDiffusion3Pipeline": "sd3",
    "DigitsPipeline": "pixel",  # goldennoise.sandbox: the offline digits model
}
ORDER = {
    "flux1": "randn float32 (cpu generator) -> pack 2x2 -> cast {dtype}",
    "flux2": "randn float32 (cpu generator) -> cast {dtype} -> pipeline flattens (h*w, C)",
    "sd": "randn float32 (cpu generator) -> cast {dtype} -> pipeline multiplies by init_noise_sigma in {dtype}",
    "sd3": "randn float32 (cpu generator) -> cast {dtype}",
    "pixel": "randn float32 (cpu generator) on the unet sample_size grid -> cast {dtype}; the output is upscaled",
}


def check_seed(seed) -> int:
    """Return `seed` as an int, or raise a UserError if it is not a usable seed."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise UserError(f"seed: must be a whole number, got {seed!r}.", "seed")
    if not 0 <= int(seed) <= MAX_SEED:
        raise UserError(f"seed: must lie in 0..{MAX_SEED}, got {seed}.", "seed")
    return int(seed)


def generator(seed: int) -> torch.Generator:
    """The CPU generator of `seed`."""
    return torch.Generator(GENERATOR_DEVICE).manual_seed(check_seed(seed))


def draw(gen: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    """The float32 draw from `gen`, advancing it exactly as the pipeline's own draw would."""
    return torch.randn(tuple(shape), generator=gen, dtype=torch.float32)


def initial_noise(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The float32 draw `(1, C, h, w)` of `seed`."""
    return draw(generator(seed), shape)


def machine() -> dict:
    """What the CPU kernels that drew the noise depend on."""
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "machine": platform.machine(),
            "torch": torch.__version__}


@dataclass(frozen=True)
class Layout:
    """How one family turns a seed's draw into the pipeline's initial latents."""

    family: str
    draw_shape: tuple[int, int, int, int]
    scale: float  # applied by the pipeline after receiving `latents=` (init_noise_sigma), else 1.0

    @property
    def packing(self) -> str:
        return {"flux1": "flux-2x2", "flux2": "flux2-flatten"}.get(self.family, "none")


def family_of(pipe) -> str:
    """The latent family of a pipeline, or UnsupportedPipeline naming the supported ones."""
    name = type(pipe).__name__
    if name not in FAMILIES:
        raise UnsupportedPipeline(
            f"model: GoldenNoise records exact initial latents for {', '.join(sorted(FAMILIES))}; "
            f"{name} is not one of them, so its noise could not be verified. Choose a supported model.", "model")
    return FAMILIES[name]


def init_noise_sigma(scheduler, num_inference_steps: int) -> float:
    """The scheduler's `init_noise_sigma` after `set_timesteps`, read off a fresh copy (the shared one is untouched)."""
    fresh = type(scheduler).from_config(scheduler.config)
    try:
        fresh.set_timesteps(num_inference_steps)
    except (TypeError, ValueError):  # flow-matching schedulers want sigmas / mu from the pipeline
        pass
    sigma = getattr(fresh, "init_noise_sigma", 1.0)
    return float(sigma.item() if isinstance(sigma, torch.Tensor) else sigma)


def layout(pipe, height: int, width: int, num_inference_steps: int = 1) -> Layout:
    """The layout `pipe` uses at `height` x `width` (its scheduler decides the scale)."""
    family = family_of(pipe)
    if family == "pixel":  # no VAE: the UNet's own grid, height and width only upscale the output
        size = pipe.unet.config.sample_size
        return Layout(family, (1, pipe.unet.config.in_channels, size, size), 1.0)
    f = pipe.vae_scale_factor
    if family == "flux1":
        channels = pipe.transformer.config.in_channels // 4
        return Layout(family, (1, channels, 2 * (height // (f * 2)), 2 * (width // (f * 2))), 1.0)
    if family == "flux2":
        return Layout(family, (1, pipe.transformer.config.in_channels, height // (f * 2), width // (f * 2)), 1.0)
    if family == "sd3":
        return Layout(family, (1, pipe.transformer.config.in_channels, height // f, width // f), 1.0)
    return Layout(family, (1, pipe.unet.config.in_channels, height // f, width // f),
                  init_noise_sigma(pipe.scheduler, num_inference_steps))


def pack_2x2(x: torch.Tensor) -> torch.Tensor:
    """FLUX.1's packing: (B, C, h, w) -> (B, h/2 * w/2, 4C), as `FluxPipeline._pack_latents`."""
    b, c, h, w = x.shape
    return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def to_passed(noise: torch.Tensor, family: str, dtype: torch.dtype) -> torch.Tensor:
    """What GoldenNoise passes as `latents=` for a float32 draw."""
    if family == "flux1":
        return pack_2x2(noise).to(dtype)
    return noise.to(dtype)


def to_initial(passed: torch.Tensor, family: str, scale: float) -> torch.Tensor:
    """What the pipeline's `prepare_latents` makes of `passed`: the tensor denoising starts from."""
    if family == "flux2":
        b, c, h, w = passed.shape
        return passed.reshape(b, c, h * w).permute(0, 2, 1)
    if family == "sd":
        return passed * scale  # in the pipeline's dtype, as it does: bf16(bf16(x) * sigma)
    return passed


def tensor_sha256(tensor: torch.Tensor) -> str:
    """sha256 of a tensor's little-endian bytes in its own dtype (bf16/fp16 as 2-byte words)."""
    t = tensor.detach().to("cpu").contiguous()
    if t.dtype in (torch.bfloat16, torch.float16):
        raw = t.view(torch.int16).numpy().astype("<i2", copy=False)
    else:
        raw = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False)
    return hashlib.sha256(raw.tobytes()).hexdigest()


def _positions(numel: int, count: int) -> np.ndarray:
    return (np.arange(count, dtype=np.int64) * numel) // count + (numel // count) // 2


def _sample(tensor: torch.Tensor, count: int) -> list[float]:
    flat = tensor.detach().reshape(-1).to("cpu", torch.float32).numpy()
    return [float(v) for v in flat[_positions(flat.size, min(count, flat.size))]]


def provenance(seed: int, noise: torch.Tensor, lay: Layout, dtype: torch.dtype, source: dict | None = None,
               made: torch.Tensor | None = None) -> dict:
    """The record's noise block for one seed: enough to re-make and verify its initial latents.

    With a `source` (see `noises`), the latents come from `made` (that source's noise
    from this draw, kept by its hash): the block names the source and `source_sha256`,
    and its latents hash and fingerprint are of `made`'s latents; the draw's own hash
    and fingerprint stay, so the seed is still checked.
    """
    start = noise if made is None else made
    initial = to_initial(to_passed(start, lay.family, dtype), lay.family, lay.scale)
    dtype_text = str(dtype).removeprefix("torch.")
    x = noise.double()
    order = ORDER[lay.family].format(dtype=dtype_text)
    extra = {}
    if made is not None:
        order = order.replace("randn float32 (cpu generator)", f"{source['name']}(randn float32 (cpu generator))")
        extra = {"source": dict(source), "source_sha256": tensor_sha256(made.float())}
    return {
        "generator": GENERATOR_DEVICE, "dtype": DRAW_DTYPE, "shape": list(noise.shape),
        "family": lay.family, "packing": lay.packing, "scale": lay.scale, "pipeline_dtype": dtype_text,
        "order": order,
        "sha256": tensor_sha256(noise),
        "latents_shape": list(initial.shape), "latents_sha256": tensor_sha256(initial),
        "fingerprint": {"draw": _sample(noise, FINGERPRINT_DRAW), "mean": float(x.mean()), "std": float(x.std()),
                        "latents": _sample(initial, FINGERPRINT_LATENTS)},
        **extra,
    }


@dataclass(frozen=True)
class Verification:
    """How a re-made noise matched its record: "exact" (hashes equal) or "tolerance" (fingerprint)."""

    status: str
    max_difference: float = 0.0
    unchecked: tuple[str, ...] = ()  # what the configuration check could not check, and why (see `check_block`)


def _dtype(name: str) -> torch.dtype:
    return getattr(torch, name)


def _field(block, name, default=None):
    return getattr(block, name, None) if not isinstance(block, dict) else block.get(name, default)


def _as_dict(block) -> dict:
    return block if isinstance(block, dict) else block.model_dump()


def verify(seed: int, block, noise: torch.Tensor | None = None, configuration: dict | None = None,
           store: NoiseStore | None = None) -> Verification:
    """Check a noise block against its record's `configuration` (`check_block`), then a re-made draw (made now if
    not given) against the block.

    Exact when the draw's sha256 matches; else (another CPU's kernels) within the
    fingerprint's tolerance; else NoiseMismatch. A block with a `source` also needs the
    outputs folder's `store`: the kept noise must hash to `source_sha256`, have the
    draw's shape, and give exactly the recorded latents.
    """
    unchecked = check_block(seed, block, configuration)
    block = _as_dict(block)
    if block.get("source") is not None:
        return replace(_verify_made(seed, block, noise, store), unchecked=unchecked)
    return replace(_verify_hashes(seed, block, noise), unchecked=unchecked)


def made_noise(seed: int, block: dict, store: NoiseStore | None) -> torch.Tensor:
    """The kept noise of a block with a source, checked against the block's hash and shape."""
    if store is None:
        raise NoiseMismatch(f"seed {seed}: its noise was made by {block['source'].get('name')!r} and is kept under "
                            "the outputs folder (noises/); verify it with that folder.")
    if (block["source"] or {}).get("name") not in MADE:
        raise NoiseMismatch(f"seed {seed}: {str((block['source'] or {}).get('name'))[:40]!r} is not a noise source "
                            f"GoldenNoise makes ({', '.join(MADE)}).")
    try:
        made = torch.from_numpy(store.get(block.get("source_sha256"), block["sha256"]))
    except NoiseMismatch as error:
        raise NoiseMismatch(f"seed {seed}: {error}") from None
    if list(made.shape) != list(block["shape"]):
        raise NoiseMismatch(f"seed {seed}: the kept noise has shape {list(made.shape)}, the record {block['shape']}.")
    return made


def _verify_made(seed: int, block: dict, noise: torch.Tensor | None, store: NoiseStore | None) -> Verification:
    noise = initial_noise(seed, tuple(block["shape"])) if noise is None else noise
    if tensor_sha256(noise) == block["sha256"]:
        result = Verification("exact")
    else:  # the draw on another CPU's kernels: its fingerprint
        result = _within_tolerance(seed, noise, block, draw_only=True)
    made = made_noise(seed, block, store)
    initial = to_initial(to_passed(made, block["family"], _dtype(block["pipeline_dtype"])), block["family"],
                         block["scale"])
    if tensor_sha256(initial) != block["latents_sha256"] or list(initial.shape) != block.get("latents_shape"):
        raise NoiseMismatch(f"seed {seed}: the kept {block['source'].get('name')} noise does not give the recorded "
                            "initial latents (packing, scale or dtype edited).")
    return result


def _verify_hashes(seed: int, block: dict, noise: torch.Tensor | None) -> Verification:
    if block.get("generator") != GENERATOR_DEVICE or block.get("dtype") != DRAW_DTYPE:
        raise NoiseMismatch(f"seed {seed}: cannot re-make noise drawn on {block.get('generator')!r} "
                            f"as {block.get('dtype')!r}.")
    noise = initial_noise(seed, tuple(block["shape"])) if noise is None else noise
    family = block.get("family")
    fingerprint = block.get("fingerprint")
    if tensor_sha256(noise) == block["sha256"]:
        if family is None or fingerprint is None:
            return Verification("exact")  # schema-1 block: the draw hash is all there is
        initial = to_initial(to_passed(noise, family, _dtype(block["pipeline_dtype"])), family, block["scale"])
        # Bytes alone cannot tell (1, 1, 8, 8) from (1, 1, 4, 16) when nothing is packed: the shape must match too.
        if tensor_sha256(initial) == block["latents_sha256"] and list(initial.shape) == block.get("latents_shape"):
            return Verification("exact")
    if fingerprint is None:
        raise NoiseMismatch(f"seed {seed}: the noise does not hash to its record, and the record (schema 1) "
                            "has no fingerprint to compare on another CPU; verify it on the machine that made it.")
    return _within_tolerance(seed, noise, block)


def _within_tolerance(seed: int, noise: torch.Tensor, block: dict, draw_only: bool = False) -> Verification:
    fp = block["fingerprint"]
    got = np.array(_sample(noise, FINGERPRINT_DRAW))
    want = np.array(fp["draw"])
    worst = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("inf")
    x = noise.double()
    moments_ok = abs(float(x.mean()) - fp["mean"]) <= DRAW_TOLERANCE and abs(float(x.std()) - fp["std"]) <= DRAW_TOLERANCE
    if not worst <= DRAW_TOLERANCE or not moments_ok:
        raise NoiseMismatch(f"seed {seed}: the re-made noise differs from its record (largest difference "
                            f"{worst:.3g} at the fingerprint's positions; allowed {DRAW_TOLERANCE}): wrong seed, "
                            "shape or record.")
    if draw_only:
        return Verification("tolerance", worst)
    dtype = _dtype(block["pipeline_dtype"])
    initial = to_initial(to_passed(noise, block["family"], dtype), block["family"], block["scale"])
    if list(initial.shape) != list(block["latents_shape"]):
        raise NoiseMismatch(f"seed {seed}: latents shape {list(initial.shape)} differs from the record's "
                            f"{block['latents_shape']} (packing {block['packing']!r}).")
    got_l, want_l = np.array(_sample(initial, FINGERPRINT_LATENTS)), np.array(fp["latents"])
    # One rounding step of the pipeline's dtype may flip when the draw moved by ~1e-6.
    allowed = abs(block["scale"]) * (2 * DRAW_TOLERANCE) + torch.finfo(dtype).eps * np.abs(want_l) * 1.01
    if got_l.shape != want_l.shape or np.any(np.abs(got_l - want_l) > allowed):
        raise NoiseMismatch(f"seed {seed}: the initial latents differ from the record's beyond one rounding step "
                            f"of {block['pipeline_dtype']} (packing {block['packing']!r}, scale {block['scale']}).")
    return Verification("tolerance", worst)


def remake_noise(seed: int, block, configuration: dict | None = None, store: NoiseStore | None = None) -> torch.Tensor:
    """The float32 noise `(1, C, h, w)` a record's block started from, verified (see `verify`): the seed's draw, or
    for a block with a source, the kept noise made from it (`store`: the outputs folder's)."""
    noise = initial_noise(seed, tuple(_field(block, "shape")))
    verify(seed, block, noise, configuration, store)
    if _field(block, "source") is not None:
        return made_noise(seed, _as_dict(block), store)
    return noise


def remake_latents(seed: int, block, dtype: torch.dtype | str | None = None, stage: str = "initial",
                   configuration: dict | None = None, store: NoiseStore | None = None) -> torch.Tensor:
    """The exact tensor the pipeline started from (stage "initial") or was passed (stage "passed").

    `dtype` defaults to the recorded pipeline dtype; another dtype gives the same
    construction in that dtype (e.g. to run the recorded noise on a float32 pipeline).
    `configuration` (the record's, see `check_block`) also checks the block against it;
    `store` (`noises.NoiseStore` of the outputs folder) is needed for a block with a source.
    """
    block = _as_dict(block)
    if block.get("family") is None:
        raise UserError("noise: this record (schema 1) does not name its pipeline family; use remake_noise and "
                        "pack it yourself as its 'packing' says.", "noise")
    noise = remake_noise(seed, block, configuration, store)
    dtype = _dtype(dtype) if isinstance(dtype, str) else dtype or _dtype(block["pipeline_dtype"])
    passed = to_passed(noise, block["family"], dtype)
    if stage == "passed":
        return passed
    if stage != "initial":
        raise UserError(f"stage: {stage!r} is not 'initial' or 'passed'.", "stage")
    return to_initial(passed, block["family"], block["scale"])


# What a record's configuration implies of its noise block ----------------------------------------------------------
#
# A hash is over raw bytes: an SD draw (1, 4, 8, 8) re-read as (1, 16, 4, 4) has the same bytes, so a block whose
# shape was edited (and its latents shape to match) would verify "exact" while every feature changed. So before any
# hash, `check_block` compares the block with what the record's configuration implies. From the record alone: the
# family (pipeline class), packing, spatial size (height, width and the VAE's scale factor), latents shape and, for
# every family but sd, the scale (1). Needing the model: the channel count (a table of known models, else the
# cached denoiser config) and sd's scale (the scheduler's init_noise_sigma: 1 for the schedulers below whatever their
# config, else from the cached scheduler config). What cannot be checked is returned, never assumed.

VAE_SCALE_FACTOR = 8  # 2 ** (len(vae.block_out_channels) - 1): the VAE of every supported family


@dataclass(frozen=True)
class Implied:
    """What a family implies of its noise blocks; one entry per family in IMPLIED (shapes as `layout` makes them)."""

    denoiser: str  # the model folder whose config.json holds `in_channels` (and `sample_size`)
    channels: Callable[[int], int]  # in_channels -> the draw's C
    spatial: Callable[[int, int], tuple[int, int]] | None  # (height, width) -> the draw's (h, w); None: sample_size
    latents: Callable[[list[int]], list[int]]  # the draw's shape -> the initial latents' shape
    unit_scale: bool  # scale 1.0; False: the scheduler's init_noise_sigma


_F = VAE_SCALE_FACTOR
IMPLIED = {
    "flux1": Implied("transformer", lambda c: c // 4, lambda h, w: (2 * (h // (2 * _F)), 2 * (w // (2 * _F))),
                     lambda s: [s[0], (s[2] // 2) * (s[3] // 2), 4 * s[1]], True),
    "flux2": Implied("transformer", int, lambda h, w: (h // (2 * _F), w // (2 * _F)),
                     lambda s: [s[0], s[2] * s[3], s[1]], True),
    "sd": Implied("unet", int, lambda h, w: (h // _F, w // _F), list, False),
    "sd3": Implied("transformer", int, lambda h, w: (h // _F, w // _F), list, True),
    "pixel": Implied("unet", int, None, list, True),  # pixel-space UNet: (1, C, S, S) whatever the image size
}
KNOWN_CHANNELS = {  # the draw's C for known models, by the model id records carry
    "tiny-flux": 4, "tiny-sd": 4, "black-forest-labs/FLUX.1-schnell": 16, "black-forest-labs/FLUX.1-dev": 16,
    "stabilityai/stable-diffusion-3.5-large": 16, "stabilityai/stable-diffusion-3.5-medium": 16,
    "stabilityai/stable-diffusion-xl-base-1.0": 4, "digits": 1,
}
KNOWN_SAMPLE_SIZES = {"digits": 8}  # pixel-space models' own grid (the shipped digits model's recipe)
UNIT_SIGMA_SCHEDULERS = frozenset({  # init_noise_sigma is 1.0 whatever the config (tests check against diffusers)
    "DDIMScheduler", "DDPMScheduler", "PNDMScheduler", "DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler",
    "DEISMultistepScheduler", "UniPCMultistepScheduler", "LCMScheduler", "TCDScheduler", "SASolverScheduler"})


_FOUND: dict[tuple, object] = {}  # (what, ...) -> a file or value found on this machine (absence is not cached)


def _model_file(model_id: str | None, revision: str | None, name: str) -> dict | None:
    """A JSON file of a model from what is on this machine only (a built tiny model, the Hugging Face cache)."""
    key = ("file", model_id, revision, name, str(tiny.cache_dir()))
    if key in _FOUND or not model_id:
        return _FOUND.get(key)
    if model_id in tiny.PIPELINES:
        folder = tiny.cache_dir() / f"{model_id}-v{tiny.TINY_VERSION}"  # as tiny_model_path, never built here
        if revision and folder.is_dir() and folder_fingerprint(folder) != revision:
            return None  # another build of the tiny model than the one that made the record
        path = folder / name
    else:
        from huggingface_hub import try_to_load_from_cache  # only for a hub model's records

        try:
            path = try_to_load_from_cache(model_id, name, revision=revision)
        except Exception:  # not a repo id (a local folder's name): nothing cached to read
            return None
    if not (isinstance(path, (str, Path)) and Path(path).is_file()):
        return None
    _FOUND[key] = json.loads(Path(path).read_text())
    return _FOUND[key]


def _sd_scale(model_id, revision, scheduler, steps) -> float | None:
    """The init_noise_sigma an sd pipeline multiplies by, or None when its scheduler's config is not here."""
    if scheduler in UNIT_SIGMA_SCHEDULERS:
        return 1.0
    config = _model_file(model_id, revision, "scheduler/scheduler_config.json")
    name = scheduler or (config or {}).get("_class_name")
    if name in UNIT_SIGMA_SCHEDULERS:
        return 1.0
    if config is None or not steps:
        return None
    key = ("sigma", model_id, revision, name, steps)
    if key not in _FOUND:
        import diffusers  # heavy: only for sd records whose scheduler's sigma depends on its config

        cls = getattr(diffusers, str(name), None)
        if cls is None:
            return None
        _FOUND[key] = init_noise_sigma(cls.from_config(config), int(steps))
    return _FOUND[key]


def _number(value) -> int | None:
    try:
        return None if value is None or value != value else int(value)  # NaN in a table: unknown
    except (TypeError, ValueError):
        return None


def check_block(seed: int, block, configuration: dict | None = None) -> tuple[str, ...]:
    """Check a noise block's family, packing, shape, latents shape and scale against its record's configuration.

    `configuration`: `store.configuration.configuration(record.model, record.parameters)` (pipeline_class, dtype,
    height, width, num_inference_steps, scheduler, model_id, revision); without it, only what the block implies of
    itself (packing, latents shape and scale from its family and shape). Raises NoiseMismatch naming the field that
    disagrees; returns what could not be checked, and why.
    """
    block, config = _as_dict(block), configuration or {}
    shape, unchecked = list(block.get("shape") or []), []
    where = f"{config.get('pipeline_class')} at {config.get('width')}x{config.get('height')} ({config.get('model_id')})"

    def refuse(name: str, implied, because: str):
        raise NoiseMismatch(f"seed {seed}: the noise block's {name!r} is {block.get(name)!r}, but {because} "
                            f"implies {implied!r}.", name)

    if len(shape) != 4 or shape[0] != 1:
        refuse("shape", "[1, C, h, w]", "a single seed's draw")
    family = block.get("family")
    if config.get("pipeline_class"):
        implied = FAMILIES.get(config["pipeline_class"])
        if implied is None or family not in (None, implied):  # None: a schema-1 block, which did not say
            refuse("family", implied or sorted(set(FAMILIES.values())), f"pipeline {config['pipeline_class']}")
        family = implied
    elif configuration is not None:
        unchecked.append("family: the record names no pipeline class")
    if family not in IMPLIED:
        return (*unchecked, f"layout: no family to check it against ({family!r})")
    rule, layout_ = IMPLIED[family], Layout(family, tuple(shape), 1.0)
    if block.get("packing") != layout_.packing:
        refuse("packing", layout_.packing, f"family {family}")
    if configuration is not None and config.get("dtype") and block.get("pipeline_dtype") != config["dtype"]:
        refuse("pipeline_dtype", config["dtype"], where)
    _check_shape(shape, rule, config, configuration is not None, where, refuse, unchecked)
    if block.get("latents_shape") is not None and list(block["latents_shape"]) != rule.latents(shape):
        refuse("latents_shape", rule.latents(shape), f"family {family} with shape {shape}")
    scale = block.get("scale")
    if not (isinstance(scale, (int, float)) and np.isfinite(scale) and scale > 0):
        refuse("scale", 1.0 if rule.unit_scale else "a positive init_noise_sigma", f"family {family}")
    if rule.unit_scale and scale != 1.0:
        refuse("scale", 1.0, f"family {family}")
    if not rule.unit_scale and configuration is not None:
        steps = _number(config.get("num_inference_steps"))
        expected = _sd_scale(config.get("model_id"), config.get("revision"), config.get("scheduler"), steps)
        if expected is None:
            unchecked.append(f"scale: the scheduler config of {config.get('model_id')} is not on this machine")
        elif not np.isclose(scale, expected, rtol=1e-6, atol=0):
            refuse("scale", expected, f"the scheduler of {where} at {steps} steps (init_noise_sigma)")
    return tuple(unchecked)


def _check_shape(shape, rule: Implied, config: dict, configured: bool, where: str, refuse, unchecked: list) -> None:
    """The draw's spatial size (height and width, or the denoiser's sample_size) and channel count."""
    height, width = _number(config.get("height")), _number(config.get("width"))
    channels = KNOWN_CHANNELS.get(config.get("model_id"))
    denoiser = {}
    if (rule.spatial is None and config.get("model_id") not in KNOWN_SAMPLE_SIZES) or channels is None:
        denoiser = _model_file(config.get("model_id"), config.get("revision"), f"{rule.denoiser}/config.json") or {}
    if rule.spatial is not None and height and width:
        spatial = list(rule.spatial(height, width))
    elif rule.spatial is None and (denoiser.get("sample_size") or config.get("model_id") in KNOWN_SAMPLE_SIZES):
        spatial = [int(denoiser.get("sample_size") or KNOWN_SAMPLE_SIZES[config["model_id"]])] * 2
    else:
        spatial = None
        if configured:
            unchecked.append("spatial size: " + ("no height and width recorded" if rule.spatial else
                                                 f"no {rule.denoiser} config of {config.get('model_id')} here"))
    if spatial is not None and shape[2:] != spatial:
        refuse("shape", [1, shape[1], *spatial], where)
    if channels is None and denoiser.get("in_channels"):
        channels = rule.channels(int(denoiser["in_channels"]))
    if channels is None and configured:
        unchecked.append(f"channels: {config.get('model_id')} is not a known model and no {rule.denoiser} config of "
                         "it is on this machine")
    if channels is not None and shape[1] != channels:
        refuse("shape", [1, channels, *shape[2:]], where)
