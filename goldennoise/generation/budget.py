"""How much one generation call may ask of this machine: a memory budget and a time slice.

A batch is always generated in chunks (the first batch after a start, prefetches
and pre-generation alike). A chunk holds at most as many images as fit in the
memory free on the device now (`bytes_per_megapixel` per image, refined by what
generation is seen to use on a GPU) and, once the speed is known, as many as take
about `time_slice` seconds, so the device is handed to the next waiting request
between chunks. A single image that cannot fit is refused before any work, with
the size that would.
"""

from __future__ import annotations

import math
import os
import resource
from dataclasses import dataclass
from pathlib import Path

import torch

from goldennoise.errors import GenerationError

DEFAULT_BYTES_PER_MEGAPIXEL = {"cpu": 450e6, "cuda": 1.6e9}  # activations per image-megapixel, with margin
USABLE_SHARE = 0.6  # of what is free: the rest stays for the app, CLIP and other requests


def _meminfo_available() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float("inf")


def _address_space_left() -> float:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return float("inf")
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[0])
        return float(soft - pages * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError):
        return float(soft)


def _cgroup_left() -> float:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return float("inf")
        return float(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        return float("inf")


def free_bytes(device: str) -> float:
    """Memory free for generation on `device` now."""
    if device.startswith("cuda"):
        return float(torch.cuda.mem_get_info(torch.device(device))[0])
    return min(_meminfo_available(), _address_space_left(), _cgroup_left())


@dataclass
class Budget:
    device: str = "cpu"
    bytes_per_megapixel: float | None = None
    seconds_per_megapixel_step: float | None = None  # measured
    time_slice: float | None = 1.5  # None: no time limit per call

    def __post_init__(self):
        if os.environ.get("GOLDENNOISE_BYTES_PER_MEGAPIXEL"):  # for tests of the allocator's own refusal
            self.bytes_per_megapixel = float(os.environ["GOLDENNOISE_BYTES_PER_MEGAPIXEL"])
        if self.bytes_per_megapixel is None:
            self.bytes_per_megapixel = DEFAULT_BYTES_PER_MEGAPIXEL["cuda" if self.device.startswith("cuda") else "cpu"]

    def per_image_bytes(self, height: int, width: int) -> float:
        return self.bytes_per_megapixel * height * width / 1e6

    def chunk_size(self, count: int, height: int, width: int, steps: int, free: float | None = None) -> int:
        """How many of `count` images one call may generate now (at least 1, or GenerationError)."""
        free = free_bytes(self.device) if free is None else free
        per_image = self.per_image_bytes(height, width)
        by_memory = math.floor(free * USABLE_SHARE / per_image) if per_image > 0 else count
        if by_memory < 1:
            side = int(math.sqrt(free * USABLE_SHARE / self.bytes_per_megapixel * 1e6) // 64 * 64)
            raise GenerationError(
                f"height x width: one image at {width}x{height} needs about {per_image / 1e9:.1f} GB here and about "
                f"{free * USABLE_SHARE / 1e9:.1f} GB can be used now; choose at most {max(side, 64)}x{max(side, 64)}.",
                "height")
        size = min(count, by_memory)
        if self.seconds_per_megapixel_step and self.time_slice:
            per_image_seconds = self.seconds_per_megapixel_step * height * width / 1e6 * steps
            size = min(size, max(1, math.floor(self.time_slice / per_image_seconds)))
        return max(1, size)

    def estimate(self, images: int, height: int, width: int, steps: int) -> float | None:
        """Seconds `images` images would take at the speed measured so far (None before any measurement)."""
        if not self.seconds_per_megapixel_step:
            return None
        return self.seconds_per_megapixel_step * images * height * width / 1e6 * steps

    def check(self, images: int, height: int, width: int, steps: int, limit: float | None, what: str) -> None:
        """Refuse (GenerationError naming the size) a batch the measured speed says would take over `limit` s."""
        seconds = self.estimate(images, height, width, steps)
        if limit and seconds is not None and seconds > limit:
            fits = max(1, int(images * limit / seconds))
            raise GenerationError(
                f"{what}: {images} image(s) of {width}x{height} at {steps} steps would take about {seconds:.0f} s here "
                f"(the limit is {limit:.0f} s, --max-batch-seconds); ask for at most {fits} image(s), fewer steps or a "
                "smaller size.", "batch_size")

    def observe(self, images: int, height: int, width: int, steps: int, seconds: float) -> None:
        """Refine the speed estimate from a finished call."""
        work = images * height * width / 1e6 * steps
        if work > 0 and seconds > 0:
            rate = seconds / work
            old = self.seconds_per_megapixel_step
            self.seconds_per_megapixel_step = rate if old is None else 0.7 * old + 0.3 * rate
