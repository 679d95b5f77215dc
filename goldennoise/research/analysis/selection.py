"""Undoing pre-filtering: what CLIP agreement would have been over every generated candidate.

A pre-filtered judgement shows the top-ranked K - E candidates (propensity 1) and E
drawn uniformly from the rest (propensity p = E / rest). Per-candidate claims
(golden rates) are fixed by weighting shown rows by 1/p. CLIP agreement is a
claim about *pairs*, and with the default E = 1 two low-ranked candidates are
never shown together, so no weighting can see those pairs. Two corrected figures:

- `weighted AUC` (in `stats.clip_agreement`): pairs weighted by 1/(p_i p_j). It
  covers the pairs that can be observed (at least one top-ranked candidate when
  E = 1), so it says how CLIP orders the candidates around the cut-off.
- `model_assisted_auc` (here): P(golden | CLIP) is fitted on the shown candidates
  with weights 1/p (a logistic model on the CLIP score and its z-score within the
  judgement; exploration slots make the low-ranked region visible), then every
  hidden candidate, whose CLIP score is recorded, counts by its fitted probability.
  The AUC is then over all candidate pairs of each judgement, as if nothing had
  been filtered. It rests on that model; the report shows it beside the others.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from goldennoise.research.analysis.inference import AUC, ClusterBootstrap, codes, logistic_fit


def _design(candidates: pd.DataFrame) -> np.ndarray:
    score = candidates["clip_score"].to_numpy(float)
    by = candidates.groupby("record_id")["clip_score"]
    spread = by.transform("std").fillna(0).to_numpy()
    within = (score - by.transform("mean").to_numpy()) / np.where(spread > 0, spread, 1.0)
    pooled = (score - score.mean()) / (score.std() or 1.0)
    return np.column_stack([np.ones(len(score)), pooled, within])


def model_assisted_auc(candidates: pd.DataFrame, boot: ClusterBootstrap | None = None) -> dict:
    """Within-judgement AUC of CLIP over all candidates (shown: their answer; hidden: fitted P(golden))."""
    candidates = candidates.dropna(subset=["clip_score"]).reset_index(drop=True)
    shown = candidates["shown"].to_numpy(bool)
    if candidates.empty or shown.all() or len(np.unique(candidates.loc[shown, "golden"].astype(bool))) < 2:
        return {"auc": float("nan"), "note": "no hidden candidates with CLIP scores, or one answer throughout"}
    if not (candidates["slot"] == "explore").any():
        return {"auc": float("nan"), "note": "no exploration slot: the low-ranked candidates were never shown, so "
                                             "a model fitted on the shown ones would only extrapolate"}
    A = _design(candidates)
    y = candidates["golden"].fillna(False).astype(float).to_numpy()
    w = 1.0 / candidates["propensity"].astype(float).clip(lower=1e-6).to_numpy()
    judgement = codes(candidates["record_id"])
    score = candidates["clip_score"].to_numpy(float)
    auc = AUC(np.r_[np.ones(len(y), bool), np.zeros(len(y), bool)], np.r_[score, score], np.r_[judgement, judgement])

    def statistic(m: np.ndarray) -> float:
        theta = logistic_fit(A[shown], y[shown], (w * m)[shown], ridge=1e-3)
        q = np.where(shown, y, 1 / (1 + np.exp(-(A @ theta))))
        numerator, denominator = auc.parts(np.r_[m * q, m * (1 - q)])
        own = m * m * q * (1 - q)  # a hidden candidate paired with itself is not a pair
        return float((numerator - 0.5 * own.sum()) / (denominator - own.sum()))

    result = {"auc": statistic(np.ones(len(y))), "candidates": len(y), "hidden": int((~shown).sum()),
              "exploration": int((candidates["slot"] == "explore").sum())}
    if boot is not None:
        sub = ClusterBootstrap(candidates["prompt_id"], None if boot.seeds is None else candidates["seed"],
                               boot.draws, boot.seed)
        result["ci_low"], result["ci_high"] = sub.interval(statistic)
    return result
