"""The real digits, and the one image convention every piece of the sandbox shares.

scikit-learn's `load_digits`: 1,797 images of 8x8 ink intensities 0..16 (0 is
background). The model works in [-1, 1] (value / 8 - 1); images come out in
[0, 1] (value / 16, ink bright on black) and are upscaled nearest-neighbour. To
judge an image of any size that is a multiple of 8 (the recorded 256x256 PNGs,
the pipeline's tensors) it is box-averaged back to 8x8 grey and scaled to 0..16,
which undoes the upscaling exactly up to the PNG's 8-bit rounding (<= 0.03 of 16).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from goldennoise.errors import UserError

GRID = 8
INK = 16.0  # sklearn's largest value
TEST_SHARE = 0.25  # the judge's held-out share
SPLIT_SEED = 0


@lru_cache(maxsize=1)
def real_digits() -> tuple[np.ndarray, np.ndarray]:
    """(values (1797, 64) float64 in 0..16, labels (1797,) int64): scikit-learn's digits."""
    from sklearn.datasets import load_digits  # scikit-learn is the `analysis` extra: only the sandbox needs it here

    digits = load_digits()
    return digits.data.astype(np.float64), digits.target.astype(np.int64)


@lru_cache(maxsize=1)
def split() -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices): a stratified 75/25 split under a fixed seed, the judge's and the twin's."""
    from sklearn.model_selection import train_test_split

    values, labels = real_digits()
    train, test = train_test_split(np.arange(len(labels)), test_size=TEST_SHARE, stratify=labels,
                                   random_state=SPLIT_SEED)
    return np.sort(train), np.sort(test)


def to_model(values: np.ndarray) -> torch.Tensor:
    """sklearn values (N, 64) in 0..16 -> model space (N, 1, 8, 8) float32 in [-1, 1]."""
    return torch.as_tensor(values, dtype=torch.float32).reshape(-1, 1, GRID, GRID) / (INK / 2) - 1


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Model space (N, C, 8, 8) -> image values in [0, 1] (clamped), the pipeline's output convention."""
    return ((x + 1) / 2).clamp(0, 1)


def _as_batch(images) -> np.ndarray:
    """PIL images, or arrays/tensors (H, W), (N, H, W), (N, H, W, C), (N, C, H, W) -> (N, H, W) float in [0, 1]."""
    if isinstance(images, torch.Tensor):
        images = images.detach().to("cpu", torch.float32).numpy()
    if not isinstance(images, np.ndarray):
        images = [np.asarray(im.convert("L"), dtype=np.uint8) if hasattr(im, "convert") else np.asarray(im)
                  for im in images]
        images = np.stack(images) if images else np.zeros((0, GRID, GRID))
    array = np.asarray(images)
    scale = 255.0 if array.dtype == np.uint8 else 1.0  # 8-bit images (PNG files); floats are taken as [0, 1]
    array = array.astype(np.float64) / scale
    if array.ndim == 2:
        array = array[None]
    if array.ndim == 4:  # colour: channels first (torch) when the second axis is 1 or 3, else last
        array = array.mean(axis=1) if array.shape[1] in (1, 3) and array.shape[-1] not in (1, 3) else array.mean(-1)
    if array.ndim != 3:
        raise UserError(f"images: expected images (H, W), (N, H, W) or with a colour axis, got shape {array.shape}.",
                        "images")
    return array


def to_grid(images) -> np.ndarray:
    """Images of any size that is a multiple of 8 -> (N, 64) grey values in 0..16, as sklearn's digits.

    Takes PIL images, uint8 arrays (0..255) or float arrays / tensors in [0, 1],
    grey or colour (colour is averaged). Raises UserError naming `images` otherwise.
    """
    array = _as_batch(images)
    n, height, width = array.shape
    if height % GRID or width % GRID or not height or not width:
        raise UserError(f"images: height and width must be multiples of {GRID}, got {height}x{width}.", "images")
    boxes = array.reshape(n, GRID, height // GRID, GRID, width // GRID).mean(axis=(2, 4))
    return boxes.reshape(n, GRID * GRID) * INK
