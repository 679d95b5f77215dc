"""Golden rates, CLIP agreement, agreement between annotators, and noise statistics, with honest units.

- Rates and CLIP agreement use every shown row, weighted by 1/propensity when the
  batch was pre-filtered, with intervals from `ClusterBootstrap` (prompts, and
  seeds where they repeat).
- CLIP agreement is a within-judgement AUC: only a golden and a bad seed of the
  same judgement are compared, so prompts with many golden seeds do not count as
  "CLIP agrees". Under pre-filtering a pair's weight is 1/(p_i p_j), which is
  1/P(both shown) for the default single exploration slot (pairs of two
  low-ranked candidates are then never both shown and drop out); the
  model-assisted figure over all candidates is in `selection`.
- Agreement: only the same prompt, configuration and seed judged by two people
  (overlap assignments and second opinions), kappa by sklearn, undefined (NaN)
  when a rater gave one answer throughout, interval by scipy's bootstrap over the
  shared prompts.
- Noise statistics: one row per distinct noise (seed), its label the mean of its
  centred answers; Pearson r per feature with scipy's p and interval, or under a
  pre-filter the inverse-propensity-weighted r with a clustered-bootstrap Wald test
  (`ipw`), then Benjamini-Hochberg q-values and Holm-adjusted p-values over all features.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from goldennoise.research.analysis.inference import (AUC, ClusterBootstrap, bh, codes, holm, mixed_judgements,
                                                     weighted_mean)
from goldennoise.research.analysis.selection import model_assisted_auc
from goldennoise.research.analysis.ipw import weighted_tests

LEVEL = 0.95


def wilson(p_hat: float, n: float) -> tuple[float, float]:
    """95% Wilson interval: scipy's `binomtest` when the counts are whole, else the same formula."""
    if n <= 0:
        return float("nan"), float("nan")
    k = p_hat * n
    if abs(k - round(k)) < 1e-9 and abs(n - round(n)) < 1e-9:
        from scipy.stats import binomtest

        ci = binomtest(int(round(k)), int(round(n))).proportion_ci(LEVEL, method="wilson")
        return float(ci.low), float(ci.high)
    low, high = wilson_many(np.array([p_hat]), np.array([n]))
    return float(low[0]), float(high[0])


def kish(w) -> float:
    """Effective sample size of weights."""
    w = np.asarray(w, dtype=float)
    return float(w.sum() ** 2 / (w * w).sum()) if (w * w).sum() > 0 else 0.0


def wilson_many(p_hat: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95% Wilson intervals of many rates at once (the formula of `wilson`, scipy's for whole counts; NaN at n <= 0)."""
    p_hat, n = np.asarray(p_hat, dtype=float), np.asarray(n, dtype=float)
    z = 1.959963984540054
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = (p_hat + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p_hat * (1 - p_hat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        low, high = np.maximum(0.0, centre - half), np.minimum(1.0, centre + half)
    bad = ~(n > 0)
    low[bad], high[bad] = np.nan, np.nan
    return low, high


def _first_seen(*keys: np.ndarray) -> np.ndarray:
    """Codes 0..k-1 of the rows' key tuples (integer codes each), numbered in order of first appearance."""
    combined = np.zeros(len(keys[0]), dtype=np.int64)
    for key in keys:
        combined = combined * (int(key.max()) + 1 if len(key) else 1) + key
    return pd.factorize(combined)[0]


def _per_prompt(rows: pd.DataFrame) -> pd.DataFrame:
    """Per prompt (in order of first row): judgements, rows, golden, the weighted rate, and its Wilson interval on
    the Kish size of the prompt's distinct seeds (a seed judged by two annotators is one observation of this prompt,
    not two). Sums over integer codes (np.bincount), not a loop or a grouped index of prompts: 500,000 prompts take
    seconds and hold a few arrays of rows."""
    prompt = _first_seen(codes(rows["prompt_id"]), codes(rows["prompt"]))
    k = int(prompt.max()) + 1 if len(prompt) else 0
    y, w = rows["golden"].to_numpy(float), rows["weight"].to_numpy(float)
    wy, wsum = np.bincount(prompt, y * w, k), np.bincount(prompt, w, k)
    golden, seeds_judged = np.bincount(prompt, y, k), np.bincount(prompt, minlength=k)
    record, seed = codes(rows["record_id"]), codes(rows["seed"])
    records, seeds = (int(record.max()) + 1, int(seed.max()) + 1) if len(prompt) else (1, 1)
    judgements = np.bincount(np.unique(prompt.astype(np.int64) * records + record) // records, minlength=k)
    pairs, pair_of_row = np.unique(prompt.astype(np.int64) * seeds + seed, return_inverse=True)
    mean_weight = np.bincount(pair_of_row, w) / np.bincount(pair_of_row)  # a seed judged twice: its mean weight
    prompt_of_pair = pairs // seeds
    total, squares = np.bincount(prompt_of_pair, mean_weight, k), np.bincount(prompt_of_pair, mean_weight ** 2, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        kish_n = np.where(squares > 0, total * total / squares, 0.0)
        rate = np.where(wsum > 0, wy / wsum, np.nan)
    low, high = wilson_many(rate, kish_n)
    first = np.unique(prompt, return_index=True)[1]  # the row where each prompt first appears (codes in that order)
    return pd.DataFrame({"prompt": rows["prompt"].iloc[first].to_numpy(dtype=object),
                         "judgements": judgements.astype(int), "seeds_judged": seeds_judged.astype(int),
                         "golden": golden.astype(int), "golden_rate": rate, "ci_low": low, "ci_high": high})


def golden_rates(rows: pd.DataFrame, boot: ClusterBootstrap) -> dict:
    """Overall golden rate (naive and weighted) with a clustered interval, per prompt and per annotator."""
    y, w = rows["golden"].to_numpy(float), rows["weight"].to_numpy(float)
    naive = float(y.mean())
    corrected = weighted_mean(y, w)
    low, high = boot.interval(lambda m: weighted_mean(y, m), base=w)
    overall = {"rate": corrected, "ci_low": low, "ci_high": high, "naive_rate": naive,
               "rows": len(rows), "judgements": rows["record_id"].nunique()}
    per_prompt = _per_prompt(rows)
    per_annotator = []
    needed = rows[["annotator", "prompt_id", "seed", "golden", "weight", "record_id"]]  # parts of these, not the table
    for name, part in needed.groupby("annotator", sort=True, observed=True):
        sub = ClusterBootstrap(part["prompt_id"], None if boot.seeds is None else part["seed"], boot.draws, boot.seed)
        py, pw = part["golden"].to_numpy(float), part["weight"].to_numpy(float)
        low, high = sub.interval(lambda m: weighted_mean(py, m), base=pw)
        per_annotator.append({"annotator": name, "judgements": part["record_id"].nunique(),
                              "prompts": part["prompt_id"].nunique(), "seeds_judged": len(part),
                              "golden_rate": weighted_mean(py, pw), "ci_low": low, "ci_high": high})
    per_prompt = per_prompt.sort_values("golden_rate", ascending=False, kind="stable")
    return {"overall": overall, "per_prompt": per_prompt.reset_index(drop=True),
            "per_annotator": pd.DataFrame(per_annotator)}


def clip_agreement(rows: pd.DataFrame, boot: ClusterBootstrap | None = None,
                   candidates: pd.DataFrame | None = None) -> dict:
    """Within-judgement AUC of CLIP score for golden vs bad: naive (shown rows as they are), weighted, and,
    given the pre-filtered judgements' `candidates`, model-assisted over all candidates (see `selection`)."""
    scored = rows.dropna(subset=["clip_score"])
    mixed = mixed_judgements(scored)
    scored = scored[mixed]
    if scored.empty:
        return {"judgements_used": 0, "note": "no judgement with both golden and bad seeds and CLIP scores"}
    y, w = scored["golden"].to_numpy(bool), scored["weight"].to_numpy(float)
    auc = AUC(y, scored["clip_score"].to_numpy(float), scored["record_id"].to_numpy())
    result = {"judgements_used": scored["record_id"].nunique(), "auc": auc(w), "naive_auc": auc(None),
              "weighted": bool((w != 1).any())}
    if boot is not None:
        sub = ClusterBootstrap(scored["prompt_id"], None if boot.seeds is None else scored["seed"], boot.draws,
                               boot.seed)
        result["ci_low"], result["ci_high"] = sub.interval(auc, base=w)
    if candidates is not None and not candidates.empty:
        result["all_candidates"] = model_assisted_auc(candidates, boot)
    return result


def _kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa by sklearn; NaN when a rater gave one answer throughout (undefined, not 0 or 1)."""
    from sklearn.metrics import cohen_kappa_score

    if len(set(a)) < 2 or len(set(b)) < 2:
        return float("nan")
    return float(cohen_kappa_score(a, b))


def _kappa_fast(a: np.ndarray, b: np.ndarray) -> float:
    """The same kappa for two boolean raters in a few numpy operations (tested against sklearn)."""
    return _kappa_counts(len(a), np.sum(a), np.sum(b), np.sum(a == b))


def _kappa_counts(n: float, agrees_a: float, agrees_b: float, same: float) -> float:
    """Kappa of two boolean raters from four counts: rows, rows rater a said yes, rows b said yes, rows they agree
    on (a bootstrap draw of prompts sums them per prompt)."""
    pa, pb = agrees_a / n, agrees_b / n
    if pa in (0.0, 1.0) or pb in (0.0, 1.0):
        return float("nan")
    expected = pa * pb + (1 - pa) * (1 - pb)
    return float((same / n - expected) / (1 - expected))


def agreement(rows: pd.DataFrame, draws: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per pair of annotators: prompts and seeds both judged, % agreement, Cohen's kappa with a bootstrap interval."""
    from scipy.stats import DegenerateDataWarning, bootstrap

    # each annotator's last answer per (prompt, seed), in integer codes (sorted labels' order) and numpy throughout
    prompt_code, seed_code, who = codes(rows["prompt_id"]), codes(rows["seed"]), codes(rows["annotator"])
    seeds, people = (int(seed_code.max()) + 1, int(who.max()) + 1) if len(rows) else (1, 1)
    key = prompt_code.astype(np.int64) * seeds + seed_code  # sorts as (prompt, seed); key // seeds: the prompt
    order = np.argsort(codes(rows["created_at"]), kind="stable")[::-1]  # newest first: np.unique keeps the first
    _, newest = np.unique((key * people + who)[order], return_index=True)
    last = order[newest]  # rows kept, sorted by (prompt, seed, annotator)
    key, who, golden = key[last], who[last], rows["golden"].to_numpy(bool)[last]
    linked = rows["record_id"].isin(list(rows["second_opinion_of"].dropna().unique())).to_numpy()[last]
    record = codes(rows["record_id"])[last]
    names = sorted(rows["annotator"].unique())  # code k is names[k]
    out = []
    for i, first in enumerate(names):
        for j in range(i + 1, len(names)):
            second = names[j]
            mine, theirs = who == i, who == j
            shared, in_first, in_second = np.intersect1d(key[mine], key[theirs], assume_unique=True,
                                                         return_indices=True)
            if not len(shared):
                continue
            a, b = golden[mine][in_first], golden[theirs][in_second]
            prompt_of = shared // seeds
            prompts = np.unique(prompt_of)
            row = {"annotator_a": first, "annotator_b": second, "shared_prompts": len(prompts),
                   "shared_seeds": len(shared), "percent_agreement": float(np.mean(a == b)),
                   "cohens_kappa": _kappa(a, b), "kappa_ci_low": np.nan, "kappa_ci_high": np.nan, "note": ""}
            if not np.isfinite(row["cohens_kappa"]):
                row["note"] = "kappa undefined: one annotator gave the same answer to every shared seed"
            elif len(prompts) >= 3:
                # kappa of two boolean raters depends on four counts, so a draw of prompts (with repeats) is the
                # per-prompt counts weighted by how often each prompt was drawn: O(prompts) a draw, not O(rows)
                code = np.searchsorted(prompts, prompt_of)
                per_prompt = np.stack([np.bincount(code, minlength=len(prompts)),
                                       np.bincount(code, weights=a, minlength=len(prompts)),
                                       np.bincount(code, weights=b, minlength=len(prompts)),
                                       np.bincount(code, weights=a == b, minlength=len(prompts))], axis=1)

                def statistic(index):
                    n, sa, sb, same = np.bincount(np.asarray(index, dtype=int), minlength=len(prompts)) @ per_prompt
                    return _kappa_counts(n, sa, sb, same)

                with warnings.catch_warnings():
                    # draws where a rater is constant give NaN (counted and left out below), which scipy warns of
                    warnings.simplefilter("ignore", DegenerateDataWarning)
                    # batch: scipy draws `batch` resamples of the prompts at a time (all at once would hold
                    # draws x prompts indices: 4 GB for 500k prompts)
                    res = bootstrap((np.arange(len(prompts)),), statistic, vectorized=False, n_resamples=draws,
                                    batch=20, method="percentile", random_state=np.random.default_rng(seed))
                draws_ = np.asarray(res.bootstrap_distribution, dtype=float)
                if np.isfinite(draws_).sum() >= 10:
                    row["kappa_ci_low"], row["kappa_ci_high"] = np.nanpercentile(draws_, [2.5, 97.5])
                undefined = int((~np.isfinite(draws_)).sum())
                row["note"] = (f"interval resamples the {len(prompts)} shared prompts"
                               + (f"; {undefined} of {draws} draws undefined (a constant rater), left out"
                                  if undefined else ""))
            else:
                row["note"] = "fewer than 3 shared prompts: no interval"
            row["second_opinions"] = len(np.unique(record[(mine | theirs) & linked]))
            out.append(row)
    columns = ["annotator_a", "annotator_b", "shared_prompts", "shared_seeds", "second_opinions",
               "percent_agreement", "cohens_kappa", "kappa_ci_low", "kappa_ci_high", "note"]
    return pd.DataFrame(out, columns=columns)


def centred_answers(rows: pd.DataFrame) -> np.ndarray:
    """Each row's answer minus a reference rate: its prompt's rate where every row of the prompt has weight 1
    (nothing filtered), else the group's rate weighted by 1/propensity (see `ipw`: a prompt's own weighted rate
    rests on one exploration draw, and subtracting it from that draw's answer biases every covariance)."""
    w = rows["weight"].to_numpy(float)
    y = rows["golden"].to_numpy(float)
    sums = rows.assign(wy=w * y, w=w).groupby("prompt_id")[["wy", "w"]].transform("sum")
    unfiltered = (rows["weight"] == 1).groupby(rows["prompt_id"], observed=True).transform("all").to_numpy(bool)
    reference = np.where(unfiltered, (sums["wy"] / sums["w"]).to_numpy(), np.dot(w, y) / w.sum())
    return y - reference


def seed_labels(rows: pd.DataFrame) -> pd.Series:
    """Each distinct seed's mean centred answer (`centred_answers`), weighted by 1/propensity."""
    w = rows["weight"].to_numpy(float)
    frame = pd.DataFrame({"seed": rows["seed"].to_numpy(), "wc": w * centred_answers(rows), "w": w})
    sums = frame.groupby("seed")[["wc", "w"]].sum()
    return sums["wc"] / sums["w"]


def noise_statistics(features: pd.DataFrame, labels: pd.Series, weights: pd.Series | None = None,
                     replicates=None) -> pd.DataFrame:
    """Per feature, over distinct noises: Pearson r with the seed's label, 95% CI, p, BH q, Holm p.

    `features`: one row per distinct seed (index: seed); `labels`: `seed_labels`, same index.
    Unweighted (every generated seed shown): scipy's Pearson r, p and interval. With `weights`
    (`ipw.seed_weights`) and `replicates` (`ipw.replicates` over the same seeds): the weighted r
    with a Wald test and interval on Fisher's z from the clustered bootstrap (`ipw`).
    Sorted by p; every feature is in the table.
    """
    labels = labels.reindex(features.index)
    keep = labels.notna().to_numpy()
    if weights is not None:
        if replicates is None:
            raise ValueError("weighted noise statistics need bootstrap replicates for their standard errors")
        table = weighted_tests(features, labels.fillna(0.0), weights.reindex(features.index).where(keep, 0.0),
                               replicates)
    else:
        table = _pearson(features[keep], labels[keep])
    table["q_value"] = bh(table["p_value"].to_numpy())
    table["p_holm"] = holm(table["p_value"].to_numpy())
    table["noises"] = int(keep.sum())
    return table.sort_values("p_value", kind="stable").reset_index(drop=True)


def _pearson(features: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    from scipy.stats import pearsonr

    y = labels.to_numpy(float)
    out = []
    for name in features.columns:
        x = features[name].to_numpy(float)
        if len(y) < 4 or np.std(x) == 0 or np.std(y) == 0:
            out.append({"feature": name, "r": np.nan, "r_ci_low": np.nan, "r_ci_high": np.nan, "p_value": np.nan})
            continue
        res = pearsonr(x, y)
        ci = res.confidence_interval(LEVEL)
        out.append({"feature": name, "r": float(res.statistic), "r_ci_low": float(ci.low),
                    "r_ci_high": float(ci.high), "p_value": float(res.pvalue)})
    return pd.DataFrame(out)
