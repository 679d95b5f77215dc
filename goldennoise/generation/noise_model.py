"""A learned noise-prompt network (NPNet style): a seed's noise and the prompt's embedding -> a better noise.

`NoiseNet` maps a float32 draw x_T `(N, C, h, w)` and the pipeline's own prompt
embedding `(N, D)` to x_T + t(prompt) + r(x_T, prompt): t is a per-prompt template, a
`grid` x `grid` map per channel resized to h x w (on the digits sandbox, re-denoise's
change is 97% one direction per digit), and r comes from two 3x3 convolutions
modulated by the prompt (FiLM: a scale and a shift per hidden channel). Both end in
layers that start at zero, so a fresh network is the identity. The output is rescaled
to the input's per-sample standard deviation, so it keeps the noise's norm statistics
(a sampler expects unit-variance noise).

Prompt embeddings are the pipeline's own (`prompt_embedding`): the digits UNet's class
embedding; SD's text encoder output averaged over tokens; FLUX.1's pooled CLIP
projection. A checkpoint is one safetensors file whose metadata holds the network's
configuration and the pipeline class it was trained for; its sha256 names it in every
record made with it (`load` reads it once per process and path).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import torch
from torch import nn

from goldennoise.errors import UserError
from goldennoise.ids import file_sha256

FORMAT = "goldennoise-noise-model-1"
_CACHE: dict[tuple, tuple] = {}
_LOCK = threading.Lock()


class NoiseNet(nn.Module):
    """x_T + r(x_T, prompt), renormalised to x_T's per-sample standard deviation."""

    def __init__(self, channels: int, embed_dim: int, width: int = 32, grid: int = 8):
        super().__init__()
        self.config = {"channels": channels, "embed_dim": embed_dim, "width": width, "grid": grid}
        self.template = nn.Linear(embed_dim, channels * grid * grid)
        nn.init.zeros_(self.template.weight)
        nn.init.zeros_(self.template.bias)
        self.inp = nn.Conv2d(channels, width, 3, padding=1)
        self.film = nn.Linear(embed_dim, 2 * width)
        self.mid = nn.Conv2d(width, width, 3, padding=1)
        self.out = nn.Conv2d(width, channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(embedding).chunk(2, dim=1)  # (N, width) each
        h = torch.nn.functional.silu(self.inp(x))
        h = h * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        h = torch.nn.functional.silu(self.mid(h))
        g = self.config["grid"]
        template = self.template(embedding).view(len(x), x.shape[1], g, g)
        if template.shape[-2:] != x.shape[-2:]:
            template = torch.nn.functional.interpolate(template, size=x.shape[-2:], mode="bilinear",
                                                       align_corners=False)
        y = x + template + self.out(h)
        dims = tuple(range(1, x.dim()))
        return y * (x.std(dim=dims, keepdim=True) / y.std(dim=dims, keepdim=True).clamp_min(1e-6))


@torch.no_grad()
def prompt_embedding(pipe, prompts: list[str], max_sequence_length: int = 512) -> torch.Tensor:
    """The pipeline's own embedding of each prompt, float32 `(N, D)` on the CPU."""
    name = type(pipe).__name__
    if name == "DigitsPipeline":
        labels = pipe.encode_prompt(prompts, 1, pipe._execution_device)  # offloaded modules sit on "meta"
        return pipe.unet.class_embedding(labels).float().cpu()
    if name == "StableDiffusionPipeline":
        embeds = pipe.encode_prompt(prompts, pipe._execution_device, 1, False)[0]
        return embeds.float().mean(dim=1).cpu()
    if name == "FluxPipeline":
        pooled = pipe.encode_prompt(prompts, None, pipe._execution_device, 1,
                                    max_sequence_length=max_sequence_length)[1]
        return pooled.float().cpu()
    raise UserError(f"noise model: prompt embeddings are written for the digits, SD 1.x/2.x and FLUX.1 pipelines, "
                    f"not {name}.", "noise")


def save(net: NoiseNet, path: str | Path, pipeline_class: str, card: dict) -> str:
    """Write the checkpoint (safetensors, configuration and card in its metadata); return its sha256."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": FORMAT, "config": json.dumps(net.config), "pipeline_class": pipeline_class,
                "card": json.dumps(card, sort_keys=True)}
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path), metadata=metadata)
    return file_sha256(path)


def load(path: str | Path) -> tuple[NoiseNet, dict]:
    """(the network in eval mode, {"sha256", "pipeline_class", "card", "config"}), cached per path and content."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise UserError(f"noise.checkpoint: {path.name} is not a file (train one with `goldennoise train`).",
                        "noise.checkpoint")
    sha = file_sha256(path)
    with _LOCK:
        if (str(path), sha) in _CACHE:
            return _CACHE[(str(path), sha)]
    try:
        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata() or {}
        if metadata.get("format") != FORMAT:
            raise ValueError("not a GoldenNoise noise model")
        config = json.loads(metadata["config"])
        net = NoiseNet(**config)
        net.load_state_dict(load_file(str(path)))
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise UserError(f"noise.checkpoint: {path.name} is not a GoldenNoise noise model ({error}).",
                        "noise.checkpoint") from None
    net.eval()
    info = {"sha256": sha, "pipeline_class": metadata["pipeline_class"], "config": config,
            "card": json.loads(metadata.get("card") or "{}")}
    with _LOCK:
        _CACHE[(str(path), sha)] = (net, info)
    return net, info


@torch.no_grad()
def apply(net: NoiseNet, pipe, noises: torch.Tensor, prompts: list[str],
          max_sequence_length: int = 512) -> torch.Tensor:
    """The network's noises for float32 draws `(N, C, h, w)` and one prompt per draw."""
    embedding = prompt_embedding(pipe, prompts, max_sequence_length)
    if embedding.shape[1] != net.config["embed_dim"] or noises.shape[1] != net.config["channels"]:
        raise UserError(f"noise.checkpoint: trained for {net.config['channels']} channels and {net.config['embed_dim']}"
                        f"-dimensional prompts, this model gives {noises.shape[1]} and {embedding.shape[1]}.",
                        "noise.checkpoint")
    return net(noises.float(), embedding).float()
