"""How a loaded pipeline is placed and sped up on the device: the GPU fast paths.

Each choice is made once, at load time (never per request on the shared
pipeline), and returned as a dict that every record carries in
`parameters.runtime`, so a judgement says how its images were made:
- placement: the whole pipeline on the GPU when it fits in free memory; else model
  CPU offload (one component on the GPU at a time: FLUX.1-schnell on a 24 GB card);
  else sequential offload (layer by layer: slow, but it runs);
- VAE slicing when memory is short (decodes a batch one image at a time);
- `torch.compile` of the denoiser behind a flag: regional (`compile_repeated_blocks`,
  the repeated transformer blocks only, so start-up stays short) where the model
  supports it, whole-module otherwise.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)
HEADROOM = 1.25  # whole pipeline on the GPU: weights x this must fit (activations, VAE decode, CUDA context)
OFFLOAD_ACTIVATIONS = 1.0e9  # model offload holds one component at a time, plus about this for activations


def component_bytes(pipe) -> dict[str, int]:
    """Bytes of parameters and buffers of each torch module in the pipeline."""
    sizes = {}
    for name, module in pipe.components.items():
        if isinstance(module, torch.nn.Module):
            tensors = list(module.parameters()) + list(module.buffers())
            sizes[name] = sum(t.numel() * t.element_size() for t in tensors)
    return sizes


def choose_placement(sizes: dict[str, int], free_bytes: int) -> str:
    """"gpu", "model_offload" or "sequential_offload" for components of `sizes` in `free_bytes`."""
    if sum(sizes.values()) * HEADROOM <= free_bytes:
        return "gpu"
    if max(sizes.values(), default=0) * 1.02 + OFFLOAD_ACTIVATIONS <= free_bytes:
        return "model_offload"  # FLUX.1-schnell's 23.8 GB transformer on a 24 GiB card (about 25.3 GB free)
    return "sequential_offload"


def denoiser(pipe):
    return getattr(pipe, "transformer", None) or getattr(pipe, "unet", None)


PLACEMENTS = ("auto", "gpu", "model_offload", "sequential_offload")


def place(pipe, device: str, compile_denoiser: bool = False, placement: str = "auto") -> dict:
    """Put `pipe` on `device` with the fast paths that fit; return what was chosen.

    `placement` "auto" decides by free GPU memory; the others force a mode.
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}, got {placement!r}.")
    runtime = {"device": device, "placement": device, "vae_slicing": False, "compile": "off",
               "batched_call": True, "clip_on_device_tensors": device == "cuda"}
    if device == "cuda":
        free, _ = torch.cuda.mem_get_info()
        sizes = component_bytes(pipe)
        runtime["placement"] = choose_placement(sizes, free) if placement == "auto" else placement
        runtime["weights_gb"] = round(sum(sizes.values()) / 1e9, 2)
        if runtime["placement"] == "gpu":
            pipe.to("cuda")
        elif runtime["placement"] == "model_offload":
            pipe.enable_model_cpu_offload()
        else:
            pipe.enable_sequential_cpu_offload()
        if runtime["placement"] != "gpu" and hasattr(pipe, "vae"):
            pipe.vae.enable_slicing()
            runtime["vae_slicing"] = True
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 leftovers (norms, VAE) on tensor cores
        log.info("pipeline on cuda: %s (weights %.1f GB, free %.1f GB)", runtime["placement"],
                 sum(sizes.values()) / 1e9, free / 1e9)
    else:
        pipe.to(device)
    if compile_denoiser:
        runtime["compile"] = compile_module(denoiser(pipe))
    return runtime


def compile_module(module) -> str:
    """Compile the denoiser; regional where the model declares repeated blocks."""
    if getattr(module, "_repeated_blocks", None) and hasattr(module, "compile_repeated_blocks"):
        module.compile_repeated_blocks(fullgraph=True)
        return "regional"
    module.compile(fullgraph=False)
    return "full"
