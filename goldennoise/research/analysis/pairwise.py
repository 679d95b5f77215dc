"""Pairwise answers: per-seed win rates and a Bradley-Terry model over seeds, with intervals.

Outcomes: "left"/"right" are a win for that seed; "tie" is half a win for each;
"both_bad" says the two are equally unacceptable, not which is better, so it is
left out of win rates and of the model and counted per seed on its own.
Bradley-Terry: P(i beats j) = s_i / (s_i + s_j), fitted by Hunter's (2004) MM
iterations with ties as half wins. Each seed also plays one virtual game against a
reference of strength 1 that it wins half of (a weak prior), so a seed that
always won still gets a finite strength. Strengths are reported as log-strengths
centred at 0, with 95% intervals from a bootstrap resampling whole prompts.
A position check tests whether the left image wins more often than chance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from goldennoise.research.analysis.inference import ClusterBootstrap, interval

SCORE = {"left": 1.0, "right": 0.0, "tie": 0.5}


def bradley_terry(i: np.ndarray, j: np.ndarray, score_i: np.ndarray, n_items: int, weights=None,
                  prior: float = 1.0, iterations: int = 500, tol: float = 1e-9) -> np.ndarray:
    """Log-strengths (mean 0) from comparisons i vs j where i scored `score_i` (1 win, 0.5 tie, 0 loss)."""
    w = np.ones(len(i)) if weights is None else np.asarray(weights, dtype=float)
    wins = np.bincount(i, w * score_i, n_items) + np.bincount(j, w * (1 - score_i), n_items) + prior / 2
    strength = np.ones(n_items)
    for _ in range(iterations):
        per_game = w / (strength[i] + strength[j])
        denominator = np.bincount(i, per_game, n_items) + np.bincount(j, per_game, n_items) + prior / (strength + 1)
        new = wins / np.maximum(denominator, 1e-300)  # the reference (strength 1) fixes the scale: no rescaling
        done = np.max(np.abs(np.log(new) - np.log(strength))) < tol
        strength = new
        if done:
            break
    logs = np.log(strength)
    return logs - logs.mean()  # centred once, at the end


def _win_rates(i, j, score, n, m) -> np.ndarray:
    games = np.bincount(i, m, n) + np.bincount(j, m, n)
    won = np.bincount(i, m * score, n) + np.bincount(j, m * (1 - score), n)
    return np.where(games > 0, won / np.maximum(games, 1e-12), np.nan)


def analyse(pairs: pd.DataFrame, draws: int = 500, seed: int = 0) -> dict:
    """Win-rate and Bradley-Terry table (every seed), position check, and counts."""
    from scipy.stats import binomtest

    decided = pairs[pairs["winner"].isin(list(SCORE))]
    both_bad = pairs[pairs["winner"] == "both_bad"]
    seeds = np.unique(np.concatenate([pairs["left_seed"], pairs["right_seed"]]))
    index = {s: k for k, s in enumerate(seeds)}
    i = decided["left_seed"].map(index).to_numpy(int)
    j = decided["right_seed"].map(index).to_numpy(int)
    score = decided["winner"].map(SCORE).to_numpy(float)
    n = len(seeds)
    comparisons = np.bincount(i, minlength=n) + np.bincount(j, minlength=n)
    wins = np.bincount(i, score, n) + np.bincount(j, 1 - score, n)
    bad = np.bincount(both_bad["left_seed"].map(index).to_numpy(int), minlength=n) + \
        np.bincount(both_bad["right_seed"].map(index).to_numpy(int), minlength=n)
    table = pd.DataFrame({"seed": seeds.astype("int64"), "comparisons": comparisons, "wins": wins,
                          "win_rate": np.where(comparisons > 0, wins / np.maximum(comparisons, 1), np.nan),
                          "both_bad": bad})
    out = {"answers": len(pairs), "decided": len(decided), "ties": int((decided["winner"] == "tie").sum()),
           "both_bad": len(both_bad), "seeds": n, "table": table}
    if len(decided) == 0:
        out["note"] = "no pairwise answer with a preference (all both-bad)"
        return out
    table["log_strength"] = bradley_terry(i, j, score, n)
    boot = ClusterBootstrap(decided["prompt_id"], None, draws, seed)
    samples = np.array([bradley_terry(i, j, score, n, weights=m) for m in boot.weights()])
    rates = np.array([_win_rates(i, j, score, n, m) for m in boot.weights()])
    table["win_ci_low"], table["win_ci_high"] = zip(*(interval(rates[:, k]) for k in range(n)))
    table["ci_low"], table["ci_high"] = zip(*(interval(samples[:, k]) for k in range(n)))
    out["table"] = table.sort_values(["log_strength", "seed"], ascending=[False, True]).reset_index(drop=True)
    left, right = int((decided["winner"] == "left").sum()), int((decided["winner"] == "right").sum())
    if left + right:
        test = binomtest(left, left + right)
        ci = test.proportion_ci(method="wilson")
        out["left_share"] = {"left": left, "right": right, "share": left / (left + right), "ci_low": ci.low,
                             "ci_high": ci.high, "p_value": test.pvalue}
    return out
