"""`goldennoise simulate`: a campaign on the digits model answered by simulated annotators whose truth is known.

Each simulated annotator labels through the annotation service, exactly as a person's
tab does (join, answer, skip; the same records, leases, overlap and pre-filter), and
judges each image with the independent judge (`sandbox.judge`: an RBF SVC trained on
the real digits; golden = p(asked digit) >= its threshold), then errs:

- `error`: each label is flipped with this probability (independently per annotator);
- `disagreement`: annotator k uses the threshold 0.8 + disagreement * z_k (z_k a fixed
  normal draw per annotator, clipped to 0.5..0.99), so annotators disagree systematically;
- `skip_rate`: a prompt is skipped with this probability;
- `speed_ms`: the viewing time each answer reports.
With `judge="coin"` every label is a fair coin: a null world with no truth to find.

It prints the truth next to what the analysis found: the golden rate by the judge over
every judged image, the observed rate; the seeds' overdispersion and split-half
correlation by the judge over the pool; the analysis's seed-effect test and split-half;
the selector's held-out AUC beside the AUC the recorded labels allow (the judge's own
labels predicting them: the ceiling any method can reach with these annotators).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from goldennoise.annotation.access import Access
from goldennoise.annotation.service import Caller, Service
from goldennoise.errors import UserError
from goldennoise.generation.noises import source_name
from goldennoise.sandbox import judge as judges
from goldennoise.sandbox import prompts as digit_prompts
from goldennoise.store.campaign import Campaign

DIGITS_PROMPTS = Path(__file__).resolve().parent.parent / "prompts" / "digits.txt"


@dataclass
class Annotator:
    name: str
    threshold: float
    rng: random.Random


@dataclass
class Simulation:
    """What a simulated campaign wrote and what its judge says is true."""

    outputs: Path
    campaign: str
    answers: int = 0
    skips: int = 0
    truth: list = field(default_factory=list)  # (seed, digit, prompt id, judge says golden, recorded golden, source)

    def true_rate(self) -> float:
        return float(np.mean([t[3] for t in self.truth])) if self.truth else float("nan")

    def source_rates(self) -> dict[str, tuple[float, int]]:
        """Per noise source ("seed" for plain candidates): the judge's golden rate and the candidates judged."""
        out = {}
        for name in sorted({t[5] for t in self.truth}):
            chosen = [t[3] for t in self.truth if t[5] == name]
            out[name] = (float(np.mean(chosen)), len(chosen))
        return out

    def observed_rate(self) -> float:
        return float(np.mean([t[4] for t in self.truth])) if self.truth else float("nan")

    def ceiling_auc(self) -> float:
        """Within-prompt AUC of the judge's labels for the recorded ones: what perfect knowledge of the truth
        reaches with these annotators' errors."""
        from sklearn.metrics import roc_auc_score

        truth = np.array([t[3] for t in self.truth], dtype=float)
        recorded = np.array([t[4] for t in self.truth], dtype=int)
        if len(set(recorded)) < 2:
            return float("nan")
        return float(roc_auc_score(recorded, truth))


def prompt_file(outputs: Path, repeats: int) -> Path:
    """The ten digits, each asked `repeats` times in other words (other prompt ids, the same digit): the forms the
    digits model accepts (a digit or its word, after 'a handwritten', 'the digit', 'digit' or nothing, any case)."""
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    forms = [(prefix, spelled, case) for case in (str.lower, str.title, str.upper)
             for prefix in ("a handwritten ", "the digit ", "", "digit ") for spelled in (False, True)]
    if not 1 <= repeats <= len(forms) - 2:
        raise UserError(f"repeats: 1..{len(forms) - 2} ways of asking for each digit, got {repeats!r}.", "repeats")
    lines = []
    for prefix, spelled, case in forms:
        batch = [case(prefix + (words[d] if spelled else str(d))) for d in range(10)]
        if batch[0] not in lines:  # "0" has no case: that form is a repeat
            lines += batch
        if len(lines) == 10 * repeats:
            break
    path = Path(outputs) / "simulated-prompts.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def simulate(outputs: str | Path, annotators: int = 2, error: float = 0.05, disagreement: float = 0.0,
             skip_rate: float = 0.0, speed_ms: int = 1500, repeats: int = 3, seed_strategy: str = "pool",
             pool_size: int = 40, batch_size: int = 4, overlap: float = 0.3, guidance: float = 0.75,
             steps: int = 10, judge: str = "svc", seed: int = 0, name: str = "simulated",
             store: str | None = None, progress=None, **campaign_values) -> Simulation:
    """Run a digits campaign to the end with simulated annotators; returns what was written and the truth."""
    if judge not in ("svc", "coin"):
        raise UserError(f"judge: {judge!r} is not svc or coin.", "judge")
    for value, label in ((error, "error"), (skip_rate, "skip_rate")):
        if not 0 <= value <= 1:
            raise UserError(f"{label}: a probability in 0..1, got {value!r}.", label)
    if not 1 <= annotators <= 50:
        raise UserError(f"annotators: 1..50, got {annotators!r}.", "annotators")
    outputs = Path(outputs)
    campaign = Campaign(name=name, model="digits", prompts=str(prompt_file(outputs, repeats)), num_inference_steps=steps,
                        guidance_scale=guidance, seed_strategy=seed_strategy, pool_size=pool_size,
                        batch_size=batch_size, overlap=overlap, min_view_ms=0, **campaign_values)
    service = Service(outputs, store, Access(local_only=True), prefetch=False)
    try:
        runtime = service.start(campaign)
        rng = np.random.default_rng(seed)
        people = [Annotator(f"sim-{k + 1}", float(np.clip(judges.THRESHOLD + disagreement * rng.normal(), 0.5, 0.99)),
                            random.Random(f"{seed}:{k}")) for k in range(annotators)]
        callers = {p.name: Caller(f"simulated-{p.name}") for p in people}
        screens = {p.name: service.join(callers[p.name], p.name) for p in people}
        result = Simulation(outputs, runtime.id)
        total = len(runtime.prompts) * (1 + overlap)
        while True:
            if not any(s.state == "batch" for s in screens.values()):
                # a waiting annotator takes prompts the others have let go (as a waiting tab does within 4 s)
                screens = {name: service.show(callers[name]) for name in screens}
                if not any(s.state == "batch" for s in screens.values()):
                    break
            for person in people:
                screen = screens[person.name]
                if screen.state != "batch":
                    continue
                caller = callers[person.name]
                if person.rng.random() < skip_rate:
                    screens[person.name] = service.answer(caller, "batch", screen.batch.batch_id, skip=True).screen
                    result.skips += 1
                    continue
                digit = digit_prompts.digit_of(screen.prompt.text)
                images = [Image.open(outputs / path) for path in screen.batch.image_paths]
                p = judges.p_requested(images, digit)
                truth = p >= judges.THRESHOLD
                if judge == "coin":
                    says = [person.rng.random() < 0.5 for _ in p]
                else:
                    says = [(pi >= person.threshold) != (person.rng.random() < error) for pi in p]
                golden = [s for s, ok in zip(screen.batch.seeds, says) if ok]
                done = service.answer(caller, "batch", screen.batch.batch_id, golden=golden, visible_ms=speed_ms)
                result.answers += 1
                sources = [source_name(block) or "seed" for block in screen.batch.noise]
                result.truth += [(s, digit, screen.prompt.id, bool(t), bool(o), source)
                                 for s, t, o, source in zip(screen.batch.seeds, truth, says, sources)]
                screens[person.name] = done.screen
                if progress is not None:
                    progress(min(1.0, result.answers / max(1.0, total)), f"{result.answers} answers")
        return result
    finally:
        service.close_all()


def pool_truth(pool_start: int, pool_size: int, guidance: float, steps: int) -> dict:
    """The judge's figures over every pool seed x every digit (not only those shown): overdispersion, split-half."""
    import torch

    from goldennoise.generation import latents, models
    from goldennoise.sandbox import figures

    model = models.load_model("digits")
    noises = torch.cat([latents.initial_noise(s, (1, 1, 8, 8)) for s in range(pool_start, pool_start + pool_size)])
    passes = figures.judge_seeds(model.pipe, noises, guidance, steps)
    return figures.Figures.of(passes).to_dict()


def report(sim: Simulation, analysis: dict, pool: dict | None) -> list[str]:
    """Truth beside what the analysis found, one line each."""
    lines = [f"simulated campaign {sim.campaign}: {sim.answers} judgements, {sim.skips} skips",
             f"golden rate: truth (judge) {sim.true_rate():.3f} | recorded {sim.observed_rate():.3f} | analysis "
             f"{analysis.get('rate', float('nan')):.3f}"
             + (" (the analysis's: plain candidates only; the truth and the recorded rate: every candidate)"
                if len(sim.source_rates()) > 1 else "")]
    if pool:
        lines.append(f"seeds (judge over the whole pool x 10 digits): overdispersion {pool['overdispersion']:.2f}, "
                     f"split-half {pool['split_half']:.2f}")
    effect = analysis.get("seed_effect")
    if effect:
        lines.append(f"seed effect found by the analysis: remember-the-seed AUC {effect['statistic']:.3f}, "
                     f"p {effect['p_value']:.3g}; split-half {analysis.get('split_half', float('nan')):.2f}")
    ceiling = sim.ceiling_auc()
    selector = analysis.get("selector_auc")
    lines.append(f"selector AUC on unseen seeds: {selector if selector is None else f'{selector:.3f}'} "
                 f"({'recommended' if analysis.get('recommended') else 'not recommended'}); attainable with these "
                 f"annotators (the judge's own labels): {ceiling:.3f}")
    rates = sim.source_rates()
    if len(rates) > 1:
        lines.append("noise sources, truth (judge): " + " | ".join(f"{name} {rate:.3f} over {n} candidates"
                                                                   for name, (rate, n) in rates.items()))
    lines += [line.strip() for line in analysis.get("summary", [])
              if line.strip().startswith(("verifiers:", "noise source"))]
    return lines


def analyse(outputs: Path, campaign: str, store=None) -> dict:
    """The analysis's figures a simulation is compared with."""
    from goldennoise.research import analysis  # lazy: heavy (scikit-learn, scipy, matplotlib)

    result = analysis.run(outputs, campaign=campaign, store=store)
    group = result["results"][0] if result.get("results") else None
    out = {"summary": result["summary"], "report": result["report"], "results": result.get("results") or []}
    if group is not None:
        rates = group.parts.get("rates", {}).get("overall", {})
        out["rate"] = rates.get("rate", float("nan"))
        out["seed_effect"] = group.parts.get("seed_effect")
        split = group.parts.get("split") or {}
        out["split_half"] = split.get("rho_mean", float("nan"))
        if group.evaluation is not None:
            out["selector_auc"] = float(group.evaluation.table.iloc[0]["estimate"])
            out["recommended"] = bool(group.evaluation.recommended)
    return out
