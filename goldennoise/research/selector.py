"""The seed selector: trained on noise features, evaluated by the question pre-filtering asks of it.

A selector is a logistic model on standardized noise features: a ridge direction
(closed form, so the permutation tests below can refit it hundreds of times in
well under a second) turned into a probability by a one-dimensional logistic fit
(Platt scaling). Rows are shown seeds, weighted by 1/propensity where the batch
was pre-filtered, so its own or CLIP's picks do not teach it their bias. Only
held-out figures are reported:

(a) unseen seeds: no test row's seed is in its training rows. When seeds repeat
    across prompts (the pool strategy) no test row's prompt is either: seeds and
    prompts are each split into K folds, and the rows of seed fold i and prompt
    fold j are predicted by a model trained on rows with neither (a K x K grid,
    every row predicted once). Otherwise folds are grouped by prompt, which keeps
    each seed on one side. AUC counts golden/bad pairs within one held-out fold of
    seeds (grid) or prompts, scored by models trained without those seeds: models
    trained on other data cannot shift one fold against another into a signal.
(b) within-prompt ranking, as pre-filtering uses it: per judgement, is the seed
    with the highest out-of-fold score golden more often than a random pick among
    the same shown seeds? (Both sides unweighted: with a pre-filter, comparing the
    shown top pick with an IPW rate over all candidates would be a gain for any
    selector.)
(c) where seeds repeat: "new prompt, seen seed" (folds by prompt only) next to
    simply remembering each seed's rate, so a selector that only memorises seeds
    shows as no better than memory.

Nulls: the noise-to-seed assignment is permuted (each seed gets another seed's
features; a seed's answers stay together) and (a) and (b) recomputed, >= 200
times, seeded. `recommended` is True only when (a) or (b) has a Holm-adjusted
permutation p < 0.05 (over the two) and a bootstrap interval that excludes chance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from goldennoise.generation.prefilter import SeedSelector
from goldennoise.research.analysis.inference import AUC, ClusterBootstrap, format_p, holm, interval, logistic_fit
from goldennoise.research.analysis.seeds import SeedMemory

RIDGE = 1.0  # added to the standardized features' covariance: many features, few distinct noises
GRID_FOLDS = 4
FOLDS = 5
PERMUTATIONS = 200
ALPHA = 0.05
MIN_SEEDS, MIN_PROMPTS = 12, 4


@dataclass
class Design:
    """Cross-validation splits and the stratum of every row (AUC compares pairs within a stratum)."""

    splits: list[tuple[np.ndarray, np.ndarray]]
    stratum: np.ndarray
    held_out: str


@dataclass
class Rows:
    """The evaluation data: distinct-seed features and one entry per shown row."""

    features: np.ndarray  # (S, F), one row per distinct seed
    seed: np.ndarray  # (n,) index into features
    prompt: np.ndarray  # (n,) prompt codes
    judgement: np.ndarray  # (n,) judgement codes
    y: np.ndarray  # (n,) 1 golden / 0 bad
    w: np.ndarray  # (n,) 1 / propensity

    @property
    def seeds_repeat(self) -> bool:
        pairs = np.unique(np.column_stack([self.seed, self.prompt]), axis=0)
        return bool(np.bincount(pairs[:, 0]).max() > 1)


@dataclass
class Evaluation:
    table: pd.DataFrame
    nulls: dict = field(default_factory=dict)  # name -> {"observed", "null", "p_value", "chance", "label"}
    recommended: bool = False
    reasons: list[str] = field(default_factory=list)
    scores: np.ndarray | None = None  # out-of-fold scores of (a)

    def as_dict(self) -> dict:
        return {"recommended": self.recommended, "reasons": self.reasons,
                "rows": [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
                         for row in self.table.to_dict("records")]}


def _fold_of(groups: np.ndarray, y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    from sklearn.model_selection import StratifiedGroupKFold

    fold = np.empty(len(groups), dtype=int)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(groups)), y, groups)):
        fold[test] = k
    return fold


def unseen_design(rows: Rows, seed: int = 0) -> Design:
    """(a): a seed-fold x prompt-fold grid when seeds repeat across prompts, else folds grouped by prompt."""
    n_seeds, n_prompts = len(np.unique(rows.seed)), len(np.unique(rows.prompt))
    if rows.seeds_repeat:
        k_s, k_p = min(GRID_FOLDS, n_seeds), min(GRID_FOLDS, n_prompts)
        seed_fold, prompt_fold = _fold_of(rows.seed, rows.y, k_s, seed), _fold_of(rows.prompt, rows.y, k_p, seed + 1)
        splits = []
        for i in range(k_s):
            for j in range(k_p):
                test = np.flatnonzero((seed_fold == i) & (prompt_fold == j))
                train = np.flatnonzero((seed_fold != i) & (prompt_fold != j))
                if len(test) and len(np.unique(rows.y[train])) == 2:
                    splits.append((train, test))
        return Design(splits, seed_fold, f"seeds and prompts ({k_s}x{k_p} grid: a test row's seed and prompt are both "
                                    "absent from its training rows)")
    return _prompt_design(rows, seed, "prompts, and so seeds (each seed appears under one prompt only)")


def _prompt_design(rows: Rows, seed: int, held_out: str) -> Design:
    k = min(FOLDS, len(np.unique(rows.prompt)))
    fold = _fold_of(rows.prompt, rows.y, k, seed)
    splits = [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(k)]
    return Design([s for s in splits if len(np.unique(rows.y[s[0]])) == 2], fold, held_out)


@dataclass
class Linear:
    """A linear score on standardized features: `((x - mean) / scale) @ beta`."""

    mean: np.ndarray
    scale: np.ndarray
    beta: np.ndarray

    def score(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean) / self.scale) @ self.beta


def fit(F: np.ndarray, seed: np.ndarray, y: np.ndarray, w: np.ndarray) -> Linear:
    """Ridge direction on standardized features, from per-seed sums (rows of one seed share its features).

    beta = (Cov_w(z) + RIDGE * I)^-1 Cov_w(z, y): closed form, so a permutation test of
    hundreds of refits costs milliseconds. Standardization uses the training rows only.
    """
    n = len(F)
    count = np.bincount(seed, minlength=n).astype(float)
    weight, weight_y = np.bincount(seed, w, n), np.bincount(seed, w * y, n)
    used = count > 0
    Fu, count, weight, weight_y = F[used], count[used], weight[used], weight_y[used]
    mean = count @ Fu / count.sum()
    scale = np.sqrt(count @ (Fu - mean) ** 2 / count.sum())
    scale[scale == 0] = 1.0
    Z = (Fu - mean) / scale
    total = weight.sum()
    Zc = Z - weight @ Z / total
    cov = (Zc * weight[:, None]).T @ Zc / total
    target = Zc.T @ (weight_y - weight * (weight_y.sum() / total)) / total
    beta = np.linalg.solve(cov + RIDGE * np.eye(len(target)), target)
    return Linear(mean, scale, beta)


def calibrate(scores: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) of a weighted logistic fit of y on a 1-D score (Platt scaling)."""
    intercept, slope = logistic_fit(np.column_stack([np.ones(len(scores)), scores]), y.astype(float), w)
    return float(intercept), float(slope)


def out_of_fold(F: np.ndarray, rows: Rows, design: Design) -> np.ndarray:
    """Held-out score of every row from per-seed features `F` (NaN where no split tested it)."""
    scores = np.full(len(rows.y), np.nan)
    for train, test in design.splits:
        model = fit(F, rows.seed[train], rows.y[train], rows.w[train])
        scores[test] = model.score(F[rows.seed[test]])
    return scores


def lift(scores: np.ndarray, rows: Rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per judgement (2+ scored rows): golden rate of its top-scored seed(s), of a random pick, judgement index.

    Both sides are taken among the same rows, the seeds that were shown, unweighted: the
    question is which of the shown seeds the selector would put first. (Weighting the
    random side by 1/propensity would compare the shown top pick with all candidates,
    which a pre-filter makes look like a gain for any selector.)"""
    ok = np.isfinite(scores)
    j, s, y = rows.judgement[ok], scores[ok], rows.y[ok].astype(float)
    n = int(rows.judgement.max()) + 1
    best = np.full(n, -np.inf)
    np.maximum.at(best, j, s)
    top = (s == best[j]).astype(float)
    size = np.bincount(j, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        top_rate = np.bincount(j, top * y, n) / np.bincount(j, top, n)
        random_rate = np.bincount(j, y, n) / np.maximum(size, 1)
    valid = np.flatnonzero(size >= 2)
    return top_rate[valid], random_rate[valid], valid


def _statistics(F: np.ndarray, rows: Rows, design: Design) -> tuple[float, float, np.ndarray]:
    scores = out_of_fold(F, rows, design)
    ok = np.isfinite(scores)
    auc = AUC(rows.y[ok], scores[ok], design.stratum[ok])(rows.w[ok])
    top, rand, _ = lift(scores, rows)
    return auc, float(np.mean(top - rand)), scores


def _p(observed: float, null: np.ndarray) -> float:
    null = null[np.isfinite(null)]
    return float((1 + np.sum(null >= observed)) / (1 + len(null)))


def _row(question, held_out, metric, estimate, ci, chance, p, null, rows: Rows, mask=None, note="") -> dict:
    mask = np.ones(len(rows.y), bool) if mask is None else mask
    return {"question": question, "held_out": held_out, "metric": metric, "estimate": estimate, "ci_low": ci[0],
            "ci_high": ci[1], "chance": chance, "p": format_p(p), "p_value": p, "null": null,
            "seeds": len(np.unique(rows.seed[mask])), "prompts": len(np.unique(rows.prompt[mask])),
            "rows": int(mask.sum()), "note": note}


def evaluate(rows: Rows, permutations: int = PERMUTATIONS, draws: int = 1000, seed: int = 0,
             seed_effect: dict | None = None) -> Evaluation:
    """(a), (b) and, where seeds repeat, (c), each with a clustered bootstrap interval and a permutation null."""
    boot = ClusterBootstrap(rows.prompt, rows.seed if rows.seeds_repeat else None, draws, seed)
    design = unseen_design(rows, seed)
    auc, gain, scores = _statistics(rows.features, rows, design)
    rng = np.random.default_rng(seed)
    null_auc, null_gain = np.empty(permutations), np.empty(permutations)
    for k in range(permutations):
        shuffled = rows.features[rng.permutation(len(rows.features))]  # noise-to-seed assignment permuted
        null_auc[k], null_gain[k], _ = _statistics(shuffled, rows, design)
    ok = np.isfinite(scores)
    auc_of = AUC(rows.y[ok], scores[ok], design.stratum[ok])
    auc_ci = boot.interval(lambda m: auc_of(m[ok]), base=rows.w)
    top, rand, judged = lift(scores, rows)
    prompt_of_judgement = np.zeros(int(rows.judgement.max()) + 1, dtype=int)
    prompt_of_judgement[rows.judgement] = rows.prompt
    lift_boot = ClusterBootstrap(prompt_of_judgement[judged], None, draws, seed)
    gain_ci = lift_boot.interval(lambda m: float(np.dot(m, top - rand) / m.sum()) if m.sum() else np.nan)
    p_auc, p_gain = _p(auc, null_auc), _p(gain, null_gain)
    null_text = f"noise features permuted across seeds ({permutations}x)"
    table = [
        _row("(a) unseen seeds", design.held_out, "AUC (pairs within a held-out fold)", auc, auc_ci, 0.5, p_auc,
             null_text, rows, ok, f"interval {boot.described}"),
        _row("(b) within-prompt ranking", design.held_out, "golden rate of the top-scored seed minus a random pick",
             gain, gain_ci, 0.0, p_gain, null_text, rows, ok,
             f"{len(judged)} judgements; among the seeds shown: top pick golden {np.mean(top):.3f}, random pick "
             f"{np.mean(rand):.3f}; interval resampling prompts"),
    ]
    null_lo, null_hi = interval(null_auc)
    table.append(_row("control: features permuted", design.held_out, "AUC under the null (mean; central 95%)",
                      float(np.nanmean(null_auc)), (null_lo, null_hi), 0.5, float("nan"), null_text, rows, ok,
                      "should centre on 0.5"))
    if rows.seeds_repeat:
        table += _seen_seed_rows(rows, boot, seed, seed_effect)
    evaluation = Evaluation(pd.DataFrame(table), scores=scores)
    evaluation.nulls = {
        "unseen_auc": {"observed": auc, "null": null_auc, "p_value": p_auc, "chance": 0.5,
                       "label": "(a) unseen-seed AUC, noise features permuted across seeds"},
        "ranking_gain": {"observed": gain, "null": null_gain, "p_value": p_gain, "chance": 0.0,
                         "label": "(b) top-scored minus random pick, noise features permuted across seeds"}}
    if seed_effect is not None:
        evaluation.nulls["seed_memory"] = {"observed": seed_effect["statistic"], "null": seed_effect["null"],
                                           "p_value": seed_effect["p_value"], "chance": 0.5,
                                           "label": "(c) remember-the-seed AUC (mean over prompt folds), labels "
                                                    "permuted within prompt"}
    _recommend(evaluation, auc, auc_ci, p_auc, gain, gain_ci, p_gain)
    return evaluation


def _seen_seed_rows(rows: Rows, boot: ClusterBootstrap, seed: int, seed_effect: dict | None) -> list[dict]:
    design = _prompt_design(rows, seed, "prompts only (the test seeds were seen on other prompts)")
    scores = out_of_fold(rows.features, rows, design)
    memory = np.full(len(rows.y), np.nan)
    for train, test in design.splits:
        fitted = SeedMemory().fit(np.column_stack([rows.seed[train], rows.w[train]]), rows.y[train])
        memory[test] = fitted.predict_proba(rows.seed[test, None])[:, 1]
    out = []
    for name, values in (("(c) new prompt, seen seed: selector", scores),
                         ("(c) new prompt, seen seed: remember the seed", memory)):
        ok = np.isfinite(values)
        auc = AUC(rows.y[ok], values[ok], design.stratum[ok])
        p, null = float("nan"), ""
        if "remember" in name and seed_effect is not None:
            p, null = seed_effect["p_value"], f"labels permuted within prompt ({seed_effect['permutations']}x)"
        out.append(_row(name, design.held_out, "AUC (pairs within a test fold)", auc(rows.w[ok]),
                        boot.interval(lambda m: auc(m[ok]), base=rows.w), 0.5, p, null, rows, ok,
                        "compare: a selector no better than memory has learned seeds, not noise"))
    return out


def _recommend(evaluation: Evaluation, auc, auc_ci, p_auc, gain, gain_ci, p_gain) -> None:
    """Recommended when (a) or (b) is above chance, the two permutation p-values Holm-adjusted (one claim, two
    tests: "the selector beats chance")."""
    h_auc, h_gain = holm(np.array([p_auc, p_gain]))
    reasons = []
    if h_auc < ALPHA and auc_ci[0] > 0.5:
        reasons.append(f"(a) unseen-seed AUC {auc:.3f} [{auc_ci[0]:.3f}, {auc_ci[1]:.3f}], permutation p "
                       f"{format_p(p_auc)} (Holm over (a) and (b): {format_p(h_auc)})")
    if h_gain < ALPHA and gain_ci[0] > 0:
        reasons.append(f"(b) top-scored pick beats a random one by {gain:.3f} [{gain_ci[0]:.3f}, {gain_ci[1]:.3f}], "
                       f"permutation p {format_p(p_gain)} (Holm over (a) and (b): {format_p(h_gain)})")
    evaluation.recommended = bool(reasons)
    evaluation.reasons = reasons or [
        f"neither (a) unseen-seed AUC {auc:.3f} [{auc_ci[0]:.3f}, {auc_ci[1]:.3f}] (p {format_p(p_auc)}) nor (b) "
        f"ranking gain {gain:.3f} [{gain_ci[0]:.3f}, {gain_ci[1]:.3f}] (p {format_p(p_gain)}) is above chance "
        f"(Holm-adjusted p {format_p(h_auc)}, {format_p(h_gain)}; both intervals must also exclude chance)"]


def usable(rows: Rows) -> str | None:
    """Why the selector cannot be evaluated on these rows, or None."""
    seeds, prompts = len(np.unique(rows.seed)), len(np.unique(rows.prompt))
    if seeds < MIN_SEEDS or prompts < MIN_PROMPTS:
        return f"needs {MIN_SEEDS}+ distinct noises on {MIN_PROMPTS}+ prompts; have {seeds} on {prompts}"
    if len(np.unique(rows.y)) < 2:
        return "needs both golden and bad answers"
    return None


def train(rows: Rows, names: list[str], noise_shape: list[int], configuration: str | None,
          evaluation: Evaluation) -> SeedSelector:
    """Fit the selector on all rows (weighted), calibrated to a probability, carrying its evaluation."""
    model = fit(rows.features, rows.seed, rows.y, rows.w)
    intercept, slope = calibrate(model.score(rows.features[rows.seed]), rows.y, rows.w)
    return SeedSelector(feature_names=list(names), mean=model.mean.tolist(), scale=model.scale.tolist(),
                        coef=(slope * model.beta).tolist(), intercept=intercept, noise_shape=list(noise_shape),
                        configuration=configuration, evaluation=evaluation.as_dict(),
                        recommended=evaluation.recommended)
