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
"""

from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass

import numpy as np
import torch

from goldennoise.errors import NoiseMismatch, UnsupportedPipeline, UserError

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


def provenance(seed: int, noise: torch.Tensor, lay: Layout, dtype: torch.dtype) -> dict:
    """The record's noise block for one seed: enough to re-make and verify its initial latents."""
    initial = to_initial(to_passed(noise, lay.family, dtype), lay.family, lay.scale)
    dtype_text = str(dtype).removeprefix("torch.")
    x = noise.double()
    return {
        "generator": GENERATOR_DEVICE, "dtype": DRAW_DTYPE, "shape": list(noise.shape),
        "family": lay.family, "packing": lay.packing, "scale": lay.scale, "pipeline_dtype": dtype_text,
        "order": ORDER[lay.family].format(dtype=dtype_text),
        "sha256": tensor_sha256(noise),
        "latents_shape": list(initial.shape), "latents_sha256": tensor_sha256(initial),
        "fingerprint": {"draw": _sample(noise, FINGERPRINT_DRAW), "mean": float(x.mean()), "std": float(x.std()),
                        "latents": _sample(initial, FINGERPRINT_LATENTS)},
    }


@dataclass(frozen=True)
class Verification:
    """How a re-made noise matched its record: "exact" (hashes equal) or "tolerance" (fingerprint)."""

    status: str
    max_difference: float = 0.0


def _dtype(name: str) -> torch.dtype:
    return getattr(torch, name)


def _field(block, name, default=None):
    return getattr(block, name, None) if not isinstance(block, dict) else block.get(name, default)


def _as_dict(block) -> dict:
    return block if isinstance(block, dict) else block.model_dump()


def verify(seed: int, block, noise: torch.Tensor | None = None) -> Verification:
    """Check a re-made draw (made now if not given) against a record's noise block.

    Exact when the draw's sha256 matches; else (another CPU's kernels) within the
    fingerprint's tolerance; else NoiseMismatch.
    """
    block = _as_dict(block)
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


def _within_tolerance(seed: int, noise: torch.Tensor, block: dict) -> Verification:
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


def remake_noise(seed: int, block) -> torch.Tensor:
    """The float32 draw `(1, C, h, w)` of a record's noise block, verified (see `verify`)."""
    noise = initial_noise(seed, tuple(_field(block, "shape")))
    verify(seed, block, noise)
    return noise


def remake_latents(seed: int, block, dtype: torch.dtype | str | None = None, stage: str = "initial") -> torch.Tensor:
    """The exact tensor the pipeline started from (stage "initial") or was passed (stage "passed").

    `dtype` defaults to the recorded pipeline dtype; another dtype gives the same
    construction in that dtype (e.g. to run the recorded noise on a float32 pipeline).
    """
    block = _as_dict(block)
    if block.get("family") is None:
        raise UserError("noise: this record (schema 1) does not name its pipeline family; use remake_noise and "
                        "pack it yourself as its 'packing' says.", "noise")
    noise = remake_noise(seed, block)
    dtype = _dtype(dtype) if isinstance(dtype, str) else dtype or _dtype(block["pipeline_dtype"])
    passed = to_passed(noise, block["family"], dtype)
    if stage == "passed":
        return passed
    if stage != "initial":
        raise UserError(f"stage: {stage!r} is not 'initial' or 'passed'.", "stage")
    return to_initial(passed, block["family"], block["scale"])
