"""Which automatic verifier agrees with people, and how often: pure functions over the analysis tables.

Inputs: the sample table (one row per shown seed of a live judgement) with one score
column per verifier (`clip_score` for CLIP, `score_<name>` for the others), and the
pair table with `left_<column>` / `right_<column>`. Every measure uses only how a
verifier *orders* images, so it is unchanged by any increasing transform of a score.

- AUC: within-judgement, as `stats.clip_agreement` (a golden and a bad seed of the same
  judgement; pairs weighted by their rows' 1/propensity under a pre-filter).
- Top-1: in each judgement with golden and bad seeds, is the verifier's best shown seed
  golden (tied bests share), against a random pick among the same shown seeds.
- Pairs: the share of decided pairwise answers (left or right) where the verifier
  scores the human winner higher (equal scores count half).
Intervals: the clustered bootstrap (prompts, and seeds where they repeat; pairs: prompts).
p-values: one-sided permutation tests of "no better than chance": scores shuffled within
each judgement (AUC, top-1), each pair's preference flipped at random (pairs). The
verdict names the best verifier only if its Holm-adjusted p (across verifiers, on AUC,
or on pairs when there are no golden labels) is below 0.05.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from goldennoise.research.analysis.inference import (AUC, ClusterBootstrap, codes, format_ci, format_p, holm,
                                                      mixed_judgements)

ALPHA = 0.05
NAMES = ("clip", "pickscore", "hpsv2", "imagereward", "aesthetic", "digits", "learned")


def column(name: str) -> str:
    """Sample-table column of verifier `name` (as `generation.verifiers.score_column`, without importing torch)."""
    return "clip_score" if name == "clip" else f"score_{name}"


def present(rows: pd.DataFrame, pairs: pd.DataFrame | None = None) -> list[str]:
    """The verifiers with at least one score in the sample or pair table, in NAMES order."""
    def has(frame, col):
        return frame is not None and col in frame and frame[col].notna().any()
    return [n for n in NAMES if has(rows, column(n)) or has(pairs, f"left_{column(n)}")]


class _Blocks:
    """Rows grouped by judgement (contiguous after sorting), for vectorised per-judgement work."""

    def __init__(self, strata):
        self.order = np.argsort(codes(strata), kind="stable")
        sorted_codes = codes(strata)[self.order]
        self.starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
        self.block = np.cumsum(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]) - 1

    def shuffled(self, values: np.ndarray, rng) -> np.ndarray:
        """`values` (sorted order) permuted within each block."""
        return values[np.lexsort((rng.random(len(values)), self.block))]

    def best_hits(self, scores: np.ndarray, golden: np.ndarray) -> np.ndarray:
        """Per block: the golden share among the rows with the block's highest score (sorted order inputs)."""
        best = scores == np.maximum.reduceat(scores, self.starts)[self.block]
        return np.add.reduceat(best * golden, self.starts) / np.add.reduceat(best.astype(float), self.starts)


def _mixed(rows: pd.DataFrame, col: str) -> pd.DataFrame:
    scored = rows.dropna(subset=[col])
    mixed = mixed_judgements(scored)
    return scored[mixed].reset_index(drop=True)


def _p(null: np.ndarray, observed: float) -> float:
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + len(null)))


def _sub(boot: ClusterBootstrap | None, frame: pd.DataFrame) -> ClusterBootstrap | None:
    """The group's bootstrap restricted to `frame`'s rows (seeds resampled too where the group's are)."""
    if boot is None:
        return None
    return ClusterBootstrap(frame["prompt_id"], None if boot.seeds is None else frame["seed"], boot.draws, boot.seed)


def auc_agreement(rows: pd.DataFrame, col: str, boot=None, permutations: int = 1000, seed: int = 0) -> dict:
    """Within-judgement weighted AUC of `col` for golden vs bad: value, interval, permutation p."""
    scored = _mixed(rows, col)
    if scored.empty:
        return {"judgements": 0, "auc": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan}
    y, w = scored["golden"].to_numpy(bool), scored["weight"].to_numpy(float)
    scores, strata = scored[col].to_numpy(float), scored["record_id"].to_numpy()
    auc = AUC(y, scores, strata)
    out = {"judgements": scored["record_id"].nunique(), "auc": auc(w), "ci_low": np.nan, "ci_high": np.nan}
    if (sub := _sub(boot, scored)) is not None:
        out["ci_low"], out["ci_high"] = sub.interval(auc, base=w)
    blocks, rng = _Blocks(strata), np.random.default_rng(seed)
    inverse = np.empty_like(blocks.order)
    inverse[blocks.order] = np.arange(len(scores))
    null = [AUC(y, blocks.shuffled(scores[blocks.order], rng)[inverse], strata)(w) for _ in range(permutations)]
    out["p_value"] = _p(np.asarray(null), out["auc"])
    return out


def top1_agreement(rows: pd.DataFrame, col: str, boot=None, permutations: int = 1000, seed: int = 0) -> dict:
    """Share of judgements whose top-scored shown seed is golden, vs a random shown seed; difference, interval, p."""
    scored = _mixed(rows, col)
    if scored.empty:
        return {"top1": np.nan, "chance": np.nan, "difference": np.nan, "diff_ci_low": np.nan,
                "diff_ci_high": np.nan, "top1_p_value": np.nan}
    blocks = _Blocks(scored["record_id"].to_numpy())
    golden = scored["golden"].to_numpy(float)[blocks.order]
    scores = scored[col].to_numpy(float)[blocks.order]
    hits = blocks.best_hits(scores, golden)
    chance = np.add.reduceat(golden, blocks.starts) / np.diff(np.r_[blocks.starts, len(golden)])
    out = {"top1": float(hits.mean()), "chance": float(chance.mean()), "difference": float((hits - chance).mean()),
           "diff_ci_low": np.nan, "diff_ci_high": np.nan}
    if boot is not None:  # one row per judgement, clustered by prompt
        first = scored.iloc[blocks.order[blocks.starts]]
        sub = ClusterBootstrap(first["prompt_id"], None, boot.draws, boot.seed)
        out["diff_ci_low"], out["diff_ci_high"] = sub.interval(lambda m: np.dot(m, hits - chance) / m.sum())
    rng = np.random.default_rng(seed)
    null = [(blocks.best_hits(blocks.shuffled(scores, rng), golden) - chance).mean() for _ in range(permutations)]
    out["top1_p_value"] = _p(np.asarray(null), out["difference"])
    return out


def pairwise_agreement(pairs: pd.DataFrame | None, col: str, draws: int = 1000, permutations: int = 1000,
                       seed: int = 0) -> dict:
    """Share of decided pairs where the verifier scores the human winner higher; prompt-clustered interval, p."""
    empty = {"pairs": 0, "pair_agreement": np.nan, "pair_ci_low": np.nan, "pair_ci_high": np.nan,
             "pair_p_value": np.nan}
    if pairs is None or f"left_{col}" not in pairs:
        return empty
    decided = pairs[pairs["winner"].isin(["left", "right"])].dropna(subset=[f"left_{col}", f"right_{col}"])
    if decided.empty:
        return empty
    margin = decided[f"left_{col}"].to_numpy(float) - decided[f"right_{col}"].to_numpy(float)
    margin *= np.where(decided["winner"] == "left", 1.0, -1.0)  # > 0: the verifier prefers the human winner
    agree = (margin > 0) + 0.5 * (margin == 0)
    out = {"pairs": len(decided), "pair_agreement": float(agree.mean()), "pair_ci_low": np.nan,
           "pair_ci_high": np.nan}
    boot = ClusterBootstrap(decided["prompt_id"], None, draws, seed)
    out["pair_ci_low"], out["pair_ci_high"] = boot.interval(lambda m: np.dot(m, agree) / m.sum())
    rng = np.random.default_rng(seed)
    flips = rng.random((permutations, len(agree))) < 0.5
    out["pair_p_value"] = _p(np.where(flips, 1 - agree, agree).mean(axis=1), out["pair_agreement"])
    return out


def correlations(rows: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Within-prompt Spearman between verifiers (and `people`: the seed's golden rate on the prompt).

    One row per (prompt, seed) image; each score ranked within its prompt (average ranks), the ranks
    centred per prompt, then Pearson over all prompts (pairwise complete): a pooled within-prompt Spearman.
    """
    cols = {n: column(n) for n in names}
    images = rows.groupby(["prompt_id", "seed"]).agg({**{c: "first" for c in cols.values()}, "golden": "mean"})
    ranked = pd.DataFrame({n: images[c] for n, c in {**cols, "people": "golden"}.items()})
    ranked = ranked.groupby(level="prompt_id").rank(method="average")
    centred = ranked - ranked.groupby(level="prompt_id").transform("mean")
    return centred.corr(min_periods=3)


def verdict(table: pd.DataFrame) -> tuple[str | None, str]:
    """(the verifier that agrees best, or None; one sentence). Needs `primary`, `p_holm` and the measures."""
    significant = table[table["p_holm"] < ALPHA]
    if significant.empty:
        tested = ", ".join(f"{r.verifier} p_holm {format_p(r.p_holm)}" for r in table.itertuples())
        return None, f"No verifier beats chance at Holm-adjusted p < {ALPHA} ({tested or 'nothing to test'})."
    best = significant.sort_values("primary", ascending=False).iloc[0]
    measure = "within-judgement AUC" if best["measure"] == "auc" else "agreement on pairwise answers"
    text = (f"{best['verifier']} agrees best with people: {measure} {best['primary']:.3f} "
            f"{format_ci(best['primary_ci_low'], best['primary_ci_high'])}, Holm-adjusted p {format_p(best['p_holm'])}")
    if best["measure"] == "auc" and np.isfinite(best.get("top1", np.nan)):
        text += f"; its top seed was golden {best['top1']:.0%} of the time vs {best['chance']:.0%} for a random pick"
    others = len(significant) - 1
    return str(best["verifier"]), text + (f". {others} other verifier(s) also beat chance; the differences between "
                                          "them are not tested." if others else ".")


def analyse(rows: pd.DataFrame, pairs: pd.DataFrame | None = None, names: list[str] | None = None,
            boot: ClusterBootstrap | None = None, permutations: int = 1000, seed: int = 0) -> dict:
    """Every measure per verifier in one table, the correlation matrix, and the verdict.

    `boot`: the group's bootstrap (draws, seed; seeds resampled where they repeat); None: 1000 draws over prompts.
    """
    names = names or present(rows, pairs)
    boot = boot or ClusterBootstrap(rows["prompt_id"], None, 1000, seed)
    out = []
    for name in names:
        col = column(name)
        row = {"verifier": name}
        if col in rows:
            row.update(auc_agreement(rows, col, boot, permutations, seed))
            row.update(top1_agreement(rows, col, boot, permutations, seed))
        row.update(pairwise_agreement(pairs, col, boot.draws, permutations, seed))
        use_auc = bool(np.isfinite(row.get("auc", np.nan)))
        keys = ("auc", "ci_low", "ci_high", "p_value") if use_auc else \
            ("pair_agreement", "pair_ci_low", "pair_ci_high", "pair_p_value")
        row["measure"] = "auc" if use_auc else "pairs"
        row.update(zip(("primary", "primary_ci_low", "primary_ci_high", "primary_p"), (row[k] for k in keys)))
        out.append(row)
    table = pd.DataFrame(out)
    if table.empty:
        return {"table": table, "correlation": pd.DataFrame(), "best": None, "verdict": "No verifier scores."}
    table["p_holm"] = holm(table["primary_p"].to_numpy(float))
    best, text = verdict(table)
    scored = [n for n in names if column(n) in rows]
    return {"table": table, "correlation": correlations(rows, scored) if scored else pd.DataFrame(),
            "best": best, "verdict": text}
