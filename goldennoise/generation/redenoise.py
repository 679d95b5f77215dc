"""Re-denoise sampling (NPNet): a seed's noise x_T, one denoising step with guidance, that step inverted without it.

NPNet (Zhou et al., ICCV 2025; `training/dataset_collection.py` and its SDXL
pipeline's `forward_ours`) makes its noise pairs (x_T, x'_T) so:

1. at the first timestep t0 the guided model output (guidance w, 5.5 there) moves
   x_T one DDIM step to x_t1;
2. the model is asked again, at x_t1 but still at timestep t0, with the inversion
   guidance (1: the conditional branch alone);
3. the DDIM step is inverted with that output, back to the level of t0: x'_T.

If the model's output did not depend on where it is asked and both guidances were
equal, x'_T would be x_T exactly (tested against diffusers' DDIM schedulers). What
changes the noise is the difference of the two outputs: about
(w - 1) * (cond - uncond) times the step's size, the prompt's direction.

Per family (`latents.FAMILIES`); all arithmetic in float32 on the seed's float32
draw `(N, C, h, w)`, the model asked in the pipeline's dtype:

| family | step and inverse | guided / inverted condition |
|--------|------------------|-----------------------------|
| sd     | DDIM (the pipeline's betas, whatever sampler it uses afterwards): x0 = (x - sqrt(1-a) eps) / sqrt(a), a v- or sample-prediction output turned into eps at t0; a zero-terminal-SNR schedule is refused | CFG at w / CFG at the inversion guidance (1: conditional only) |
| flux1  | flow-matching Euler on the pipeline's own first sigmas (shift included): x1 = x + (s1 - s0) v, inverse x' = x1 - (s1 - s0) v' | FLUX.1-schnell has no classifier-free guidance: the prompt (guidance 1) / the empty prompt (inversion guidance 0) by default, so the null prompt plays the unguided branch; other values are true CFG against the empty prompt (FluxPipeline's `true_cfg_scale`); a guidance-embedding model (FLUX.1-dev) gets `embedded_guidance` in both |
| pixel  | flow-matching Euler (the digits sandbox) | CFG at w / CFG at the inversion guidance |

SDXL (added text and time conditions) and SD3 are refused with a message, not
approximated. One deliberate difference from NPNet's code: it passes `timesteps[1]`
to `DDIMInverseScheduler.step`, which moves a sample from the level of t1 - stride
to t1, so its x'_T sits at the level of t1 while the pipeline starts it at t0; here
the inverse lands at t0, so x'_T is a noise at the level the pipeline expects
(`test_redenoise.py` shows both).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from goldennoise.errors import UnsupportedPipeline, UserError
from goldennoise.generation import latents

REFUSED = {
    "StableDiffusionXLPipeline": "SDXL's added text and time conditions",
    "StableDiffusion3Pipeline": "SD3's joint transformer",
    "Flux2Pipeline": "FLUX.2's transformer",
    "Flux2KleinPipeline": "FLUX.2's transformer",
}


@dataclass(frozen=True)
class Redenoise:
    """The parameters a re-denoised noise is made with (a record's noise source names them all)."""

    guidance_scale: float = 4.0  # the denoising step's guidance (NPNet: 5.5 for SDXL)
    inversion_guidance_scale: float = 1.0  # the inverse step's (NPNet: 1.0, the conditional branch alone)
    num_inference_steps: int = 20  # sets the first step's size: t0 -> t1 of this many steps
    embedded_guidance: float = 3.5  # only for a guidance-embedding model (FLUX.1-dev), in both steps

    @classmethod
    def for_family(cls, family: str, **changes) -> Redenoise:
        """NPNet's defaults for a family: guided 4 / inverted 1 with CFG; for FLUX.1 (no CFG) the prompt / the
        empty prompt, i.e. guidance 1 / inversion 0."""
        base = cls(guidance_scale=1.0, inversion_guidance_scale=0.0) if family == "flux1" else cls()
        return replace(base, **changes)

    def check(self) -> Redenoise:
        """Self, or a UserError naming the parameter."""
        for name in ("guidance_scale", "inversion_guidance_scale", "embedded_guidance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
                raise UserError(f"redenoise {name}: must be a number in 0..100, got {value!r}.", name)
        steps = self.num_inference_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or not 2 <= steps <= 1000:
            raise UserError(f"redenoise num_inference_steps: must be a whole number in 2..1000, got {steps!r}.",
                            "num_inference_steps")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def flow_pair(velocity, x: torch.Tensor, sigma0: float, sigma1: float) -> torch.Tensor:
    """x'_T from x_T for flow matching. `velocity(x, inverse)` is the model's output (guided, or as inverted)."""
    x1 = x + (sigma1 - sigma0) * velocity(x, False)
    return x1 - (sigma1 - sigma0) * velocity(x1, True)


def ddim_pair(eps, x: torch.Tensor, alpha0: float, alpha1: float) -> torch.Tensor:
    """x'_T from x_T for DDIM between cumulative alphas alpha0 (t0) and alpha1 (t1). `eps(x, inverse)` as above."""
    e = eps(x, False)
    x1 = math.sqrt(alpha1) * (x - math.sqrt(1 - alpha0) * e) / math.sqrt(alpha0) + math.sqrt(1 - alpha1) * e
    e = eps(x1, True)
    return math.sqrt(alpha0) * (x1 - math.sqrt(1 - alpha1) * e) / math.sqrt(alpha1) + math.sqrt(1 - alpha0) * e


def ddim_levels(scheduler_config, num_inference_steps: int) -> tuple[int, int, float, float]:
    """(t0, t1, alpha0, alpha1): DDIM's first timestep for that many steps, the next, and their cumulative alphas."""
    from diffusers import DDIMScheduler

    # clip_sample off: DDIM's default clamps x0 to [-1, 1], which SD's own configurations switch off.
    ddim = DDIMScheduler.from_config(scheduler_config, clip_sample=False)
    ddim.set_timesteps(num_inference_steps)
    t0 = int(ddim.timesteps[0])
    t1 = t0 - ddim.config.num_train_timesteps // num_inference_steps  # what DDIMScheduler.step moves to
    alphas = ddim.alphas_cumprod
    alpha1 = float(alphas[t1]) if t1 >= 0 else float(ddim.final_alpha_cumprod)
    return t0, t1, float(alphas[t0]), alpha1


def flow_sigmas(pipe, num_inference_steps: int, image_seq_len: int | None = None) -> tuple[float, float]:
    """The first two sigmas the pipeline's own scheduler (a fresh copy) uses for that many steps."""
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    if image_seq_len is None:  # the digits pipeline: plain set_timesteps
        scheduler.set_timesteps(num_inference_steps)
    else:  # FluxPipeline's own sigmas and shift
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift

        config = scheduler.config
        mu = calculate_shift(image_seq_len, config.get("base_image_seq_len", 256),
                             config.get("max_image_seq_len", 4096), config.get("base_shift", 0.5),
                             config.get("max_shift", 1.15))
        sigmas = np.linspace(1.0, 1 / num_inference_steps, num_inference_steps)
        scheduler.set_timesteps(sigmas=sigmas, mu=mu)
    return float(scheduler.sigmas[0]), float(scheduler.sigmas[1])


def _prompts(prompt: str | list[str], count: int) -> list[str]:
    prompts = [prompt] * count if isinstance(prompt, str) else list(prompt)
    if len(prompts) != count:
        raise UserError(f"prompt: one per noise ({count}), got {len(prompts)}.", "prompt")
    return prompts


def _pixel(pipe, noises: torch.Tensor, prompts: list[str], params: Redenoise) -> torch.Tensor:
    device, dtype = pipe._execution_device, pipe.unet.dtype
    labels = pipe.encode_prompt(prompts, 1, device)
    sigma0, sigma1 = flow_sigmas(pipe, params.num_inference_steps)
    t = torch.tensor(sigma0 * 1000, device=device)  # the model is asked at t0 both times, as NPNet does

    def velocity(x, inverse):
        w = params.inversion_guidance_scale if inverse else params.guidance_scale
        return pipe.velocity(x.to(device, dtype), t, labels, float(w)).float().cpu()

    return flow_pair(velocity, noises, sigma0, sigma1)


def _sd(pipe, noises: torch.Tensor, prompts: list[str], params: Redenoise) -> torch.Tensor:
    device, dtype = pipe._execution_device, pipe.unet.dtype  # the execution device: offloaded modules sit on "meta"
    t0, _, alpha0, alpha1 = ddim_levels(pipe.scheduler.config, params.num_inference_steps)
    if not 0 < alpha0 < 1 or not 0 < alpha1 < 1:
        raise UserError(f"noise source redenoise: this scheduler's first level has cumulative alpha {alpha0:g} (a "
                        "zero-terminal-SNR schedule): DDIM cannot invert from it. Use noise.source = \"seed\".",
                        "noise")
    prediction = pipe.scheduler.config.get("prediction_type", "epsilon")
    if prediction not in ("epsilon", "v_prediction", "sample"):
        raise UserError(f"noise source redenoise: prediction type {prediction!r} is not handled.", "noise")
    cond, uncond = pipe.encode_prompt(prompts, device, 1, True)
    timestep = torch.tensor(t0, device=device)

    def eps(x, inverse):
        w = params.inversion_guidance_scale if inverse else params.guidance_scale
        z = x.to(device, dtype)
        both = pipe.unet(torch.cat([z, z]), timestep, encoder_hidden_states=torch.cat([uncond, cond])).sample
        out_uncond, out_cond = both.float().cpu().chunk(2)
        out = out_uncond + w * (out_cond - out_uncond)
        if prediction == "v_prediction":  # the model is asked at t0 both times: eps = sqrt(a0) v + sqrt(1 - a0) x
            return math.sqrt(alpha0) * out + math.sqrt(1 - alpha0) * x
        if prediction == "sample":
            return (x - math.sqrt(alpha0) * out) / math.sqrt(1 - alpha0)
        return out

    return ddim_pair(eps, noises, alpha0, alpha1)


def _flux1(pipe, noises: torch.Tensor, prompts: list[str], params: Redenoise,
           max_sequence_length: int = 512) -> torch.Tensor:
    device, dtype = pipe._execution_device, pipe.transformer.dtype
    n, c, h, width = noises.shape
    embeds, pooled, text_ids = pipe.encode_prompt(prompts, None, device, 1, max_sequence_length=max_sequence_length)
    null, null_pooled, _ = pipe.encode_prompt([""] * n, None, device, 1, max_sequence_length=max_sequence_length)
    image_ids = pipe._prepare_latent_image_ids(n, h // 2, width // 2, device, dtype)
    sigma0, sigma1 = flow_sigmas(pipe, params.num_inference_steps, image_seq_len=(h // 2) * (width // 2))
    timestep = torch.full((n,), sigma0, device=device, dtype=dtype)  # FluxPipeline passes t / 1000 = sigma
    embedded = (torch.full((n,), float(params.embedded_guidance), device=device, dtype=torch.float32)
                if pipe.transformer.config.guidance_embeds else None)

    def branch(packed, conditional):
        return pipe.transformer(hidden_states=packed, timestep=timestep, guidance=embedded,
                                pooled_projections=pooled if conditional else null_pooled,
                                encoder_hidden_states=embeds if conditional else null, txt_ids=text_ids,
                                img_ids=image_ids, return_dict=False)[0].float()

    def velocity(x, inverse):
        w = params.inversion_guidance_scale if inverse else params.guidance_scale
        packed = latents.pack_2x2(x).to(device, dtype)
        if w == 1:
            out = branch(packed, True)
        elif w == 0:
            out = branch(packed, False)
        else:  # true classifier-free guidance against the empty prompt, as FluxPipeline's true_cfg_scale
            uncond = branch(packed, False)
            out = uncond + w * (branch(packed, True) - uncond)
        return unpack_2x2(out.cpu(), c, h, width)

    return flow_pair(velocity, noises, sigma0, sigma1)


def unpack_2x2(packed: torch.Tensor, channels: int, h: int, w: int) -> torch.Tensor:
    """The inverse of `latents.pack_2x2`: (B, h/2 * w/2, 4C) -> (B, C, h, w)."""
    b = packed.shape[0]
    return packed.view(b, h // 2, w // 2, channels, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, channels, h, w)


@torch.no_grad()
def redenoise(pipe, noises: torch.Tensor, prompt: str | list[str], params: Redenoise,
              max_sequence_length: int = 512) -> torch.Tensor:
    """The re-denoised float32 noises `(N, C, h, w)` of float32 draws `noises` (the draw layout of `latents`).

    `prompt` is one prompt for all, or one per noise. Raises UnsupportedPipeline for a
    family this module does not make (the message names it), UserError for a bad parameter.
    """
    params.check()
    name = type(pipe).__name__
    if name in REFUSED:
        raise UnsupportedPipeline(f"noise source redenoise: {REFUSED[name]} are not handled yet ({name}); "
                                  "use the seed source for this model, or a FLUX.1, SD 1.x/2.x or digits model.",
                                  "noise")
    family = latents.family_of(pipe)
    noises = noises.float().cpu()
    prompts = _prompts(prompt, len(noises))
    if family == "pixel":
        return _pixel(pipe, noises, prompts, params)
    if family == "sd":
        return _sd(pipe, noises, prompts, params)
    return _flux1(pipe, noises, prompts, params, max_sequence_length)
