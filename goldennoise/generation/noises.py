"""Noises that are not `randn(seed)`: which candidates get one, and where they are kept.

A campaign may draw a share of its candidates from another noise source than the
seed (`[noise] source = "redenoise"`, `share = 0.5`): those candidates start from a
noise made from their seed's draw (`generation.redenoise`) instead of the draw itself.
Which candidates of a batch get it is drawn per prompt, exactly round(share x n) of
the n candidates, positions at random from a generator seeded by the prompt's index
and the batch's first seed (so re-making the batch gives the same choice); each
such candidate records the source, its parameters and its probability (`share`).

A made noise is not bit-reproducible from the seed alone on another machine (it
passes through the model), so it is kept once, by the sha256 of its float32
little-endian bytes, as a compressed exact `.npz` under `<outputs>/noises/`; the
record's noise block names that hash (`source_sha256`) and `latents.verify` checks
the file against it. An altered or missing file is a NoiseMismatch naming it.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from goldennoise.errors import NoiseMismatch

FOLDER = "noises"
SOURCES = ("seed", "redenoise", "model")
MADE = SOURCES[1:]  # the sources whose noise is made from the draw and kept


def sha256_of(noise: np.ndarray) -> str:
    """sha256 of a float32 array's little-endian bytes (as `latents.tensor_sha256` of a float32 tensor)."""
    return hashlib.sha256(np.ascontiguousarray(noise, dtype="<f4").tobytes()).hexdigest()


def source_name(block: dict | None) -> str | None:
    """A noise block's source: "seed" for the seed's draw itself, else the source's name; None without a block."""
    if not block:
        return None
    return (block.get("source") or {}).get("name") or "seed"


class NoiseStore:
    """Made noises by content hash: `<outputs>/noises/<first two hex>/<sha256>.npz` (one float32 array, `noise`)."""

    def __init__(self, outputs: str | Path):
        self.folder = Path(outputs) / FOLDER

    def path(self, sha256: str) -> Path:
        return self.folder / sha256[:2] / f"{sha256}.npz"

    def put(self, noise, draw_sha256: str) -> str:
        """Keep `noise` (a float32 tensor or array), made from the draw whose sha256 is `draw_sha256`, unless it is
        kept already (and intact); return its sha256."""
        array = np.ascontiguousarray(np.asarray(noise, dtype=np.float32))
        sha = sha256_of(array)
        path = self.path(sha)
        if path.exists():
            try:
                self.get(sha)
                return sha
            except NoiseMismatch:  # a damaged file of that name: written again below
                pass
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, noise=array, draw_sha256=np.array(draw_sha256))
        # write then rename: a reader never sees half a file, and two writers of one noise write the same bytes
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
        return sha

    def get(self, sha256: str, draw_sha256: str | None = None) -> np.ndarray:
        """The kept noise whose bytes hash to `sha256`, or NoiseMismatch (a malformed hash; missing, unreadable or
        altered; made from another draw than the one whose sha256 is `draw_sha256`, when given)."""
        if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise NoiseMismatch(f"{str(sha256)[:20]!r} is not the sha256 of a kept noise.")
        path = self.path(sha256)
        try:
            with np.load(path, allow_pickle=False) as data:
                array = data["noise"]
                made_from = str(data["draw_sha256"]) if "draw_sha256" in data else None
        except FileNotFoundError:
            raise NoiseMismatch(f"the made noise {sha256[:12]}… is not under {self.folder} (it is kept beside the "
                                "records: copy the outputs folder's noises/ with them).") from None
        except (OSError, ValueError, KeyError) as error:
            raise NoiseMismatch(f"the made noise file {path.name} cannot be read ({error}).") from None
        if array.dtype != np.float32 or sha256_of(array) != sha256:
            raise NoiseMismatch(f"the made noise file {path.name} was altered: its values no longer hash to its name.")
        if not np.isfinite(array).all():
            raise NoiseMismatch(f"the made noise file {path.name} holds values that are not finite.")
        if draw_sha256 is not None and made_from != draw_sha256:
            raise NoiseMismatch(f"the made noise {sha256[:12]}… was made from another seed's draw than this "
                                "record's.")
        return array


@dataclass(frozen=True)
class Source:
    """A campaign's noise source: the name, the share of candidates it makes, and the source's own parameters."""

    name: str = "seed"
    share: float = 0.5
    guidance_scale: float | None = None  # None: the family's default (redenoise.Redenoise.for_family)
    inversion_guidance_scale: float | None = None
    checkpoint: str | None = None  # model: the noise model's file (`noise_model`)

    @property
    def active(self) -> bool:
        return self.name != "seed" and self.share > 0

    def to_dict(self) -> dict:
        return asdict(self)


def twins(seeds: list[int]) -> list[int]:
    """Each seed twice, side by side: the candidates of a same-seed batch (`[noise] pairing = "same_seed"`)."""
    return [seed for seed in seeds for _ in range(2)]


def assign(source: Source, seeds: list[int], prompt_index: int, pairing: str = "mixed") -> list[float | None]:
    """Per candidate: the probability it had of getting the source when it got it, else None (a plain seed).

    mixed: exactly round(share x n) of the n candidates get it (halves rounded up, as the
    campaign checks), drawn by a generator seeded by the prompt's index and the first seed,
    so the same batch always gets the same choice.
    same_seed: `seeds` are twins (each seed twice, side by side); of each twin one gets the
    source, the first or the second at random (probability 1/2), drawn the same way."""
    n = len(seeds)
    if not source.active or n == 0:
        return [None] * n
    if pairing == "same_seed":
        if n % 2 or seeds[0::2] != seeds[1::2]:
            raise ValueError("same_seed pairing: the candidates must be each seed twice, side by side")
        rng = np.random.default_rng([int(prompt_index), int(seeds[0]) & 0xFFFFFFFF, int(seeds[0]) >> 32, 2])
        second = rng.random(n // 2) < 0.5
        return [0.5 if (i % 2 == 1) == bool(second[i // 2]) else None for i in range(n)]
    k = min(n, int(source.share * n + 0.5))
    rng = np.random.default_rng([int(prompt_index), int(seeds[0]) & 0xFFFFFFFF, int(seeds[0]) >> 32])
    chosen = set(rng.choice(n, size=k, replace=False).tolist())
    return [k / n if i in chosen else None for i in range(n)]
