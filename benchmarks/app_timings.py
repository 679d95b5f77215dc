"""Time what a new user waits for: app start, model load, and one batch at the default size.

Run: .venv/bin/python benchmarks/app_timings.py [--model tiny-flux] [--runs 5]
Starts `python app.py` on a free loopback port and drives it with gradio_client.
The first model load includes building the tiny model when its cache is empty.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="tiny-flux")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from gradio_client import Client

    from goldennoise import models

    spec = models.resolve(args.model)
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    with tempfile.TemporaryDirectory() as tmp:
        env.setdefault("GOLDENNOISE_CACHE", str(Path(tmp) / "cache"))
        port = free_port()
        start = time.perf_counter()
        app = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--outputs", tmp],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                    break
                except OSError:
                    time.sleep(0.05)
            app_start = time.perf_counter() - start
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            settings = [spec.name, spec.num_inference_steps, spec.guidance_scale, "pipeline default", spec.width,
                        spec.height, 4, "random", 0, spec.max_sequence_length or 0, True, "bench"]
            start = time.perf_counter()
            client.predict(*settings, api_name="/init_model")
            first_load = time.perf_counter() - start
            start = time.perf_counter()
            client.predict(*settings, api_name="/init_model")
            reload = time.perf_counter() - start
            batch_times = []
            for _ in range(args.runs):
                client.predict(api_name="/get_next_prompt")
                start = time.perf_counter()
                client.predict(api_name="/generate_batch")
                batch_times.append(time.perf_counter() - start)
        finally:
            app.terminate()
            app.wait()
    print(f"model {spec.name}, {spec.width}x{spec.height}, {spec.num_inference_steps} steps, batch of 4, CLIP on")
    print(f"app start (process start to first HTTP 200): {app_start:.2f} s")
    print(f"model load, first (incl. building the tiny cache if empty): {first_load:.2f} s")
    print(f"model load, already loaded: {reload:.3f} s")
    print(f"one batch of 4 via the API (generate + CLIP + save PNGs), median of {args.runs}: "
          f"{statistics.median(batch_times):.3f} s (min {min(batch_times):.3f}, max {max(batch_times):.3f})")


if __name__ == "__main__":
    main()
