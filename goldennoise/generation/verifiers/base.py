"""What every verifier shares: the `Verifier` interface, tensor preprocessing, weight files and checks.

A verifier turns a prompt's images into one number per image. `score` takes a list
of PIL images or a tensor (N, 3, H, W) in [0, 1] on any device, preprocesses and
scores them in chunks of `batch_size` on the verifier's device, and encodes the
prompt once per chunk (one chunk for a usual batch). Towers run in `dtype` (float16
on CUDA by default, float32 on CPU); the head (cosine, logit scale, MLP,
normalisation) runs in float32.

Preprocessing follows the original repositories. Those that resize PIL images with
PIL (openai/CLIP's transform, which `CLIPImageProcessor` reproduces) get the same
for PIL inputs; tensor inputs are resized on their device with antialiased bicubic
interpolation, so the two paths differ by PIL's 8-bit rounding and the resampling
kernels' small differences (tests bound it). HPSv2 resizes tensors in the original,
so both paths share that code.
"""

from __future__ import annotations

import hashlib
import logging
from contextlib import contextmanager
from pathlib import Path

import torch

from goldennoise.errors import ModelLoadError
from goldennoise.generation import hub

logger = logging.getLogger(__name__)
MEAN_OPENAI = (0.48145466, 0.4578275, 0.40821073)
STD_OPENAI = (0.26862954, 0.26130258, 0.27577711)


def default_dtype(device: str, dtype: torch.dtype | str | None) -> torch.dtype:
    """The towers' dtype: as asked, else float16 on CUDA (as HPSv2's amp and openai/CLIP on CUDA), float32 elsewhere."""
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    return dtype or (torch.float16 if str(device).startswith("cuda") else torch.float32)


def default_device(device: str | None) -> str:
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


class Verifier:
    """One loaded automatic verifier: `score(images, prompt) -> list[float]`, `info()` for records.

    Subclasses set the attributes below and implement `pixels` (images -> model input) and
    `forward` (pixels, prompt -> float32 scores, shape (N,)).
    """

    name: str  # "clip", "pickscore", "hpsv2", "imagereward", "aesthetic"
    model_id: str  # what was loaded: hub id(s) or a stand-in's name
    revision: str | None  # hub commit, or a folder's content hash
    version: str  # of the scoring recipe here; bump when preprocessing or the formula changes
    definition: str  # the score in one line, for people reading records
    device: str
    dtype: torch.dtype
    batch_size: int = 16

    def info(self) -> dict:
        return {"name": self.name, "id": self.model_id, "revision": self.revision, "version": self.version,
                "dtype": str(self.dtype).removeprefix("torch."), "score": self.definition}

    @torch.no_grad()
    def score(self, images, prompt: str) -> list[float]:
        """One score per image, in order; `images`: list of PIL images or a tensor (N, 3, H, W) in [0, 1]."""
        scores = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            scores += self.forward(self.pixels(chunk), prompt).float().cpu().tolist()
        return [float(s) for s in scores]

    def pixels(self, images) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, pixels: torch.Tensor, prompt: str) -> torch.Tensor:
        raise NotImplementedError


@contextmanager
def errors_only():
    """transformers logs only errors inside (its load report lists checkpoint keys a model does not use).

    Changes a process-wide setting for the duration of a load; loads happen at start-up or on an
    administrator's switch, not per request.
    """
    from transformers.utils import logging as transformers_logging

    level = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(level)


def as_tensor(images, device: str) -> torch.Tensor:
    """PIL images (same size) or a tensor -> float32 (N, 3, H, W) in [0, 1] on `device` (as ToTensor does)."""
    if isinstance(images, torch.Tensor):
        return images.to(device, torch.float32)
    import numpy as np

    arrays = np.stack([np.asarray(image.convert("RGB")) for image in images])  # (N, H, W, 3) uint8
    return torch.from_numpy(arrays).to(device).permute(0, 3, 1, 2).float() / 255


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    mean, std = (torch.tensor(v, device=x.device).view(1, 3, 1, 1) for v in (mean, std))
    return (x - mean) / std


def resize_crop(x: torch.Tensor, short: int, crop: int) -> torch.Tensor:
    """Resize the short side to `short` (bicubic, antialiased, as PIL), centre-crop `crop` x `crop`.

    The long side becomes `int(short * long / short_side)`, as torchvision's `Resize` and `CLIPImageProcessor` do.
    """
    h, w = x.shape[-2:]
    size = (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
    x = torch.nn.functional.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
    top, left = (x.shape[-2] - crop) // 2, (x.shape[-1] - crop) // 2
    return x[..., top:top + crop, left:left + crop]


def clip_pixels(images, image_processor, device: str) -> torch.Tensor:
    """openai/CLIP preprocessing: the processor (PIL) for PIL images, `resize_crop` on the device for tensors."""
    if isinstance(images, torch.Tensor):
        x = resize_crop(as_tensor(images, device), image_processor.size["shortest_edge"],
                        image_processor.crop_size["height"])
        return normalize(x, image_processor.image_mean, image_processor.image_std)
    return image_processor(images=list(images), return_tensors="pt")["pixel_values"].to(device)


def folder_or_none(source: str | None) -> Path | None:
    """`source` as a local folder, or None when it names hub weights."""
    return Path(source) if source is not None and Path(source).is_dir() else None


def revision_of(source: str) -> str | None:
    path = Path(source)
    return hub.folder_fingerprint(path) if path.is_dir() else hub.hub_revision(source)


def load_error(verifier: str, downloads: list[str], error: Exception) -> ModelLoadError:
    """One message for weights that cannot be had: which, why, and the command or variable that fixes it.

    `downloads`: the arguments of `hf download` that fetch each part ("repo", "repo file", "repo --include ...").
    """
    repos = [d.split(" ")[0] for d in downloads]
    reason = hub.explain_load_error(repos[0], error)
    commands = " and ".join(f"`hf download {d}`" for d in downloads)
    return ModelLoadError(
        f"The {verifier} verifier could not load its weights ({', '.join(downloads)}). {reason} To fix: run "
        f"{commands} where the hub can be reached, or set HF_HUB_OFFLINE=0 so they are fetched on first use; "
        f"set HF_TOKEN if a repository is gated. Or leave {verifier} out of the verifiers.", "verifiers")


def hub_file(verifier: str, repo_id: str, filename: str, needs: list[str], sha256: str | None = None) -> Path:
    """A weight file from the hub (the local cache when offline); checked against `sha256` when given.

    `needs`: every download the verifier needs (`load_error`'s form), named together when one fails.
    """
    from huggingface_hub import hf_hub_download

    try:
        path = Path(hf_hub_download(repo_id, filename))
    except Exception as error:
        raise load_error(verifier, needs, error) from error
    if sha256 is not None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != sha256:
            raise ModelLoadError(f"The {verifier} weights {repo_id}/{filename} have sha256 {digest[:16]}…, not the "
                                 f"published {sha256[:16]}…: delete the file from the hub cache and download it "
                                 "again.", "verifiers")
    return path


def read_checkpoint(verifier: str, path: Path) -> dict:
    """A torch checkpoint's tensors, loaded without running pickled code (`weights_only=True`)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ModelLoadError(f"The {verifier} checkpoint {path.name} could not be read as plain tensors: "
                             f"{type(error).__name__}. Download it again.", "verifiers") from error


def check_mapping(verifier: str, mapped: dict, expected: dict[str, torch.Size], unused: list[str]) -> None:
    """Raise unless `mapped` fills every expected parameter with its shape; log checkpoint keys left unused."""
    missing = sorted(set(expected) - set(mapped))
    wrong = sorted(k for k in expected if k in mapped and tuple(mapped[k].shape) != tuple(expected[k]))
    extra = sorted(set(mapped) - set(expected))
    if missing or wrong or extra:
        detail = "; ".join(f"{label}: {', '.join(keys[:5])}{' …' if len(keys) > 5 else ''}"
                           for label, keys in (("missing", missing), ("wrong shape", wrong), ("unknown", extra))
                           if keys)
        raise ModelLoadError(f"The {verifier} checkpoint does not fit the architecture ({detail}): is it the "
                             "published file?", "verifiers")
    if unused:
        logger.warning("%s: %d checkpoint tensors not used by scoring (e.g. %s)", verifier, len(unused), unused[0])


def expected_shapes(model_class, config, **kwargs) -> dict[str, torch.Size]:
    """Parameter names and shapes of `model_class(config)`, built on the meta device (no memory, no init)."""
    with torch.device("meta"):
        model = model_class(config, **kwargs)
    return {k: v.shape for k, v in model.state_dict().items()}


def mlp_head(input_size: int) -> torch.nn.Sequential:
    """The MLP of improved-aesthetic-predictor and ImageReward: five linear layers, no activation (as published).

    Indices match the checkpoints' keys (`layers.0`, `.2`, `.4`, `.6`, `.7`); the dropouts do nothing in eval.
    """
    nn = torch.nn
    return nn.Sequential(nn.Linear(input_size, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
                         nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1)).eval()
