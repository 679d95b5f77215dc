"""Statistics over the sample table: summaries, CLIP vs annotator, noise effects, seed rates, agreement.

Every rate comes with a count, every comparison with an interval: Wilson intervals
for proportions, bootstrap intervals (resampling prompts or rows) for AUCs and
effect sizes. Functions take the tables from `goldennoise.dataset` and return
pandas tables or plain dicts, ready for the report and the app.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a proportion."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def _rate_table(table: pd.DataFrame, by: str) -> pd.DataFrame:
    rows = []
    for key, group in table.groupby(by, sort=True):
        golden, n = int(group["golden"].sum()), len(group)
        low, high = wilson(golden, n)
        rows.append({by: key, "judgements": group["record_id"].nunique(), "seeds_judged": n,
                     "golden": golden, "golden_rate": golden / n, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Overall, per-prompt, per-annotator and per-model/parameters golden rates."""
    golden, n = int(table["golden"].sum()), len(table)
    low, high = wilson(golden, n)
    records = table.drop_duplicates("record_id")
    overall = pd.DataFrame([{
        "prompts_judged": table["prompt_id"].nunique(), "judgements": len(records), "seeds_judged": n,
        "golden": golden, "golden_rate": golden / n if n else float("nan"), "ci_low": low, "ci_high": high,
        "none_golden": int((records["verdict"] == "none_golden").sum()),
        "all_golden": int((records["verdict"] == "all_golden").sum()),
        "annotators": table["annotator"].nunique(),
    }])
    table = table.assign(model_parameters=table["model"] + " " + table["parameters"])
    return {"overall": overall, "per_prompt": _rate_table(table, "prompt"),
            "per_annotator": _rate_table(table, "annotator"), "per_model": _rate_table(table, "model_parameters")}


def clip_agreement(table: pd.DataFrame, draws: int = 1000, seed: int = 0) -> dict:
    """Does CLIP agree with the annotator? Within-prompt AUC and how often the best-CLIP seed was golden."""
    from sklearn.metrics import roc_auc_score

    scored = table.dropna(subset=["clip_score"])
    aucs, best_golden, chance = [], [], []
    for _, group in scored.groupby("record_id"):
        if 0 < group["golden"].sum() < len(group):
            aucs.append(roc_auc_score(group["golden"], group["clip_score"]))
            best_golden.append(bool(group.loc[group["clip_score"].idxmax(), "golden"]))
            chance.append(group["golden"].mean())
    if not aucs:
        return {"judgements_used": 0, "note": "no judgement with both golden and bad seeds and CLIP scores"}
    aucs = np.array(aucs)
    rng = np.random.default_rng(seed)
    boot = [rng.choice(aucs, size=len(aucs)).mean() for _ in range(draws)]
    hits = int(np.sum(best_golden))
    low, high = wilson(hits, len(best_golden))
    return {"judgements_used": len(aucs), "mean_within_prompt_auc": float(aucs.mean()),
            "auc_ci_low": float(np.percentile(boot, 2.5)), "auc_ci_high": float(np.percentile(boot, 97.5)),
            "best_clip_was_golden": hits / len(best_golden), "best_clip_ci_low": low, "best_clip_ci_high": high,
            "chance_best_clip_golden": float(np.mean(chance))}


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else 0.0


def noise_statistics(features: pd.DataFrame, golden: np.ndarray, draws: int = 500, seed: int = 0) -> pd.DataFrame:
    """Per feature: golden vs bad means, Cohen's d with a bootstrap 95% interval, Mann-Whitney p."""
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(seed)
    rows = []
    g_idx, b_idx = np.flatnonzero(golden), np.flatnonzero(~golden)
    for name in features.columns:
        values = features[name].to_numpy()
        a, b = values[g_idx], values[b_idx]
        boot = [cohens_d(rng.choice(a, len(a)), rng.choice(b, len(b))) for _ in range(draws)]
        rows.append({"feature": name, "golden_mean": a.mean(), "bad_mean": b.mean(), "cohens_d": cohens_d(a, b),
                     "d_ci_low": np.percentile(boot, 2.5), "d_ci_high": np.percentile(boot, 97.5),
                     "mann_whitney_p": float(mannwhitneyu(a, b).pvalue)})
    return pd.DataFrame(rows).sort_values("cohens_d", key=np.abs, ascending=False).reset_index(drop=True)


def seed_rates(table: pd.DataFrame, min_prompts: int = 2) -> tuple[pd.DataFrame, dict]:
    """Golden rate of each seed judged on several prompts, and a test of 'all seeds are alike'."""
    from scipy.stats import chi2_contingency

    counts = table.groupby("seed").agg(prompts=("prompt_id", "nunique"), golden=("golden", "sum"),
                                       judged=("golden", "size")).reset_index()
    counts = counts[counts["prompts"] >= min_prompts].copy()
    if counts.empty:
        return counts, {"seeds": 0, "note": f"no seed was judged on {min_prompts}+ prompts (use the pool strategy)"}
    counts["golden_rate"] = counts["golden"] / counts["judged"]
    intervals = [wilson(int(g), int(n)) for g, n in zip(counts["golden"], counts["judged"])]
    counts["ci_low"], counts["ci_high"] = zip(*intervals)
    counts = counts.sort_values("golden_rate", ascending=False).reset_index(drop=True)
    test = {"seeds": len(counts)}
    contingency = np.array([counts["golden"], counts["judged"] - counts["golden"]]).T
    if len(counts) >= 2 and contingency.sum(axis=0).min() > 0:
        chi2, p, dof, _ = chi2_contingency(contingency)
        test.update({"chi2": float(chi2), "dof": int(dof), "p_value": float(p)})
    return counts, test


def _kappa(a: np.ndarray, b: np.ndarray) -> float:
    observed = np.mean(a == b)
    expected = a.mean() * b.mean() + (1 - a.mean()) * (1 - b.mean())
    return float((observed - expected) / (1 - expected)) if expected < 1 else 1.0


def agreement(table: pd.DataFrame) -> pd.DataFrame:
    """Per pair of annotators: seeds both judged (same prompt, same seed), percent agreement, Cohen's kappa."""
    both = table[["prompt_id", "seed", "annotator", "golden"]].drop_duplicates(["prompt_id", "seed", "annotator"])
    wide = both.pivot_table(index=["prompt_id", "seed"], columns="annotator", values="golden", aggfunc="first")
    rows = []
    names = list(wide.columns)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            pair = wide[[first, second]].dropna()
            if pair.empty:
                continue
            a, b = pair[first].astype(bool).to_numpy(), pair[second].astype(bool).to_numpy()
            rows.append({"annotator_a": first, "annotator_b": second, "shared_prompts": pair.index.get_level_values(0).nunique(),
                         "shared_seeds": len(pair), "percent_agreement": float(np.mean(a == b)),
                         "cohens_kappa": _kappa(a, b)})
    return pd.DataFrame(rows, columns=["annotator_a", "annotator_b", "shared_prompts", "shared_seeds",
                                       "percent_agreement", "cohens_kappa"])
