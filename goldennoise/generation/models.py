"""Loading text-to-image pipelines: known models, hub ids, local folders, tiny offline.

A model name resolves to a `ModelSpec` (where to load from, and sensible
generation defaults). Everything, the offline tiny models included, goes through
`AutoPipelineForText2Image.from_pretrained`, never with `trust_remote_code`, except
folders of the project's own `DigitsPipeline` (the trained offline `digits` model,
shipped in `goldennoise.sandbox`), which AutoPipeline cannot know: those load with
`DigitsPipeline.from_pretrained`.
The dtype a record states is read off the loaded weights, not assumed.
"""

from __future__ import annotations

import gc
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from goldennoise import sandbox
from goldennoise.errors import ModelLoadError, UserError
from goldennoise.generation import hub, runtime, tiny

log = logging.getLogger(__name__)
DTYPES = ("auto", "float32", "bfloat16", "float16")
MAX_NAME = 300
DIGITS = "digits"  # the trained offline model: 8x8 handwritten digits (goldennoise.sandbox)


@dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from and the parameters it is meant to be run with."""

    name: str
    source: str  # hub repo id or local folder
    num_inference_steps: int = 28
    guidance_scale: float = 3.5
    height: int = 1024
    width: int = 1024
    max_sequence_length: int | None = None
    clip: str = "openai/clip-vit-large-patch14"  # the torchmetrics default
    weights_gb: float | None = None  # bf16 weights, for the "no GPU" warning
    revision: str | None = None
    placeholder: bool = False  # random weights: its images mean nothing (the tiny models, for the code paths)


KNOWN_MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("tiny-flux", "tiny-flux", 4, 0.0, 256, 256, 256, clip=tiny.TINY_CLIP, placeholder=True),
        ModelSpec("tiny-sd", "tiny-sd", 4, 5.0, 256, 256, None, clip=tiny.TINY_CLIP, placeholder=True),
        # Guidance 0.75: about 80% of its images are recognisable, so seeds visibly matter (sandbox/weights card).
        ModelSpec(DIGITS, DIGITS, 20, 0.75, 256, 256, None, clip=tiny.TINY_CLIP),
        ModelSpec("FLUX.1-schnell", "black-forest-labs/FLUX.1-schnell", 4, 0.0, 1024, 1024, 256, weights_gb=33.7),
        ModelSpec("FLUX.1-dev", "black-forest-labs/FLUX.1-dev", 28, 3.5, 1024, 1024, 512, weights_gb=33.7),
        ModelSpec("SD3.5-large", "stabilityai/stable-diffusion-3.5-large", 28, 3.5, 1024, 1024, 256, weights_gb=32.5),
        ModelSpec("SD3.5-medium", "stabilityai/stable-diffusion-3.5-medium", 40, 4.5, 1024, 1024, 256, weights_gb=20.0),
        ModelSpec("SDXL", "stabilityai/stable-diffusion-xl-base-1.0", 30, 5.0, 1024, 1024, weights_gb=7.0),
    ]
}


def default_model_name() -> str:
    """FLUX.1-schnell where CUDA is present, else the offline digits model (whose images mean something)."""
    return "FLUX.1-schnell" if torch.cuda.is_available() else DIGITS


def placeholder_warning(spec: ModelSpec) -> str | None:
    """What to tell people about a model with random weights (None for real models)."""
    if not spec.placeholder:
        return None
    return (f"{spec.name} has random weights: its images are noise-like placeholders, for trying the tool's code "
            "paths only. Label something meaningful with --model digits (on a CPU) or a real model on a GPU.")


def check_prompts(spec: ModelSpec, texts: list[str]) -> None:
    """Refuse, naming the first, a prompt this model cannot draw (the digits model knows ten prompts)."""
    if spec.name == DIGITS:
        from goldennoise.sandbox.prompts import digit_of  # lazy: the sandbox is only needed for the digits model

        for number, text in enumerate(texts, start=1):
            try:
                digit_of(text)
            except UserError as error:
                raise UserError(f"prompts.file, prompt {number}: {error}", "prompts.file") from None


def resolve(name: str, revision: str | None = None) -> ModelSpec:
    """Return the spec for a known name, a known repo id, a local folder or any hub id."""
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name:
        raise ModelLoadError("model: none given; choose a known model or enter a hub id 'owner/name'.", "model")
    if len(name) > MAX_NAME:
        raise ModelLoadError(f"model: {len(name)} characters is not a model id (at most {MAX_NAME}).", "model")
    spec = KNOWN_MODELS.get(name) or next((s for s in KNOWN_MODELS.values() if s.source == name), None)
    if spec is None and Path(name).expanduser().is_dir():
        folder = Path(name).expanduser().resolve()
        spec = ModelSpec(name=folder.name, source=str(folder))  # records name the folder, never its server path
    if spec is None:
        if name.count("/") != 1 or any(c.isspace() for c in name) or name.startswith((".", "/", "~")):
            # The same words whether or not a folder of that name exists: no probing the server's disk.
            raise ModelLoadError(
                f"model: {name[:60]!r} is neither a known model ({', '.join(KNOWN_MODELS)}), a hub id "
                "like 'owner/name', nor a model folder on the machine running GoldenNoise.", "model")
        spec = ModelSpec(name=name, source=name)
    if revision and revision != spec.revision:
        spec = ModelSpec(**{**spec.__dict__, "revision": revision})
    return spec


def resolve_dtype(setting: str | torch.dtype | None, device: str) -> torch.dtype:
    """The torch dtype for a setting: "auto" is bf16 on a CUDA GPU (fp16 if unsupported), fp32 on CPU."""
    if isinstance(setting, torch.dtype):
        return setting
    setting = setting or "auto"
    if setting not in DTYPES:
        raise UserError(f"dtype: {setting!r} is not one of {', '.join(DTYPES)}.", "dtype")
    if setting == "auto":
        if device == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if setting == "float16" and device != "cuda":
        raise UserError("dtype: float16 needs a CUDA GPU; on CPU use bfloat16 or float32.", "dtype")
    return getattr(torch, setting)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@dataclass
class LoadedModel:
    """A loaded pipeline with the provenance that records carry."""

    pipe: object
    spec: ModelSpec
    model_id: str
    revision: str | None
    device: str
    dtype: str  # read off the denoiser's weights after loading
    pipeline_class: str
    runtime: dict = field(default_factory=dict)  # placement and fast paths (see runtime.py)
    warnings: list[str] = field(default_factory=list)

    def info(self) -> dict:
        return {"id": self.model_id, "name": self.spec.name, "revision": self.revision, "dtype": self.dtype,
                "pipeline_class": self.pipeline_class, "device": self.device,
                "placement": self.runtime.get("placement", self.device)}


def cpu_warning(spec: ModelSpec, dtype: torch.dtype) -> str | None:
    """What loading a large model without a GPU will cost, or None for small models."""
    if not spec.weights_gb:
        return None
    gb = spec.weights_gb * (2 if dtype == torch.float32 else 1)
    return (f"No CUDA GPU: {spec.name} loads on the CPU in {dtype_name(dtype)}, about {gb:.0f} GB of memory, "
            "and each image takes minutes. Use a GPU machine, or tiny-flux to try GoldenNoise.")


def local_source(source: str) -> str:
    """The folder of a model built or shipped with GoldenNoise (tiny-*, digits), else `source` unchanged."""
    if source in tiny.PIPELINES:
        return str(tiny.tiny_model_path(source))
    if source == DIGITS:
        return str(sandbox.weights_path())
    return source


def pipeline_loader(source: str):
    """`DigitsPipeline` for a folder whose model_index.json names it, else `AutoPipelineForText2Image`."""
    index = Path(source) / "model_index.json"
    if Path(source).is_dir() and index.is_file():
        if json.loads(index.read_text(encoding="utf-8")).get("_class_name") == "DigitsPipeline":
            from goldennoise.sandbox.pipeline import DigitsPipeline  # lazy: imports diffusers, only when loading

            return DigitsPipeline
    from diffusers import AutoPipelineForText2Image

    return AutoPipelineForText2Image


def load_model(name: str, device: str | None = None, dtype: str | torch.dtype | None = "auto",
               compile_denoiser: bool = False, placement: str = "auto", revision: str | None = None,
               show_progress: bool = False) -> LoadedModel:
    """Load the text-to-image pipeline `name` (see `resolve`) ready to generate.

    Raises ModelLoadError with a message fit for the UI when it cannot be loaded.
    """
    spec = resolve(name, revision)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch_dtype = resolve_dtype(dtype, device.split(":")[0])
    warnings = []
    if device == "cpu" and (warning := cpu_warning(spec, torch_dtype)):
        log.warning(warning)
        warnings.append(warning)
    hub.loud_loading() if show_progress else hub.quiet_loading()
    source = local_source(spec.source)
    try:
        pipe = pipeline_loader(source).from_pretrained(source, dtype=torch_dtype, revision=spec.revision)
    except torch.OutOfMemoryError as error:
        raise ModelLoadError(f"Out of memory while loading {spec.name!r}: free the GPU or choose a smaller model.",
                             "model") from error
    except Exception as error:  # hub, file and config errors all mean "cannot load this"
        raise ModelLoadError(hub.explain_load_error(spec.name, error), "model") from error
    pipe.set_progress_bar_config(disable=True)
    denoiser = runtime.denoiser(pipe)
    if denoiser is not None and denoiser.dtype != torch_dtype:
        pipe.to(dtype=torch_dtype)  # a diffusers release that ignored dtype=: the record must be true
    chosen = runtime.place(pipe, device, compile_denoiser, placement)
    is_folder = Path(source).is_dir()  # then the revision is a fingerprint of the folder's files
    actual = dtype_name(denoiser.dtype) if denoiser is not None else dtype_name(torch_dtype)
    return LoadedModel(
        pipe=pipe, spec=spec, model_id=spec.name if spec.source in tiny.PIPELINES or is_folder else spec.source,
        revision=hub.folder_fingerprint(Path(source)) if is_folder else hub.hub_revision(source, spec.revision),
        device=device, dtype=actual, pipeline_class=type(pipe).__name__,
        runtime={"dtype": actual, **chosen}, warnings=warnings,
    )


def free_memory() -> None:
    """Return the memory of pipelines no longer referenced (GPU included) to the system."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def compatible_schedulers(pipe) -> list[str]:
    """Names of the scheduler classes this pipeline's scheduler declares compatible."""
    current = type(pipe.scheduler).__name__
    names = {cls.__name__ for cls in pipe.scheduler.compatibles} | {current}
    return [current] + sorted(names - {current})


def with_scheduler(pipe, name: str | None):
    """Return `pipe` itself, or a view of it sharing all weights but using scheduler `name`.

    The shared pipeline is never mutated, so one campaign's scheduler never leaks into another's.
    """
    if not name or name == type(pipe.scheduler).__name__:
        return pipe
    by_name = {cls.__name__: cls for cls in pipe.scheduler.compatibles}
    if name not in by_name:
        raise UserError(f"scheduler: {name!r} does not fit this pipeline; choose one of "
                        f"{', '.join(compatible_schedulers(pipe))}.", "scheduler")
    view = type(pipe)(**{**pipe.components, "scheduler": by_name[name].from_config(pipe.scheduler.config)})
    view.set_progress_bar_config(disable=True)
    return view
