"""The benchmarks run on CPU (figures are printed, not asserted), and the GPU one builds real FLUX sizes."""

import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_generation_benchmark_runs_on_cpu():
    out = run("benchmarks/generation.py", "--repeats", "1")
    assert "speed-up x" in out and "% of generation" in out and "batch 16: plain" in out


def test_annotation_flow_benchmark_runs():
    out = run("benchmarks/annotation_flow.py", "--prompts", "3", "--think", "0.3")
    assert "ratio with/without" in out and "100,000 existing records" in out


def test_gpu_benchmark_builds_flux_schnell_sizes():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from generation import build_flux_schnell_random

    pipe = build_flux_schnell_random("meta", torch.bfloat16)  # shapes only, no memory
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert round(count(pipe.transformer) / 1e9, 2) == 11.89  # FLUX.1-schnell's transformer
    assert round(count(pipe.text_encoder_2) / 1e9, 2) == 4.76  # T5-XXL encoder
    assert pipe.transformer.dtype == torch.bfloat16 and pipe.vae_scale_factor == 8
