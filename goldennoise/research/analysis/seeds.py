"""Seed effects, where seeds repeat across prompts: is a seed good on prompts it has not been seen with?

- `seed_table`: every seed (no top-N cut), its raw golden rate over the prompts it was
  judged on (interval: bootstrap resampling prompts) and an empirical-Bayes
  (beta-binomial) shrunk rate with its posterior interval. That interval treats the
  fitted prior as known, so it is somewhat narrow (95% intervals covered 88% of true
  rates in a simulation with 40 seeds and 30 prompts); the report says so. Raw rates of seeds seen
  on few prompts are mostly luck; ranking by them picks the lucky ones (winner's
  curse), the shrunk rate does not.
- `split_half`: prompts split at random into halves A and B, per-seed rates on each;
  do the seeds that are good on A stay good on B? Repeated over many splits.
- `SeedMemory` and `seed_effect`: the "remember the seed" baseline (a seed's rate on
  training prompts predicts its answers on a held-out prompt) and its permutation
  test, labels permuted within prompt (the null "no seed effect"), by sklearn's
  `permutation_test_score` with folds grouped by prompt.

Units: answers of one seed on one prompt are averaged first (two annotators of an
overlap prompt are one observation of that seed, not two). Pre-filtered rows count
with their inverse-propensity weight; a seed's count is then its effective
(Kish) number of prompts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from goldennoise.research.analysis.inference import ClusterBootstrap, codes, stratified_group_folds, weighted_auc

MAX_STRENGTH = 1e4  # prior strength alpha + beta when seeds do not differ at all


def cells(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (seed, prompt), ordered as a sorted groupby orders them (seeds ascending, then prompts in their
    categories' order or sorted): weighted mean answer `y` and mean weight `w`. Sums over integer codes, so four
    million rows need a few arrays, not a grouped index."""
    prompt = rows["prompt_id"]
    prompt_code = (np.asarray(prompt.cat.codes, dtype=np.int64) if isinstance(prompt.dtype, pd.CategoricalDtype)
                   else pd.factorize(prompt, sort=True)[0].astype(np.int64))
    seeds, seed_code = np.unique(rows["seed"].to_numpy(), return_inverse=True)
    width = int(prompt_code.max()) + 1 if len(prompt_code) else 1
    _, first, cell = np.unique(seed_code.astype(np.int64) * width + prompt_code, return_index=True, return_inverse=True)
    w, y = rows["weight"].to_numpy(float), rows["golden"].to_numpy(float)
    total, count = np.bincount(cell, w), np.bincount(cell)
    return pd.DataFrame({"seed": seeds[seed_code[first]], "prompt_id": prompt.iloc[first].reset_index(drop=True),
                         "y": np.bincount(cell, w * y) / total, "w": total / count})


def _counts(part: pd.DataFrame) -> pd.DataFrame:
    g = part.assign(wy=part["w"] * part["y"], ww=part["w"] ** 2).groupby("seed")[["wy", "w", "ww"]].sum()
    rate = g["wy"] / g["w"]
    n = g["w"] ** 2 / g["ww"]
    return pd.DataFrame({"prompts": part.groupby("seed").size(), "n": n, "rate": rate, "golden": rate * n})


def beta_prior(golden: np.ndarray, n: np.ndarray) -> tuple[float, float]:
    """Beta-binomial prior (alpha, beta) of per-seed rates by maximum marginal likelihood (fractional counts)."""
    from scipy.optimize import minimize
    from scipy.special import betaln

    mean = float(np.clip(golden.sum() / n.sum(), 1e-3, 1 - 1e-3))

    def negative(params):
        mu, strength = 1 / (1 + np.exp(-params[0])), np.exp(min(params[1], 30.0))
        a, b = mu * strength, (1 - mu) * strength
        with np.errstate(invalid="ignore", over="ignore"):
            value = -np.sum(betaln(golden + a, n - golden + b) - betaln(a, b))
        return value if np.isfinite(value) else np.inf

    start = np.array([np.log(mean / (1 - mean)), np.log(10.0)])
    fit = minimize(negative, start, method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-8, "maxiter": 400})
    mu, strength = 1 / (1 + np.exp(-fit.x[0])), min(float(np.exp(fit.x[1])), MAX_STRENGTH)
    return float(mu * strength), float((1 - mu) * strength)


def _raw_intervals(data: pd.DataFrame, seeds: np.ndarray, draws: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """95% intervals of each seed's raw rate, resampling the prompts (whole prompts, as everywhere)."""
    seed_of = pd.Index(seeds).get_indexer(data["seed"])
    wy, w = (data["w"] * data["y"]).to_numpy(), data["w"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):  # a seed none of whose prompts was drawn: undefined
        draws_ = np.array([np.bincount(seed_of, m * wy, len(seeds)) / np.bincount(seed_of, m * w, len(seeds))
                           for m in ClusterBootstrap(codes(data["prompt_id"]), None, draws, seed).weights()])
    return np.nanpercentile(draws_, 2.5, axis=0), np.nanpercentile(draws_, 97.5, axis=0)


def seed_table(rows: pd.DataFrame, draws: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Every seed: prompts, raw rate (interval resampling prompts), shrunk rate (posterior interval); the prior."""
    from scipy.stats import beta as beta_dist

    data = cells(rows)
    counts = _counts(data)
    a, b = beta_prior(counts["golden"].to_numpy(), counts["n"].to_numpy())
    post_a, post_b = a + counts["golden"], b + counts["n"] - counts["golden"]
    raw_low, raw_high = _raw_intervals(data, counts.index.to_numpy(), draws, seed)
    table = pd.DataFrame({"seed": counts.index.astype("int64"), "prompts": counts["prompts"].to_numpy(),
                          "raw_rate": counts["rate"].to_numpy(), "raw_ci_low": raw_low, "raw_ci_high": raw_high,
                          "shrunk_rate": (post_a / (post_a + post_b)).to_numpy(),
                          "ci_low": beta_dist.ppf(0.025, post_a, post_b),
                          "ci_high": beta_dist.ppf(0.975, post_a, post_b)})
    table = table.sort_values(["shrunk_rate", "seed"], ascending=[False, True]).reset_index(drop=True)
    mu = a / (a + b)
    prior = {"alpha": a, "beta": b, "mean": mu, "between_seed_sd": float(np.sqrt(mu * (1 - mu) / (a + b + 1))),
             "flat": a + b >= MAX_STRENGTH * 0.99}
    return table, prior


def split_half(rows: pd.DataFrame, splits: int = 50, seed: int = 0) -> dict:
    """Spearman correlation of per-seed rates between random halves of the prompts; top quarter on A, rate on B."""
    from scipy.stats import spearmanr

    data = cells(rows)
    prompt, prompts = pd.factorize(data["prompt_id"])  # prompts in order of first appearance, as .unique() gives
    seeds, seed_of = np.unique(data["seed"].to_numpy(), return_inverse=True)
    wy, w = (data["w"] * data["y"]).to_numpy(), data["w"].to_numpy()

    def rates(part: np.ndarray) -> pd.Series:  # per seed with cells in `part`: _counts(data[part])["rate"]
        total = np.bincount(seed_of[part], w[part], len(seeds))
        present = np.bincount(seed_of[part], minlength=len(seeds)) > 0
        return pd.Series(np.bincount(seed_of[part], wy[part], len(seeds))[present] / total[present],
                         index=seeds[present])

    rng = np.random.default_rng(seed)
    rhos, top_b, all_b = [], [], []
    for _ in range(splits):
        chosen = np.zeros(len(prompts), dtype=bool)
        chosen[rng.choice(len(prompts), len(prompts) // 2, replace=False)] = True  # the draw choice(prompts) makes
        in_a = chosen[prompt]
        a, b = rates(in_a), rates(~in_a)
        both = a.index.intersection(b.index)
        if len(both) < 4 or a[both].std() == 0 or b[both].std() == 0:
            continue
        rhos.append(spearmanr(a[both], b[both]).statistic)
        top = a[both].sort_values(ascending=False).index[:max(1, len(both) // 4)]
        top_b.append(b[top].mean())
        all_b.append(b[both].mean())
    if not rhos:
        return {"splits": 0, "note": "too few seeds judged on both halves of the prompts"}
    return {"splits": len(rhos), "rho_mean": float(np.mean(rhos)),
            "rho_range": tuple(float(v) for v in np.percentile(rhos, [2.5, 97.5])),
            "top_quarter_rate_on_b": float(np.mean(top_b)), "all_rate_on_b": float(np.mean(all_b))}


class SeedMemory(ClassifierMixin, BaseEstimator):
    """Predicts a seed's golden rate on the training rows (shrunk to the mean).

    X: a column of seed codes and, optionally, a column of row weights (in X rather than as
    `sample_weight`, so `permutation_test_score` carries them with the rows on any sklearn >= 1.4).
    """

    def __init__(self, prior_strength: float = 2.0):
        self.prior_strength = prior_strength

    def fit(self, X, y):
        y = np.asarray(y, dtype=float)
        X = np.asarray(X)
        w = X[:, 1] if X.shape[1] > 1 else np.ones(len(y))
        seeds = X[:, 0].astype(np.int64)
        self.classes_ = np.array([0, 1])
        self.mean_ = float(np.dot(w, y) / w.sum())
        size = int(seeds.max()) + 1
        self.sum_ = np.bincount(seeds, w * y, size)
        self.weight_ = np.bincount(seeds, w, size)
        return self

    def predict_proba(self, X):
        seeds = np.asarray(X)[:, 0].astype(np.int64)
        known = seeds < len(self.sum_)
        s, n = np.zeros(len(seeds)), np.zeros(len(seeds))
        s[known], n[known] = self.sum_[seeds[known]], self.weight_[seeds[known]]
        p = (s + self.prior_strength * self.mean_) / (n + self.prior_strength)
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return (self.predict_proba(X)[:, 1] > 0.5).astype(int)


def _auc_scorer(estimator, X, y) -> float:
    """Weighted ROC AUC of a fold (the row weights ride in X's second column), as the (c) rows weight it."""
    X = np.asarray(X)
    return weighted_auc(y, estimator.predict_proba(X)[:, 1], X[:, 1] if X.shape[1] > 1 else None)


def seed_effect(seed_codes, prompt_codes, y, weight, permutations: int = 200, seed: int = 0) -> dict:
    """'No seed effect' test: seed-memory AUC on held-out prompts vs labels permuted within prompt.

    The statistic is the mean over `folds` prompt folds (whole prompts dealt to folds, stratified by their golden
    share: `inference.stratified_group_folds`) of the weighted AUC of SeedMemory fitted on the other folds; the null
    permutes the labels within each prompt, which keeps every prompt's and so every fold's class counts, so the
    folds are made once (what sklearn's permutation_test_score with StratifiedGroupKFold computes, without
    re-splitting for every permutation: that took minutes at 10k answers and hours at 100k)."""
    y = np.asarray(y, dtype=int)
    if len(np.unique(y)) < 2:
        raise ValueError("needs both golden and bad answers")
    prompts = codes(np.asarray(prompt_codes))
    folds = min(5, int(prompts.max()) + 1)
    fold = stratified_group_folds(prompts, y, folds, seed)
    w = np.asarray(weight, dtype=float)
    X = np.column_stack([np.asarray(seed_codes, dtype=float), w])
    tests = [fold == k for k in range(folds)]

    def score(labels: np.ndarray) -> float:
        aucs = []
        for test in tests:
            fitted = SeedMemory().fit(X[~test], labels[~test])
            aucs.append(weighted_auc(labels[test], fitted.predict_proba(X[test])[:, 1], w[test]))
        return float(np.mean(aucs))

    observed = score(y)
    if not np.isfinite(observed):
        raise ValueError("a held-out prompt fold has only golden or only bad answers")
    rng = np.random.default_rng(seed)
    grouped = np.argsort(prompts, kind="stable")  # each prompt's rows, one block per prompt
    null = np.empty(permutations)
    permuted = np.empty_like(y)
    for i in range(permutations):
        permuted[grouped] = y[np.lexsort((rng.random(len(y)), prompts))]  # the same blocks, shuffled within
        null[i] = score(permuted)
    p = (int(np.sum(null >= observed)) + 1) / (permutations + 1)
    return {"statistic": observed, "null": null, "p_value": float(p), "folds": folds,
            "permutations": permutations}
