"""The inference every analysis shares: clustered bootstrap, weighted within-stratum AUC, multiplicity, p-values.

Units. A row is one seed shown in one judgement. Rows are not independent: rows of
one prompt share the prompt, and with the pool strategy rows of one seed share its
noise across prompts. `ClusterBootstrap` therefore resamples whole prompts, and
also whole seeds when seeds repeat across prompts (the two-way "pigeonhole"
bootstrap of Owen 2007: a row's weight is its prompt's count times its seed's
count in the draw). Statistics take row weights, so one draw is one weight vector
and nothing is copied.

Selection. Rows of pre-filtered judgements carry a propensity (the probability the
candidate was shown); their base weight is its inverse, so weighted statistics
estimate what all candidates would have shown (Horvitz-Thompson / Hajek).

`auc` is the probability that a golden row outscores a bad one, counting only
pairs in the same stratum (judgement, or cross-validation test cell) and weighting
each pair by the product of its rows' weights; with one stratum and unit weights
it is sklearn's `roc_auc_score`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

MIN_CLUSTERS = 3

def format_p(p: float) -> str:
    """A p- or q-value for people: `< 1e-6` below that, never 0.000; `n/a` when undefined."""
    if p is None or not np.isfinite(p):
        return "n/a"
    if p < 1e-6:
        return "< 1e-6"
    if p < 1e-3:
        return f"{p:.1e}"
    return f"{p:.3f}"


def format_ci(low: float, high: float) -> str:
    """A 95% interval for people; says so when there is none (too few prompts to resample)."""
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return "[no interval: too few prompts]"
    return f"[{low:.3f}, {high:.3f}]"


def bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values (NaN p-values stay NaN and do not count in the family)."""
    from scipy.stats import false_discovery_control

    p = np.asarray(p, dtype=float)
    q = np.full_like(p, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        q[finite] = false_discovery_control(p[finite], method="bh")
    return q


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down family-wise adjusted p-values (NaN stays NaN)."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite])]
    m = len(order)
    adjusted = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    out[order] = np.minimum(adjusted, 1.0)
    return out


def interval(values, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap values, ignoring undefined draws."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < 10:
        return float("nan"), float("nan")
    tail = 50 * (1 - level)
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def codes(values) -> np.ndarray:
    """Integer codes 0..k-1 of any labels (prompt ids, seeds, record ids), in the labels' sorted order. A categorical
    column is coded from its own codes (its categories sorted once), not by sorting a text per row: at a million
    answers that sort held gigabytes."""
    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        categorical = values.array if isinstance(values, pd.Series) else values
        own = np.asarray(categorical.codes)
        if len(own) and own.min() >= 0:
            used = np.unique(own)
            labels = np.asarray(categorical.categories.take(used), dtype=object)
            rank = np.empty(len(used), dtype=np.intp)
            rank[np.argsort(labels, kind="stable")] = np.arange(len(used))  # the order np.unique gives the labels
            lookup = np.zeros(len(categorical.categories), dtype=np.intp)
            lookup[used] = rank
            return lookup[own]
    return np.unique(np.asarray(values), return_inverse=True)[1].ravel()


def _narrow(values: np.ndarray) -> np.ndarray:
    return values.astype(np.int32) if len(values) and values.max() < 2**31 else values


class ClusterBootstrap:
    """Row multiplicities of a bootstrap over prompts, and over seeds too when `seeds` is given."""

    def __init__(self, prompts, seeds=None, draws: int = 1000, seed: int = 0):
        self.prompts = _narrow(codes(prompts))  # 32-bit: a bootstrap is kept per analysis, 4M rows each
        self.seeds = None if seeds is None else _narrow(codes(seeds))
        self.draws, self.seed = draws, seed

    @property
    def described(self) -> str:
        return "resampling prompts and seeds" if self.seeds is not None else "resampling prompts"

    def weights(self) -> Iterator[np.ndarray]:
        """One (n,) multiplicity vector per draw, reproducibly."""
        rng = np.random.default_rng(self.seed)
        n_p = self.prompts.max() + 1
        n_s = 0 if self.seeds is None else self.seeds.max() + 1
        for _ in range(self.draws):
            m = np.bincount(rng.integers(0, n_p, n_p), minlength=n_p)[self.prompts].astype(float)
            if self.seeds is not None:
                m *= np.bincount(rng.integers(0, n_s, n_s), minlength=n_s)[self.seeds]
            yield m

    def interval(self, statistic: Callable[[np.ndarray], float], base=None) -> tuple[float, float]:
        """95% percentile interval of `statistic(row_weights)`; `base` weights (e.g. 1/propensity) multiply in.

        NaN with fewer than MIN_CLUSTERS prompts: resampling one or two prompts says nothing.
        """
        if self.prompts.max() + 1 < MIN_CLUSTERS:
            return float("nan"), float("nan")
        base = 1.0 if base is None else np.asarray(base, dtype=float)
        return interval([statistic(base * m) for m in self.weights()])


def weighted_mean(y, w) -> float:
    w = np.asarray(w, dtype=float)
    total = w.sum()
    return float(np.dot(w, np.asarray(y, dtype=float)) / total) if total > 0 else float("nan")


class AUC:
    """Weighted AUC over golden/bad pairs within strata; sort once, then one O(n) pass per weight vector."""

    def __init__(self, y, scores, strata=None):
        y = np.asarray(y, dtype=bool)
        scores = np.asarray(scores, dtype=float)
        strata = np.zeros(len(y), dtype=np.int64) if strata is None else codes(strata)
        self.order = np.lexsort((scores, strata))
        s, k = scores[self.order], strata[self.order]
        self.pos = y[self.order]
        new_block = np.r_[True, (s[1:] != s[:-1]) | (k[1:] != k[:-1])]
        self.block = np.cumsum(new_block) - 1  # rows tied on (stratum, score) share a block
        self.block_stratum = k[new_block]
        self.stratum = k
        self.n_strata = int(k.max()) + 1 if len(k) else 0

    def __call__(self, weights=None) -> float:
        numerator, denominator = self.parts(weights)
        return float(numerator / denominator) if denominator > 0 else float("nan")

    def parts(self, weights=None) -> tuple[float, float]:
        """(sum of pair weights times concordance, sum of pair weights); ties count half."""
        n_blocks = len(self.block_stratum)
        if n_blocks == 0:
            return 0.0, 0.0
        w = np.ones(len(self.order)) if weights is None else np.asarray(weights, dtype=float)[self.order]
        pos_w = np.bincount(self.block, w * self.pos, n_blocks)
        neg_w = np.bincount(self.block, w * ~self.pos, n_blocks)
        below = np.cumsum(neg_w) - neg_w  # negatives in earlier blocks (all strata) ...
        start = np.r_[0, np.flatnonzero(np.diff(self.block_stratum)) + 1]
        first_of = np.repeat(start, np.diff(np.r_[start, n_blocks]))
        below -= (np.cumsum(neg_w) - neg_w)[first_of]  # ... minus those of earlier strata
        numerator = np.sum(pos_w * (below + 0.5 * neg_w))
        denominator = np.sum(np.bincount(self.block_stratum, pos_w, self.n_strata)
                             * np.bincount(self.block_stratum, neg_w, self.n_strata))
        return float(numerator), float(denominator)


def stratified_group_folds(groups, y, folds: int, seed: int = 0) -> np.ndarray:
    """Per row, its fold (0..folds-1): whole groups go to one fold; the groups, ordered by their share of positive
    rows (ties at random), are dealt `folds` at a time in a random order, so every fold gets groups of every rate
    and about as many groups. StratifiedGroupKFold's aim, in O(n log n) (sklearn's greedy search is quadratic in
    the groups: minutes for 50,000 prompts)."""
    group = codes(np.asarray(groups))
    n_groups = int(group.max()) + 1 if len(group) else 0
    share = np.bincount(group, np.asarray(y, dtype=float), n_groups) / np.maximum(np.bincount(group, None, n_groups), 1)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(n_groups), share))
    turns = -(-n_groups // folds)
    dealt = np.concatenate([rng.permutation(folds) for _ in range(turns)])[:n_groups] if n_groups else np.array([], int)
    fold_of_group = np.empty(n_groups, dtype=int)
    fold_of_group[order] = dealt
    return fold_of_group[group]


def weighted_auc(y, scores, weights=None, strata=None) -> float:
    return AUC(y, scores, strata)(weights)


def logistic_fit(A: np.ndarray, y: np.ndarray, w: np.ndarray, ridge: float = 1e-6,
                 iterations: int = 50) -> np.ndarray:
    """Coefficients of a weighted logistic regression of y on the columns of A (add a column of ones for an
    intercept), by Newton's method; a tiny ridge keeps separable data finite. For a handful of columns."""
    theta = np.zeros(A.shape[1])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(A @ theta, -30, 30)))
        gradient = A.T @ (w * (p - y)) + ridge * theta
        hessian = (A * (w * p * (1 - p))[:, None]).T @ A + ridge * np.eye(A.shape[1])
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return theta


def mixed_judgements(rows: pd.DataFrame) -> pd.Series:
    """Per row: its judgement has both golden and bad seeds among `rows` (vectorised per record: a Python call per
    judgement took a minute at 100k answers)."""
    golden = rows["golden"].astype(bool)
    by = golden.groupby(rows["record_id"], observed=True)
    ticked, shown = by.transform("sum"), by.transform("size")
    return (ticked > 0) & (ticked < shown)
