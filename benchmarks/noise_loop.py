"""Which noise makes better images, at what cost: the noise methods side by side on the digits sandbox, in one run.

Run: .venv/bin/python benchmarks/noise_loop.py [--seeds 200] [--steps 20] [--boost 4]

Every method samples at the model's default guidance w (0.75) with the same 20-step
flow-matching sampler from S seeds x 10 digits ("a handwritten d"); the judge (RBF SVC
on the real digits, `sandbox.judge`) calls a sample golden when p(asked digit) >= 0.8.

- plain seeds: randn(seed);
- re-denoise (NPNet): one step at guidance --boost, inverted at guidance 1
  (`generation.redenoise`); then sampled at w like the others;
- first-step guidance boost (the control that needs no new noise): the same seeds, the
  first of the 20 steps at guidance --boost, the rest at w;
- random perturbation of the same size: randn(seed) + a random direction scaled to
  |x'_T - x_T| of that seed and digit (another generator), the control for "any change";
- best-of-4 by the digits verifier: four seeds per (seed, digit) slot (seed, seed + S,
  seed + 2S, seed + 3S), the one the sandbox's automatic verifier (a logistic regression,
  not the judge) scores highest is kept;
- the noise-prompt network: first a re-denoise campaign (100 prompts x 6 candidates, half
  re-denoised, random seeds) is answered by a simulated annotator (the judge, no errors),
  `goldennoise train` fits the network on the pairs marked golden, and it is applied to
  this run's seeds (none of them in the campaign); beside it, the same network trained on
  as many pairs drawn at random (`--labels shuffled`: does the human filter matter?).

Unit of analysis: the (seed, digit) pair; seeds repeat across the ten digits, so every
interval resamples seeds (2,000 bootstrap draws, a seed's ten digits together) and every
difference is paired on the same seeds. Cost: wall time per image of each method over
plain sampling's (timed first and last, the cheaper kept: the machine is shared), one CPU
thread (re-denoise adds two model calls; best-of-4 samples four).
Best-of-4 is also ranked by CLIP (this model's `tiny-clip`, random weights: a control) and
by the learned verifier (`goldennoise train --kind verifier` on the same simulated campaign).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from goldennoise import simulate  # noqa: E402
from goldennoise.generation import hub, latents, models, noise_model  # noqa: E402
from goldennoise.generation import redenoise as rd  # noqa: E402
from goldennoise.generation import verifiers  # noqa: E402
from goldennoise.generation.verifiers import digits as digits_verifier  # noqa: E402
from goldennoise.research import train  # noqa: E402
from goldennoise.sandbox import judge  # noqa: E402
from goldennoise.sandbox.figures import sample  # noqa: E402
from goldennoise.sandbox.prompts import prompt_of  # noqa: E402

DIGITS = list(range(10))
CHUNK = 1000  # noises per re-denoise call
DRAWS = 2000


def rows(seeds: int) -> tuple[list[int], list[int]]:
    """(seed index, digit) rows, seed-major."""
    return [s for s in range(seeds) for _ in DIGITS], DIGITS * seeds


def bootstrap(passes: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per method, DRAWS pass rates over seeds resampled with replacement (the same resamples for every method)."""
    seeds = len(next(iter(passes.values())))
    picks = rng.integers(0, seeds, size=(DRAWS, seeds))
    return {name: p.mean(axis=1)[picks].mean(axis=1) for name, p in passes.items()}


def interval(values: np.ndarray) -> str:
    low, high = np.percentile(values, [2.5, 97.5])
    return f"[{100 * low:.1f}, {100 * high:.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--boost", type=float, default=4.0, help="the guidance of re-denoise's step and the boost")
    args = parser.parse_args()
    torch.set_num_threads(1)
    hub.quiet_loading()
    model = models.load_model("digits", device="cpu", dtype="float32")
    pipe, w, steps, seeds = model.pipe, model.spec.guidance_scale, args.steps, args.seeds
    shape = latents.layout(pipe, 8, 8).draw_shape
    index, labels = rows(seeds)
    prompts = [prompt_of(d) for d in labels]

    def draws(offset: int) -> torch.Tensor:
        per_seed = torch.cat([latents.initial_noise(offset + s, shape) for s in range(seeds)])
        return per_seed[index]

    plain = draws(0)
    timing, passes = {}, {}

    def judged(name: str, images: torch.Tensor, seconds: float) -> None:
        timing[name] = seconds / len(images)
        passes[name] = judge.recognisable(images, labels).reshape(seeds, len(DIGITS))

    sample(pipe, plain[:CHUNK], labels[:CHUNK], [w] * steps)  # warm-up, not timed
    start = time.perf_counter()
    images = sample(pipe, plain, labels, [w] * steps)
    judged("plain seeds", images, time.perf_counter() - start)
    reference = pipe(prompts[:CHUNK], latents=plain[:CHUNK], num_inference_steps=steps, guidance_scale=w,
                     output_type="pt").images[:, :1]
    assert torch.allclose(reference, images[:CHUNK], atol=1e-5), "the benchmark's sampler is not the pipeline's"

    start = time.perf_counter()
    moved = torch.cat([rd.redenoise(pipe, plain[i:i + CHUNK], prompts[i:i + CHUNK],
                                    rd.Redenoise(args.boost, 1.0, steps)) for i in range(0, len(plain), CHUNK)])
    images = sample(pipe, moved, labels, [w] * steps)
    judged("re-denoise (NPNet)", images, time.perf_counter() - start)

    start = time.perf_counter()
    images = sample(pipe, plain, labels, [args.boost] + [w] * (steps - 1))
    judged("first-step guidance boost", images, time.perf_counter() - start)

    size = (moved - plain).flatten(1).norm(dim=1)
    direction = torch.randn(plain.shape, generator=torch.Generator().manual_seed(12345))
    direction = direction / direction.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    start = time.perf_counter()
    images = sample(pipe, plain + size.view(-1, 1, 1, 1) * direction, labels, [w] * steps)
    judged("random perturbation, same size", images, time.perf_counter() - start)

    start = time.perf_counter()
    candidates = [sample(pipe, draws(k * seeds), labels, [w] * steps) for k in range(4)]  # 4 x (N, 1, 8, 8)
    four_samples = time.perf_counter() - start

    def best_of_4(name: str, scorer) -> None:
        """The candidate `scorer` ranks first per (seed, digit); cost: the four samples and their scores."""
        start = time.perf_counter()
        scores = np.zeros((4, len(plain)))
        for k, c in enumerate(candidates):
            for d in DIGITS:  # one verifier call per digit (its prompt)
                rows_d = [i for i, label in enumerate(labels) if label == d]
                # as the campaign's images: grey to RGB, upscaled nearest-neighbour to 256 x 256
                images = torch.nn.functional.interpolate(c[rows_d].repeat(1, 3, 1, 1), size=(256, 256), mode="nearest")
                scores[k, rows_d] = scorer.score(images, prompt_of(d))
        best = torch.as_tensor(scores.argmax(axis=0))
        chosen = torch.stack(candidates)[best, torch.arange(len(plain))]
        judged(name, chosen, four_samples + time.perf_counter() - start)

    best_of_4("best-of-4, digits verifier", digits_verifier.load())
    best_of_4("best-of-4, CLIP (tiny-clip)", verifiers.load("clip", source="tiny-clip"))

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        collected = simulate.simulate(Path(folder) / "collected", annotators=1, error=0.0, repeats=10, batch_size=6,
                                      overlap=0.0, seed_strategy="random", verifiers=(), noise_source="redenoise",
                                      steps=steps, noise_share=0.5)
        trained = {kind: train.train(Path(folder) / "collected", Path(folder) / f"{kind}.safetensors",
                                     labels=kind, log=None) for kind in ("golden", "shuffled")}
        trained["verifier"] = train.train_verifier(Path(folder) / "collected", Path(folder) / "verifier.safetensors",
                                                   log=None)
        setup = time.perf_counter() - start
        learned_verifier = verifiers.load("learned", source=str(Path(folder) / "verifier.safetensors"))
        best_of_4("best-of-4, learned verifier", learned_verifier)
        overlap = len({t[0] for t in collected.truth} & set(range(4 * seeds)))
        for kind, name in (("golden", "noise-prompt network"), ("shuffled", "  same, shuffled labels")):
            net, _ = noise_model.load(Path(folder) / f"{kind}.safetensors")
            start = time.perf_counter()
            learned = noise_model.apply(net, pipe, plain, prompts)
            judged(name, sample(pipe, learned, labels, [w] * steps), time.perf_counter() - start)

    start = time.perf_counter()  # plain sampling timed again at the end: the cheaper of the two is its cost
    sample(pipe, plain, labels, [w] * steps)
    timing["plain seeds"] = min(timing["plain seeds"], (time.perf_counter() - start) / len(plain))

    rng = np.random.default_rng(0)
    boot = bootstrap(passes, rng)
    base = timing["plain seeds"]
    print(f"Noise methods on the digits sandbox, CPU 1 thread: {seeds} seeds x 10 digits, {steps} steps at w={w:g}, "
          f"boost/re-denoise guidance {args.boost:g}; golden = judge p >= {judge.THRESHOLD}.")
    print("  intervals: 95% bootstrap over seeds (a seed's 10 digits resampled together, "
          f"{DRAWS} draws); differences paired on the same seeds")
    print(f"  {'method':<32}{'pass rate':>10} {'95% CI':>14}  {'vs plain':>9} {'95% CI':>16}  "
          f"{'vs boost':>9} {'95% CI':>16}  {'cost/image':>10}")
    for name, p in passes.items():
        vs_plain = boot[name] - boot["plain seeds"]
        vs_boost = boot[name] - boot["first-step guidance boost"]
        print(f"  {name:<32}{100 * p.mean():>9.1f}% {interval(boot[name]):>14}  "
              f"{100 * (p.mean() - passes['plain seeds'].mean()):>+8.1f}pt {interval(vs_plain):>16}  "
              f"{100 * (p.mean() - passes['first-step guidance boost'].mean()):>+8.1f}pt {interval(vs_boost):>16}  "
              f"{timing[name] / base:>9.2f}x")
    print(f"  plain sampling: {1000 * base:.2f} ms per image (batches of 500); mean |x'_T - x_T| / |x_T| "
          f"of re-denoise {float((size / plain.flatten(1).norm(dim=1)).mean()):.3f}")
    held = trained["golden"]["held_out"]
    print(f"  noise-prompt network: trained on {trained['golden']['pairs']['training']} golden pairs of "
          f"{trained['golden']['pairs']['judged']} (campaign, training and both networks {setup:.0f} s, not in its "
          f"cost); held out: error {held['network_error']:.5f} vs identity {held['identity_error']:.5f}, change "
          f"cosine {held['change_cosine']:.3f}; campaign seeds among this run's: {overlap}")
    verifier = trained["verifier"]["held_out"]
    print(f"  learned verifier: held-out within-judgement AUC {verifier['auc']:.3f} (CLIP score "
          f"{verifier['clip_auc']:.3f}) on {verifier['prompts']} prompts")


if __name__ == "__main__":
    main()
