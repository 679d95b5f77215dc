"""Noise statistics under a pre-filter: a weight per distinct noise, weighted correlations, a clustered test.

Why. A pre-filter shows the seeds CLIP ranks high. A noise feature that raises the
CLIP score but means nothing to people then looks *bad* among the shown seeds: the
seeds it pushed past the cut-off needed less quality to get there (selection on a
common effect, "collider bias"). Correlations over the shown noises describe the
shown noises, not the generated ones, and are not reported as corrected.

Unit and weight. The unit stays the distinct noise (one row per seed). A seed is in
the data when it was shown in at least one batch it was a candidate in; exploration
draws are independent across batches, so P(shown) = 1 - prod_j (1 - p_j) over those
batches (its shown rows and the hidden candidates of the pre-filter), and its weight is
1 / P(shown), the Horvitz-Thompson weight. Under the random strategy a seed has one
batch and its weight is its row's 1/propensity; without a pre-filter every weight is 1.

Label. The seed's answers weighted by 1/propensity, each minus a reference rate
(`stats.centred_answers`): its prompt's rate where every candidate of the prompt was
shown, else the group's weighted rate. A prompt's weighted rate rests on its one
exploration draw; subtracting it from that draw's own answer biases the covariance by
a term that does not shrink with more prompts (+0.04 in r for a label-free feature in
the design of tests/collider.py). Noises are drawn independently of prompts, so any
reference that does not depend on the row leaves the target unchanged.

Estimator and test. r is the weighted Pearson correlation over distinct noises (a ratio
of weighted sums: Hajek). Its standard error comes from `inference.ClusterBootstrap`
(whole prompts, and whole seeds where they repeat): each draw re-forms every seed's
label and weight from its resampled rows and recomputes r for all features at once.
The test is Wald on Fisher's z: p = 2 Phi(-|atanh r| / SE*), 95% interval
tanh(atanh r +- 1.96 SE*), so p < 0.05 exactly when the interval excludes 0; BH and Holm
run over these p. Not a permutation test: selection on CLIP makes the shown noises
non-exchangeable under "no effect". Not bootstrap percentile p-values: they cannot go
below 1/draws, too coarse for BH over 101 features.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from goldennoise.research.analysis.inference import MIN_CLUSTERS, ClusterBootstrap, codes

Z95 = 1.959963984540054
CHUNK = 100  # bootstrap draws per matrix product: (rows x CHUNK) multiplicities in memory at once


def _batch_codes(*columns: pd.Series) -> list[np.ndarray]:
    """Integer codes of batch ids shared across columns (a missing id is the batch "", as it always was), from
    each categorical's own codes: four million rows are never turned into text."""
    index: dict = {}
    out = []
    for column in columns:
        if isinstance(column.dtype, pd.CategoricalDtype):
            own, labels = column.cat.codes.to_numpy(), column.cat.categories.astype(object)
        else:
            own, labels = pd.factorize(column.astype(object))
        mapping = np.array([index.setdefault(str(label), len(index)) for label in labels]
                           + [index.setdefault("", len(index))], dtype=np.int64)  # the last: code -1, missing
        out.append(mapping[own])
    return out


def seed_weights(rows: pd.DataFrame, candidates: pd.DataFrame | None = None) -> pd.Series:
    """seed -> 1 / P(shown in at least one of its batches); 1.0 without a pre-filter."""
    parts = [rows]
    if candidates is not None and not candidates.empty:
        parts.append(candidates.loc[candidates["seed"].isin(rows["seed"].unique()).to_numpy()])
    batch = np.concatenate(_batch_codes(*(part["batch_id"] for part in parts)))
    seeds, seed = np.unique(np.concatenate([part["seed"].to_numpy(np.int64) for part in parts]), return_inverse=True)
    propensity = np.concatenate([part["propensity"].to_numpy(float) for part in parts])
    # Two annotators of one batch saw one draw of its exploration slots: count each (batch, seed) once (its first row).
    _, first = np.unique(batch * len(seeds) + seed, return_index=True)
    p = np.clip(propensity[first], 1e-6, 1.0)
    with np.errstate(divide="ignore"):
        terms = np.log1p(-p)
    missed = np.bincount(seed[first], np.where(np.isnan(terms), 0.0, terms), minlength=len(seeds))  # NaN: skipped
    return pd.Series(1.0 / -np.expm1(missed), index=seeds, name="weight")


def correlations(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted Pearson r of each column of X (S, F) with y, weights w; y and w (S,) or (B, S) -> (F,) or (B, F)."""
    total = w.sum(-1, keepdims=True)
    mean_x = (w @ X) / total
    mean_y = (w * y).sum(-1, keepdims=True) / total
    cov = ((w * y) @ X) / total - mean_x * mean_y
    var_x = (w @ (X * X)) / total - mean_x**2
    var_y = (w * y * y).sum(-1, keepdims=True) / total - mean_y**2
    with np.errstate(invalid="ignore", divide="ignore"):
        return cov / np.sqrt(np.clip(var_x, 0, None) * np.clip(var_y, 0, None))


def replicates(rows: pd.DataFrame, centred: np.ndarray, seeds: np.ndarray, weights: np.ndarray,
               boot: ClusterBootstrap) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Bootstrap (labels, weights) of the distinct `seeds`, (b, S) each, `CHUNK` draws at a time.

    A draw's row multiplicities m re-form each seed's label (its rows' answers weighted by
    m / propensity) and its weight (1 / P(shown) times its rows' mean multiplicity)."""
    from scipy.sparse import csr_matrix

    seed_of = pd.Index(seeds).get_indexer(rows["seed"].to_numpy())
    w = rows["weight"].to_numpy(float)
    A = csr_matrix((np.ones(len(rows)), (seed_of, np.arange(len(rows)))), shape=(len(seeds), len(rows)))
    base = A @ w
    draws = boot.weights()
    while True:
        chunk = [m for _, m in zip(range(CHUNK), draws)]
        if not chunk:
            return
        M = np.column_stack(chunk)  # (n, b)
        mass = A @ (M * w[:, None])  # (S, b)
        with np.errstate(invalid="ignore", divide="ignore"):
            labels = np.where(mass > 0, (A @ (M * (w * centred)[:, None])) / mass, 0.0)
        yield labels.T, (weights[:, None] * mass / base[:, None]).T


def weighted_tests(features: pd.DataFrame, labels: pd.Series, weights: pd.Series, reps) -> pd.DataFrame:
    """Per feature: weighted r, Wald interval and p on Fisher's z with the bootstrap's SE (see the docstring).

    `reps`: `replicates(...)` over the same seeds as `features`' index, in the same order."""
    X = features.to_numpy(float)
    sd = X.std(0)
    X = (X - X.mean(0)) / np.where(sd > 0, sd, 1.0)  # r is scale-free; standardized sums lose no digits
    y, w = labels.to_numpy(float), weights.to_numpy(float)
    r = correlations(X, y, w)
    draws = np.vstack([np.arctanh(np.clip(correlations(X, ly, lw), -1 + 1e-12, 1 - 1e-12)) for ly, lw in reps])
    finite = np.isfinite(draws)
    enough = finite.sum(0) >= 10
    se = np.full(X.shape[1], np.nan)
    se[enough] = [np.std(draws[finite[:, k], k], ddof=1) for k in np.flatnonzero(enough)]
    from scipy.stats import norm

    z = np.arctanh(np.clip(r, -1 + 1e-12, 1 - 1e-12))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = 2 * norm.sf(np.abs(z) / se)
    constant = (sd == 0) | ~np.isfinite(r)
    return pd.DataFrame({"feature": list(features.columns), "r": np.where(constant, np.nan, r),
                         "r_ci_low": np.where(constant, np.nan, np.tanh(z - Z95 * se)),
                         "r_ci_high": np.where(constant, np.nan, np.tanh(z + Z95 * se)),
                         "p_value": np.where(constant, np.nan, p)})


def testable(boot: ClusterBootstrap) -> bool:
    """Whether the bootstrap has prompts enough to give a standard error (else no p-value is claimed)."""
    return int(codes(boot.prompts).max()) + 1 >= MIN_CLUSTERS
