"""Analysis cost, measured: 1,000 FLUX-size noises, and the 24-sample report.

Run: python benchmarks/analysis.py [--noises 1000] [--keep DIR]

(a) `--noises` noises of FLUX.1's shape at 1024x1024 (1x16x128x128) in records with real
    provenance blocks (made by `generation.latents.provenance`, as the app makes them):
    prompts of 4 sequential seeds, one annotator whose answers follow a planted noise
    feature plus judging noise. `analysis.run()` runs in a fresh process; printed: its
    wall time and its extra peak memory (peak resident size during the run minus the
    resident size just before it). Targets: <= 60 s and <= 2 GiB for 1,000 noises.
(b) 24 samples (6 prompts x 4 seeds) judged through the app's own loop on the tiny
    model; `analysis.run()` without UMAP, in a fresh process: wall time of the run and
    of the whole process with its imports. Target: < 10 s.
Both include 200-permutation selector tests and 1,000-draw bootstraps, as the app runs them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

FLUX_DRAW = (1, 16, 128, 128)
CHILD = """
import json, sys, time
from goldennoise.research import analysis

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0

before = status("VmRSS")
try:
    open("/proc/self/clear_refs", "w").write("5")  # restart the peak counter (VmHWM) here
except OSError:
    pass
start = time.perf_counter()
result = analysis.run(sys.argv[1], umap=False)
wall = time.perf_counter() - start
print(json.dumps({"wall_s": wall, "before": before,
                  "peak": status("VmHWM"), "summary": result["summary"]}))
"""


def write_flux_records(outputs: Path, n_noises: int, seed: int = 0) -> None:
    """Judgements of `n_noises` FLUX.1 noises, 4 per prompt, with the provenance blocks the app records."""
    import numpy as np
    import torch

    from goldennoise.generation import latents
    from goldennoise.ids import new_id, utc_now
    from goldennoise.store.records import RecordStore

    store, rng = RecordStore(outputs), np.random.default_rng(seed)
    layout = latents.Layout("flux1", FLUX_DRAW, 1.0)
    for prompt in range(n_noises // 4):
        seeds = list(range(prompt * 4, prompt * 4 + 4))
        samples, golden = [], []
        for s in seeds:
            noise = latents.initial_noise(s, FLUX_DRAW)
            is_golden = float(noise[0, 0].mean()) + rng.normal(0, 0.006) > 0.0
            golden += [s] if is_golden else []
            samples.append({"seed": s, "golden": is_golden, "clip_score": float(rng.normal(30, 3)),
                            "noise": latents.provenance(s, noise, layout, torch.bfloat16)})
        verdict = "none_golden" if not golden else "all_golden" if len(golden) == 4 else "some_golden"
        store.append({
            "kind": "judgement", "record_id": new_id(), "created_at": utc_now(), "annotator": "bench",
            "prompt": {"text": f"benchmark prompt {prompt}", "id": f"p{prompt}", "index": prompt, "source": "bench"},
            "campaign": "bench-flux", "model": {"id": "black-forest-labs/FLUX.1-schnell", "dtype": "bfloat16",
                                                "pipeline_class": "FluxPipeline"},
            "parameters": {"num_inference_steps": 4, "guidance_scale": 0.0, "height": 1024, "width": 1024,
                           "max_sequence_length": 256},
            "seeds": seeds, "samples": samples, "seed_strategy": {"name": "sequential"},
            "golden_seeds": golden, "bad_seeds": [s for s in seeds if s not in golden], "verdict": verdict})


def write_tiny_records(outputs: Path, folder: Path) -> None:
    """24 samples judged through the app's loop on the tiny model (6 prompts x 4 seeds)."""
    from tests import planted

    planted.make_dataset(outputs, folder, prompts=6, batch_size=4, strategy="random", annotators=("ann",))


def measure(outputs: Path) -> dict:
    """run() in a fresh Python process: its figures, and the whole process's wall time (start-up, imports)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, str(outputs)], env=env, capture_output=True, text=True,
                          check=True)
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "process_s": time.perf_counter() - start}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noises", type=int, default=1000, help="FLUX-size noises in part (a)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the outputs folders here")
    args = parser.parse_args(argv)
    base = args.keep or Path(tempfile.mkdtemp(prefix="goldennoise-bench-"))

    start = time.perf_counter()
    write_flux_records(base / "flux", args.noises)
    print(f"(a) wrote {args.noises} FLUX.1 noises {'x'.join(map(str, FLUX_DRAW))} in "
          f"{args.noises // 4} judgements ({time.perf_counter() - start:.1f} s, not part of the analysis)")
    flux = measure(base / "flux")
    extra = (flux["peak"] - flux["before"]) / 2**30
    print(f"(a) analysis of {args.noises} FLUX-size noises: {flux['wall_s']:.1f} s for run() "
          f"({flux['process_s']:.1f} s for the fresh process; target <= 60 s), extra peak memory {extra:.2f} GiB "
          "(target <= 2 GiB)")
    for line in flux["summary"][:6]:
        print(f"    {line}")

    write_tiny_records(base / "tiny", base)
    tiny = measure(base / "tiny")
    print(f"(b) 24-sample analysis without UMAP: {tiny['wall_s']:.1f} s for run() (its imports included: they "
          f"are lazy), {tiny['process_s']:.1f} s for the whole fresh process (target < 10 s)")
    if args.keep:
        print(f"outputs kept in {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
