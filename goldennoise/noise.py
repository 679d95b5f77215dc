"""The initial latent noise of a seed: made in one place, hashed, re-made from a record.

diffusers pipelines draw their starting latents with `randn_tensor(shape,
generator=...)`. Given one CPU `torch.Generator` per seed, that is exactly
`torch.randn((1, C, h, w), generator=Generator("cpu").manual_seed(seed))` per
image, whatever the batch, device or position, so the seed alone fixes the noise.
FLUX then packs the `(1, C, h, w)` noise into 2x2 patches `(1, h*w/4, 4C)`; other
pipelines use it as is. Records carry the unpacked shape and a sha256 of its
little-endian float32 bytes, so anyone can check a noise with plain torch.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

GENERATOR_DEVICE = "cpu"
NOISE_DTYPE = "float32"
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed accepts 64-bit values; keep them signed-safe


def check_seed(seed: int) -> int:
    """Return `seed` as an int, or raise ValueError if it is not a usable seed."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"A seed must be a whole number, got {seed!r}.")
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"A seed must lie in 0..{MAX_SEED}, got {seed}.")
    return int(seed)


def generator(seed: int) -> torch.Generator:
    """The CPU generator the pipeline is given for `seed`."""
    return torch.Generator(GENERATOR_DEVICE).manual_seed(check_seed(seed))


def initial_noise(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Return the unpacked initial noise `(1, C, h, w)` float32 for `seed`."""
    return torch.randn(tuple(shape), generator=generator(seed), dtype=torch.float32)


def noise_sha256(noise: torch.Tensor) -> str:
    """sha256 of the noise as contiguous little-endian float32 bytes."""
    array = noise.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4", copy=False)
    return hashlib.sha256(array.tobytes()).hexdigest()


def latent_layout(pipe, height: int, width: int) -> tuple[tuple[int, int, int, int], str]:
    """Return `(unpacked noise shape, packing)` that `pipe` uses at `height` x `width`.

    packing is "flux-2x2" for FLUX-family pipelines (latents packed into 2x2
    patches), "none" for pipelines that denoise the `(1, C, h, w)` tensor as is.
    """
    scale = pipe.vae_scale_factor
    if hasattr(pipe, "_pack_latents"):
        channels = pipe.transformer.config.in_channels // 4
        # FLUX floors to a multiple of 2 x the VAE factor so latents pack evenly.
        return (1, channels, 2 * (height // (scale * 2)), 2 * (width // (scale * 2))), "flux-2x2"
    denoiser = getattr(pipe, "unet", None) or pipe.transformer
    return (1, denoiser.config.in_channels, height // scale, width // scale), "none"


def pack(noise: torch.Tensor, packing: str) -> torch.Tensor:
    """Return the noise as the pipeline consumes it (`latents=`)."""
    if packing == "none":
        return noise
    if packing == "flux-2x2":
        b, c, h, w = noise.shape
        packed = noise.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
        return packed.reshape(b, (h // 2) * (w // 2), c * 4)
    raise ValueError(f"Unknown packing {packing!r}; expected 'flux-2x2' or 'none'.")


def noise_block(seed: int, shape: tuple[int, ...], packing: str, pipeline_dtype: str, scale: float = 1.0) -> dict:
    """The record's description of a seed's noise, enough to re-make and verify it.

    `scale` is what the pipeline multiplies the noise by before denoising (the
    scheduler's `init_noise_sigma`: 1 for flow matching, about 14.6 for SD's Euler).
    """
    return {
        "generator": GENERATOR_DEVICE,
        "dtype": NOISE_DTYPE,
        "shape": list(shape),
        "packing": packing,
        "scale": scale,
        # The pipeline casts the float32 draw to its own dtype (bf16 on GPU); on a CPU
        # generator a bf16 draw equals the float32 draw cast to bf16.
        "pipeline_dtype": pipeline_dtype,
        "sha256": noise_sha256(initial_noise(seed, shape)),
    }


class NoiseMismatch(ValueError):
    """The re-made noise does not hash to what the record says."""


def remake_noise(seed: int, block: dict, packed: bool = False) -> torch.Tensor:
    """Re-make a seed's noise from its record block, verified against the recorded sha256.

    packed=False: the unpacked `(1, C, h, w)` draw. packed=True: the initial latents
    exactly as the pipeline denoised them (packed, and multiplied by `scale`).
    """
    if block.get("generator") != GENERATOR_DEVICE or block.get("dtype") != NOISE_DTYPE:
        raise ValueError(f"Cannot re-make noise drawn on {block.get('generator')!r} as {block.get('dtype')!r}.")
    noise = initial_noise(seed, tuple(block["shape"]))
    digest = noise_sha256(noise)
    if digest != block["sha256"]:
        raise NoiseMismatch(f"Seed {seed}: noise hashes to {digest[:12]}…, record says {block['sha256'][:12]}….")
    if not packed:
        return noise
    return pack(noise, block.get("packing", "none")) * block.get("scale", 1.0)
