"""The digits sandbox, measured side by side in one run: training, speed, and whether seeds matter.

Run: .venv/bin/python benchmarks/sandbox.py [--reuse] [--seeds 200] [--repeats 15]

1. training time: trains the recipe now into a temporary folder (about 5 minutes on
   one thread) and says whether the result equals the shipped weights; --reuse reads
   the shipped weights' training.json instead (and says so);
2. weights size, and the time of a batch of 4 through GoldenNoise's `generate`
   (256x256, the model's 20 steps and default guidance; median of --repeats);
3. the judge's recognisable rate at w = 0.5 / 0.75 / 1 / 2 over --seeds seeds x 10
   digits (the same seeds and noise as the app's), and at the default w the
   overdispersion of per-seed passes, the split-half seed correlation and the
   top-20 transfer (see goldennoise/sandbox/figures.py), beside two controls of
   which nothing should pass: the same UNet with random weights, and raw noise.
One CPU thread throughout (the machine is shared; STACK.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from goldennoise.generation import hub, latents, models  # noqa: E402
from goldennoise.generation import pipeline as generation  # noqa: E402
from goldennoise.sandbox import figures, judge, recipe, train, weights_path  # noqa: E402
from goldennoise.sandbox.pipeline import DigitsPipeline  # noqa: E402

GUIDANCES = (0.5, 0.75, 1.0, 2.0)


def training_line(reuse: bool) -> str:
    shipped = json.loads((weights_path() / "training.json").read_text())
    if reuse:
        return (f"training: {shipped['seconds']:.0f} s for {shipped['steps']} steps, final loss "
                f"{shipped['final_loss']:.4f} (read from the shipped training.json: --reuse, not measured now)")
    with tempfile.TemporaryDirectory() as folder:
        pipe, report = train.train(recipe.TrainConfig(), log=lambda line: None)
        train.save(pipe, report, Path(folder))
        fresh = pipe.unet.state_dict()
        ship = DigitsPipeline.from_pretrained(weights_path()).unet.state_dict()
        worst = max(float((fresh[k] - ship[k]).abs().max()) for k in ship)
    same = "identical to" if worst == 0 else f"max |difference| {worst:.2g} from"
    return (f"training: {report['seconds']:.0f} s for {report['steps']} steps, final loss {report['final_loss']:.4f} "
            f"(trained now; target <= 6 min); weights {same} the shipped ones (shipped run: {shipped['seconds']:.0f} s)")


def batch_time(model: models.LoadedModel, steps: int, repeats: int, fast: bool = True) -> float:
    """Median seconds of `generate` for a batch of 4 at the model's size and guidance, after a warm-up; `fast`: the
    pipeline's traced UNet (the default), else the module called eagerly."""
    spec = model.spec
    model.pipe.fast_unet = fast
    params = generation.GenerationParams(steps, spec.guidance_scale, spec.height, spec.width)
    generation.generate(model, "a handwritten 7", [1, 2, 3, 4], params)  # warm-up
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        generation.generate(model, "a handwritten 7", [10 * i + k for k in range(4)], params)
        times.append(time.perf_counter() - start)
    model.pipe.fast_unet = True
    return statistics.median(times)


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def number(x: float) -> str:
    return "n/a" if x != x else f"{x:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reuse", action="store_true", help="read the shipped training time instead of training now")
    parser.add_argument("--seeds", type=int, default=200, help="seeds per figure, each judged on all 10 digits")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    hub.quiet_loading()
    print(f"Digits sandbox on CPU, 1 thread; {args.seeds} seeds x 10 digits per figure; golden = the judge "
          f"(RBF SVC on the real digits) gives the asked digit p >= {judge.THRESHOLD}:")
    print("  " + training_line(args.reuse))
    model = models.load_model("digits", device="cpu", dtype="float32")
    size = (weights_path() / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size
    spec = model.spec
    steps = spec.num_inference_steps
    print(f"  weights: {size / 1e6:.2f} MB safetensors (target <= 3 MB); generate, batch of 4, {spec.width}x"
          f"{spec.height}, w={spec.guidance_scale}: {steps} steps {1000 * batch_time(model, steps, args.repeats):.0f} ms"
          f", {steps // 2} steps {1000 * batch_time(model, steps // 2, args.repeats):.0f} ms (median of "
          f"{args.repeats}; target <= 100 ms at {steps}); the UNet called eagerly instead of its trace: {steps} steps "
          f"{1000 * batch_time(model, steps, args.repeats, fast=False):.0f} ms")
    seeds = range(args.seeds)
    shape = latents.layout(model.pipe, 8, 8).draw_shape
    noises = torch.cat([latents.initial_noise(seed, shape) for seed in seeds])
    w, guidances = spec.guidance_scale, sorted({*GUIDANCES, spec.guidance_scale})
    start = time.perf_counter()
    probs = {g: figures.judge_seeds(model.pipe, noises, g, steps) for g in guidances}  # (seeds, 10) each
    seconds = time.perf_counter() - start
    print("  recognisable rate by guidance: "
          + " | ".join(f"w={g:g} {pct(figures.recognisable_rate(probs[g] >= judge.THRESHOLD))}" for g in guidances)
          + f"  ({seconds:.0f} s for {len(guidances) * args.seeds * 10} samples)")
    untrained = DigitsPipeline(unet=recipe.build_unet(seed=1), scheduler=recipe.build_scheduler())
    untrained.set_progress_bar_config(disable=True)
    p = {"trained": probs[w], "untrained": figures.judge_seeds(untrained, noises, w, steps),
         "raw noise": figures.judge_raw_noise(noises)}
    columns = {name: (figures.Figures.of(q >= judge.THRESHOLD), float(q.mean())) for name, q in p.items()}
    print(f"  at the default w={w:g}:        " + "".join(f"{name:>16}" for name in columns) + "   target")
    rows = [("recognisable rate", lambda f, m: pct(f.rate), "70-90%"),
            ("mean p(asked digit)", lambda f, m: f"{m:.3f}", "chance 0.1"),
            ("overdispersion", lambda f, m: number(f.overdispersion), ">= 1.5"),
            ("split-half rho", lambda f, m: number(f.split_half), ">= 0.4"),
            ("top-20 on 5-9 (vs all)", lambda f, m: f"{pct(f.top20_on_5_9)} ({pct(f.all_on_5_9)})", "")]
    for label, show, target in rows:
        print(f"    {label:<26}" + "".join(f"{show(*c):>16}" for c in columns.values()) + f"   {target}")
    print("    (n/a: no sample passes, so there is no variance between seeds to compare)")


if __name__ == "__main__":
    main()
