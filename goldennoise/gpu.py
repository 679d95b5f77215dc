"""Running GPU work on Hugging Face ZeroGPU Spaces, and plainly everywhere else.

On a ZeroGPU Space a GPU is attached only inside functions decorated with
`spaces.GPU`; the `spaces` package exists only there (or where installed). This
module is the one place that knows: `gpu_task(fn)` is `spaces.GPU(fn)` where
ZeroGPU is active and `fn` itself otherwise.
"""

from __future__ import annotations

import os

GPU_SECONDS = 120  # the longest a batch may hold a ZeroGPU slot


def zero_gpu() -> bool:
    """True on a ZeroGPU Space (the `spaces` package is present and says so)."""
    if not os.environ.get("SPACES_ZERO_GPU"):
        return False
    try:
        import spaces  # noqa: F401
    except ImportError:
        return False
    return True


def gpu_task(fn):
    """`fn` wrapped so it gets a GPU on ZeroGPU; unchanged elsewhere."""
    if not zero_gpu():
        return fn
    import spaces

    return spaces.GPU(duration=GPU_SECONDS)(fn)
