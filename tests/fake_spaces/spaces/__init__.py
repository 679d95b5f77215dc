"""A stand-in for Hugging Face's `spaces` package that enforces ZeroGPU's rules on a CPU machine.

The real package needs the ZeroGPU service. This one keeps its contract strictly:
- `GPU(duration=...)` functions run in a separate worker thread that alone may touch CUDA;
- their arguments are pickled on the way in and their results on the way out (a pipeline
  passed as an argument, or a CUDA tensor returned, shows up in the byte counts or fails);
- initialising CUDA anywhere else raises, as ZeroGPU does;
- every call is logged (bytes in/out, duration asked for, calling thread) for the test to check.
"""

from __future__ import annotations

import pickle
import threading

import torch

CALLS: list[dict] = []
_local = threading.local()


class ZeroGPUViolation(RuntimeError):
    pass


def _guard(real):
    def guarded(*args, **kwargs):
        if not getattr(_local, "gpu", False):
            raise ZeroGPUViolation("CUDA initialised outside a @spaces.GPU function")
        return real(*args, **kwargs)
    return guarded


torch.cuda.init = _guard(torch.cuda.init)
torch.cuda._lazy_init = _guard(torch.cuda._lazy_init)


def _cpu_only(value) -> None:
    if isinstance(value, torch.Tensor) and value.device.type != "cpu":
        raise ZeroGPUViolation("a @spaces.GPU function returned a tensor on the GPU")
    if isinstance(value, dict):
        for item in value.values():
            _cpu_only(item)
    if isinstance(value, (list, tuple)):
        for item in value:
            _cpu_only(item)


def GPU(fn=None, duration=60):  # noqa: N802 - the real package's name
    def decorate(function):
        if "<locals>" in function.__qualname__:
            raise ZeroGPUViolation("@spaces.GPU functions must be defined at module level")

        def wrapper(*args, **kwargs):
            seconds = duration(*args, **kwargs) if callable(duration) else duration
            payload = pickle.dumps((args, kwargs))
            box = {}

            def run():
                _local.gpu = True
                try:
                    box["value"] = function(*pickle.loads(payload)[0], **pickle.loads(payload)[1])
                except BaseException as error:  # noqa: BLE001 - re-raised in the caller
                    box["error"] = error

            worker = threading.Thread(target=run, name="zerogpu-worker")
            worker.start()
            worker.join()
            if "error" in box:
                raise box["error"]
            _cpu_only(box["value"])
            out = pickle.dumps(box["value"])
            CALLS.append({"bytes_in": len(payload), "bytes_out": len(out), "duration": seconds,
                          "thread": threading.current_thread().name})
            return pickle.loads(out)
        return wrapper
    return decorate if fn is None else decorate(fn)
