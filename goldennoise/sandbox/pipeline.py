"""DigitsPipeline: a class-conditional pixel-space diffusion pipeline for 8x8 handwritten digits.

It reads like diffusers' own pipelines (check_inputs, encode_prompt,
prepare_latents, then one straight-line __call__) and takes their arguments, so
GoldenNoise's generation code drives it unchanged. Differences a caller should know:
- there is no VAE: the UNet denoises the 8x8 grid itself (`sample_size`), and the
  result is upscaled nearest-neighbour to height x width (multiples of 8);
- `latents=` is used exactly as the initial noise: flow matching starts at sigma 1,
  so nothing rescales it;
- guidance is classifier-free with the null class 10, defined as
  `v = v_uncond + w (v_cond - v_uncond)`: w = 0 ignores the prompt, w = 1 is the
  plain conditional model, w > 1 extrapolates. The recognisable rate rises with w
  (about 45% at 0.5, 80% at 0.75, 95% at 1), so w is the difficulty knob.

Speed: at 8x8 a UNet call is mostly Python (diffusers' forward looks up its dtype
by walking every module), so on a CPU, without gradients, the UNet runs as a
TorchScript trace of the same module (same weights, same operations; made on the
first call of each input shape and kept beside the pipeline). That halves a
batch's time; `fast_unet = False` turns it off.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from diffusers import DiffusionPipeline, FlowMatchEulerDiscreteScheduler, UNet2DModel
from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor

from goldennoise.errors import UserError
from goldennoise.sandbox import data, prompts
from goldennoise.sandbox.recipe import NULL_CLASS

OUTPUT_TYPES = ("pil", "np", "pt")


class _Denoiser(torch.nn.Module):
    """The UNet as a function of tensors only (what torch.jit.trace takes)."""

    def __init__(self, unet: UNet2DModel):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.unet(x, timestep, class_labels=labels, return_dict=False)[0]


class DigitsPipeline(DiffusionPipeline):
    """Text (a digit's name) to image (that digit, handwritten) with a class-conditional `UNet2DModel`."""

    model_cpu_offload_seq = "unet"
    fast_unet = True  # trace the UNet on CPU inference (see the module's docstring)

    def __init__(self, unet: UNet2DModel, scheduler: FlowMatchEulerDiscreteScheduler):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)
        self._traces: dict[tuple, torch.jit.ScriptModule] = {}

    @property
    def sample_size(self) -> int:
        """The side of the grid the UNet denoises (8); height and width must be multiples of it."""
        return self.unet.config.sample_size

    def check_inputs(self, prompt, height, width, num_inference_steps, guidance_scale, num_images_per_prompt,
                     output_type, latents, generator) -> None:
        """Raise a ValueError (UserError) naming the argument and the fix, before any work."""
        if not isinstance(prompt, (str, list)) or (isinstance(prompt, list) and not prompt):
            raise UserError(f"prompt: must be a string or a non-empty list of strings, got {type(prompt).__name__}.",
                            "prompt")
        for name, value in (("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value % self.sample_size:
                raise UserError(f"{name}: must be a positive multiple of {self.sample_size} (the model draws "
                                f"{self.sample_size}x{self.sample_size} and upscales), got {value!r}.", name)
        if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise UserError(f"num_inference_steps: must be a whole number >= 1, got {num_inference_steps!r}.",
                            "num_inference_steps")
        if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float)):
            raise UserError(f"guidance_scale: must be a number, got {guidance_scale!r}.", "guidance_scale")
        if isinstance(num_images_per_prompt, bool) or not isinstance(num_images_per_prompt, int) \
                or num_images_per_prompt < 1:
            raise UserError(f"num_images_per_prompt: must be a whole number >= 1, got {num_images_per_prompt!r}.",
                            "num_images_per_prompt")
        if output_type not in OUTPUT_TYPES:
            raise UserError(f"output_type: must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}.",
                            "output_type")
        batch = (1 if isinstance(prompt, str) else len(prompt)) * num_images_per_prompt
        shape = (batch, self.unet.config.in_channels, self.sample_size, self.sample_size)
        if latents is not None and tuple(latents.shape) != shape:
            raise UserError(f"latents: must have shape {shape} (batch, channels, {self.sample_size}, "
                            f"{self.sample_size}) whatever height and width, got {tuple(latents.shape)}.", "latents")
        if isinstance(generator, list) and len(generator) != batch:
            raise UserError(f"generator: a list needs one generator per image ({batch}), got {len(generator)}.",
                            "generator")

    def encode_prompt(self, prompt: str | list[str], num_images_per_prompt: int, device) -> torch.Tensor:
        """Class labels (batch,) for the prompts, each repeated `num_images_per_prompt` times."""
        texts = [prompt] if isinstance(prompt, str) else prompt
        labels = torch.tensor([prompts.digit_of(text) for text in texts], dtype=torch.long, device=device)
        return labels.repeat_interleave(num_images_per_prompt)

    def prepare_latents(self, batch_size: int, num_channels: int, size: int, dtype, device, generator,
                        latents: torch.Tensor | None = None) -> torch.Tensor:
        """The initial noise (batch, C, size, size): `latents` as given (moved and cast), else drawn from `generator`."""
        if latents is not None:
            return latents.to(device=device, dtype=dtype)
        return randn_tensor((batch_size, num_channels, size, size), generator=generator, device=device, dtype=dtype)

    def velocity(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, guidance_scale: float) -> torch.Tensor:
        """v_uncond + w (v_cond - v_uncond); one UNet call on the doubled batch unless w makes a branch unneeded."""
        timestep = t.expand(x.shape[0]).float()  # float32 even for a bf16 UNet: 1000 * sigma needs the precision
        if guidance_scale == 1:
            return self.denoiser(x, timestep, labels)
        null = torch.full_like(labels, NULL_CLASS)
        if guidance_scale == 0:
            return self.denoiser(x, timestep, null)
        both = self.denoiser(torch.cat([x, x]), torch.cat([timestep, timestep]), torch.cat([labels, null]))
        cond, uncond = both.chunk(2)
        return uncond + guidance_scale * (cond - uncond)

    def denoiser(self, x: torch.Tensor, timestep: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The UNet's output for (x, timestep, labels): the module itself, or on a CPU without gradients its trace."""
        unet = self.unet
        if (not self.fast_unet or torch.is_grad_enabled() or unet.training or x.device.type != "cpu"
                or getattr(unet, "_hf_hook", None) is not None):
            return unet(x, timestep, class_labels=labels).sample
        weight = unet.conv_in.weight  # a trace holds the weights it was made with: moved or reloaded ones make another
        key = (tuple(x.shape), x.dtype, weight.dtype, weight.data_ptr(), weight._version)
        traced = self._traces.get(key)
        if traced is None:
            with warnings.catch_warnings():  # the trace's notes on Python branches: none depends on the values here
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(_Denoiser(unet), (x, timestep, labels), check_trace=False)
            if len(self._traces) >= 8:
                self._traces.clear()
            self._traces[key] = traced
        return traced(x, timestep, labels)

    @torch.no_grad()
    def __call__(self, prompt: str | list[str], num_inference_steps: int = 20, guidance_scale: float = 0.75,
                 height: int | None = None, width: int | None = None,
                 generator: torch.Generator | list[torch.Generator] | None = None,
                 latents: torch.Tensor | None = None, num_images_per_prompt: int = 1, output_type: str = "pil",
                 return_dict: bool = True):
        """Draw one handwritten digit per prompt (and per `num_images_per_prompt`).

        Returns ImagePipelineOutput(images) (or a tuple with return_dict=False): a list of
        PIL images, an (N, H, W, 3) float array in [0, 1] ("np"), or an (N, 3, H, W) float
        tensor in [0, 1] ("pt"). height/width default to the 8x8 grid.
        """
        height = self.sample_size if height is None else height
        width = self.sample_size if width is None else width
        # 1. Check inputs (every error names its argument) and map the prompts to classes.
        self.check_inputs(prompt, height, width, num_inference_steps, guidance_scale, num_images_per_prompt,
                          output_type, latents, generator)
        device = self._execution_device
        labels = self.encode_prompt(prompt, num_images_per_prompt, device)
        # 2. Initial noise at sigma 1 (flow matching: no init_noise_sigma scaling).
        x = self.prepare_latents(len(labels), self.unet.config.in_channels, self.sample_size, self.unet.dtype,
                                 device, generator, latents)
        # 3. Timesteps: sigma 1 -> 0, fed to the UNet as 1000 * sigma, as in training.
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        # 4. Euler steps along the guided velocity.
        for t in self.progress_bar(self.scheduler.timesteps):
            velocity = self.velocity(x, t, labels, float(guidance_scale))
            x = self.scheduler.step(velocity, t, x, return_dict=False)[0]
        # 5. To images in [0, 1], grey to RGB, upscaled nearest-neighbour (integer factors: exact copies).
        images = data.to_unit(x.float()).repeat(1, 3, 1, 1)
        images = F.interpolate(images, size=(height, width), mode="nearest")
        self.maybe_free_model_hooks()
        if output_type != "pt":
            images = images.permute(0, 2, 3, 1).cpu().numpy()
            images = VaeImageProcessor.numpy_to_pil(images) if output_type == "pil" else images
        return ImagePipelineOutput(images=images) if return_dict else (images,)
