"""Loading text-to-image pipelines: known models, hub ids, local folders, tiny offline.

A model name resolves to a `ModelSpec` (where to load from, and sensible
generation defaults). Everything, the offline tiny model included, goes through
`AutoPipelineForText2Image.from_pretrained`, never with `trust_remote_code`.
"""

from __future__ import annotations

import gc
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from goldennoise import tiny


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


KNOWN_MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("tiny-flux", "tiny-flux", 4, 0.0, 256, 256, 256, clip=tiny.TINY_CLIP),
        ModelSpec("tiny-sd", "tiny-sd", 4, 5.0, 256, 256, None, clip=tiny.TINY_CLIP),
        ModelSpec("FLUX.1-schnell", "black-forest-labs/FLUX.1-schnell", 4, 0.0, 1024, 1024, 256),
        ModelSpec("FLUX.1-dev", "black-forest-labs/FLUX.1-dev", 28, 3.5, 1024, 1024, 512),
        ModelSpec("SD3.5-large", "stabilityai/stable-diffusion-3.5-large", 28, 3.5, 1024, 1024, 256),
        ModelSpec("SD3.5-medium", "stabilityai/stable-diffusion-3.5-medium", 40, 4.5, 1024, 1024, 256),
        ModelSpec("SDXL", "stabilityai/stable-diffusion-xl-base-1.0", 30, 5.0, 1024, 1024),
    ]
}


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says why and what to try."""


def default_model_name() -> str:
    """FLUX.1-schnell where CUDA is present, else the offline tiny model."""
    return "FLUX.1-schnell" if torch.cuda.is_available() else tiny.TINY_FLUX


def resolve(name: str) -> ModelSpec:
    """Return the spec for a known name, a known repo id, a local folder or any hub id."""
    name = (name or "").strip()
    if not name:
        raise ModelLoadError("No model given: choose a model from the list or enter a hub id or folder.")
    if name in KNOWN_MODELS:
        return KNOWN_MODELS[name]
    for spec in KNOWN_MODELS.values():
        if spec.source == name:
            return spec
    if Path(name).expanduser().is_dir():
        return ModelSpec(name=name, source=str(Path(name).expanduser().resolve()))
    if name.count("/") != 1 or any(c.isspace() for c in name) or name.startswith((".", "/")):
        known = ", ".join(KNOWN_MODELS)
        raise ModelLoadError(
            f"Model {name!r} is neither a known model ({known}), a hub id like 'owner/name', nor an existing folder."
        )
    return ModelSpec(name=name, source=name)


def choose_device_and_dtype() -> tuple[str, torch.dtype]:
    """bf16 on a CUDA GPU that supports it (fp16 otherwise), fp32 on CPU."""
    if torch.cuda.is_available():
        return "cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return "cpu", torch.float32


def folder_fingerprint(folder: Path) -> str:
    """A content hash of a model folder's configs and weight files (sizes), for provenance."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        digest.update(rel.encode())
        # Configs are hashed whole; weights by size, which is cheap for 20 GB folders.
        if path.suffix in {".json", ".txt", ".model"}:
            digest.update(path.read_bytes())
        else:
            digest.update(str(path.stat().st_size).encode())
    return "sha256:" + digest.hexdigest()[:16]


def hub_revision(repo_id: str) -> str | None:
    """The cached snapshot's commit hash for a hub id, or None if not known."""
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(repo_id, local_files_only=True, allow_patterns=["model_index.json"])
        return Path(path).name
    except Exception:  # not cached, offline: the revision is then unknown, not an error
        return None


@dataclass
class LoadedModel:
    """A loaded pipeline with the provenance that records carry."""

    pipe: object
    spec: ModelSpec
    model_id: str
    revision: str | None
    device: str
    dtype: str
    pipeline_class: str
    runtime: dict = field(default_factory=dict)  # placement and fast paths (see runtime.py)

    def info(self) -> dict:
        return {
            "id": self.model_id,
            "name": self.spec.name,
            "revision": self.revision,
            "dtype": self.dtype,
            "pipeline_class": self.pipeline_class,
            "device": self.device,
            "placement": self.runtime.get("placement", self.device),
        }


def quiet_loading() -> None:
    """Silence the per-file progress bars diffusers and transformers print while loading."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def load_model(name: str, device: str | None = None, dtype: torch.dtype | None = None,
               compile_denoiser: bool = False, placement: str = "auto") -> LoadedModel:
    """Load the text-to-image pipeline `name` (see `resolve`) ready to generate.

    Raises ModelLoadError with a message fit for the UI when it cannot be loaded.
    """
    from diffusers import AutoPipelineForText2Image

    spec = resolve(name)
    quiet_loading()
    auto_device, auto_dtype = choose_device_and_dtype()
    device, dtype = device or auto_device, dtype or auto_dtype
    source = spec.source
    if source in tiny.PIPELINES:
        source = str(tiny.tiny_model_path(source))
    try:
        pipe = AutoPipelineForText2Image.from_pretrained(source, dtype=dtype)
    except torch.OutOfMemoryError as error:
        raise ModelLoadError(f"Out of memory while loading {spec.name!r}: free the GPU or choose a smaller model.") from error
    except Exception as error:  # hub, file and config errors all mean "cannot load this"
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = " (HF_HUB_OFFLINE=1: only cached models can load)" if offline else ""
        raise ModelLoadError(
            f"Could not load model {spec.name!r} from {spec.source!r}{hint}: {str(error).splitlines()[0]}"
        ) from error
    pipe.set_progress_bar_config(disable=True)
    from goldennoise import runtime

    chosen = runtime.place(pipe, device, compile_denoiser, placement)
    revision = folder_fingerprint(Path(source)) if Path(source).is_dir() else hub_revision(source)
    model_id = spec.name if spec.source in tiny.PIPELINES else spec.source
    return LoadedModel(
        pipe=pipe,
        spec=spec,
        model_id=model_id,
        revision=revision,
        device=device,
        dtype=str(dtype).removeprefix("torch."),
        pipeline_class=type(pipe).__name__,
        runtime={"dtype": str(dtype).removeprefix("torch."), **chosen},
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

    The shared pipeline is never mutated, so one annotator's scheduler choice does
    not change another's generation.
    """
    if not name or name == type(pipe.scheduler).__name__:
        return pipe
    by_name = {cls.__name__: cls for cls in pipe.scheduler.compatibles}
    if name not in by_name:
        raise ValueError(f"Scheduler {name!r} does not fit this pipeline; choose one of {compatible_schedulers(pipe)}.")
    scheduler = by_name[name].from_config(pipe.scheduler.config)
    view = type(pipe)(**{**pipe.components, "scheduler": scheduler})
    view.set_progress_bar_config(disable=True)
    return view
