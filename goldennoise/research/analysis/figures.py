"""Matplotlib figures of one group's analysis, as PNG bytes (Agg backend, no display needed).

A figure that shows a subset says so in its title ("40 of 120 seeds: top 20 and
bottom 20 by shrunk rate"); the full table is always in the report.
"""

from __future__ import annotations

import io
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from goldennoise.research.analysis.inference import format_p  # noqa: E402

GOLD, BAD, GREY = "#d4a017", "#5b6b7a", "#999999"
MAX_BARS = 60


def _errors(value, low, high):
    """Error bar lengths below and above `value`; never negative, NaN drawn as none."""
    value, low, high = (np.asarray(v, dtype=float) for v in (value, low, high))
    return [np.nan_to_num(np.maximum(value - low, 0)), np.nan_to_num(np.maximum(high - value, 0))]


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _ends(table, keep: int = MAX_BARS):
    """All rows, or the first and last keep/2 (the table is sorted), and a note of what was left out."""
    if len(table) <= keep:
        return table, ""
    half = keep // 2
    return (table.iloc[np.r_[0:half, len(table) - half:len(table)]],
            f"\n{keep} of {len(table)} shown (top and bottom {half}); {len(table) - keep} left out, all in the table")


def rates(per_prompt, per_annotator) -> bytes:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    left.hist(per_prompt["golden_rate"], bins=np.linspace(0, 1, 11), color=GOLD, edgecolor="white")
    left.set(title=f"Golden rate per prompt (all {len(per_prompt)})", xlabel="golden rate", ylabel="prompts")
    y = np.arange(len(per_annotator))
    right.barh(y, per_annotator["golden_rate"], color=GOLD,
               xerr=_errors(per_annotator["golden_rate"], per_annotator["ci_low"], per_annotator["ci_high"]))
    right.set_yticks(y, per_annotator["annotator"].astype(str))
    right.set(title="Per annotator (95% CI, clustered)", xlim=(0, 1))
    return _png(fig)


def clip_scores(rows) -> bytes:
    scored = rows.dropna(subset=["clip_score"])
    fig, ax = plt.subplots(figsize=(6, 3.4))
    bins = np.linspace(scored["clip_score"].min(), scored["clip_score"].max() + 1e-9, 25)
    for golden, colour, label in ((False, BAD, "bad"), (True, GOLD, "golden")):
        part = scored[scored["golden"] == golden]
        ax.hist(part["clip_score"], bins=bins, weights=part["weight"], density=True, alpha=0.6, color=colour,
                label=label)
    ax.set(title="CLIP score of golden vs bad seeds (weighted by 1/propensity)", xlabel="CLIP score", ylabel="density")
    ax.legend()
    return _png(fig)


def forest(noise_stats, weighted: bool = False, top: int = 25) -> bytes:
    shown = noise_stats.dropna(subset=["r"]).head(top).iloc[::-1]
    left_out = len(noise_stats) - len(shown)
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(shown) + 1.4))
    y = np.arange(len(shown))
    significant = (shown["q_value"] < 0.05).to_numpy()
    ax.errorbar(shown["r"], y, xerr=_errors(shown["r"], shown["r_ci_low"], shown["r_ci_high"]), fmt="none",
                ecolor=GREY, capsize=2)
    ax.scatter(shown["r"], y, color=np.where(significant, GOLD, "black"), zorder=3)
    ax.axvline(0, color=GREY, lw=0.8)
    ax.set_yticks(y, [f"{f}{' *' if s else ''}" for f, s in zip(shown["feature"], significant)], fontsize=8)
    note = f"{len(shown)} smallest p of {len(noise_stats)} features" + (f", {left_out} left out" if left_out else "")
    what = ("r weighted by 1/P(shown) (95% CI: Fisher z, clustered-bootstrap SE)" if weighted
            else "Pearson r (95% CI, unadjusted)")
    ax.set(title=f"Noise feature vs seed's golden label: {what}\n{note}; * = BH q < 0.05",
           xlabel="r over distinct noises" + (", weighted" if weighted else ""))
    return _png(fig)


def nulls(entries: dict) -> bytes:
    fig, axes = plt.subplots(1, len(entries), figsize=(4.2 * len(entries), 3.2), squeeze=False)
    for ax, entry in zip(axes[0], entries.values()):
        null = np.asarray(entry["null"], dtype=float)
        ax.hist(null[np.isfinite(null)], bins=25, color=GREY, edgecolor="white")
        ax.axvline(entry["observed"], color=GOLD, lw=2, label=f"observed {entry['observed']:.3f}")
        ax.axvline(entry["chance"], color="black", lw=0.8, ls="--", label=f"chance {entry['chance']:g}")
        p_text = f"p = {format_p(entry['p_value'])} ({len(null)} permutations)"
        ax.set_title(textwrap.fill(entry["label"], 52) + "\n" + p_text, fontsize=8)
        ax.legend(fontsize=7)
    return _png(fig)


def seeds(table, split: dict | None) -> bytes:
    shown, note = _ends(table)
    fig, axes = plt.subplots(1, 2 if split else 1, figsize=(12 if split else 8, 3.6), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 1]} if split else None)
    ax = axes[0][0]
    x = np.arange(len(shown))
    ax.bar(x, shown["shrunk_rate"], color=GOLD,
           yerr=_errors(shown["shrunk_rate"], shown["ci_low"], shown["ci_high"]), capsize=1)
    ax.scatter(x, shown["raw_rate"], color=BAD, s=8, zorder=3, label="raw rate")
    ax.set_xticks(x, shown["seed"].astype(str), rotation=90, fontsize=6)
    ax.set_title(f"Per-seed golden rate, shrunk (beta-binomial), 95% EB interval (prior as known){note}", fontsize=9)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    if split:
        ax = axes[0][1]
        ax.bar([0, 1], [split["top_quarter_rate_on_b"], split["all_rate_on_b"]], color=[GOLD, GREY])
        ax.set_xticks([0, 1], ["top quarter\non half A", "all seeds"])
        ax.set_title(f"Rate on half B (mean of {split['splits']} splits)\nSpearman rho A vs B {split['rho_mean']:.2f}",
                     fontsize=9)
        ax.set_ylim(0, 1)
    return _png(fig)


def scatter(coords, colour, title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(5, 4.2))
    points = ax.scatter(coords[:, 0], coords[:, 1], c=colour, cmap="cividis", s=12, vmin=-0.5, vmax=0.5)
    fig.colorbar(points, ax=ax, label="seed's prompt-centred golden rate")
    ax.set_title(textwrap.fill(title, 48), fontsize=9)
    ax.set(xticks=[], yticks=[])
    return _png(fig)


def strengths(table) -> bytes:
    shown, note = _ends(table)
    fig, ax = plt.subplots(figsize=(max(5, 0.22 * len(shown) + 1.5), 3.4))
    x = np.arange(len(shown))
    ax.errorbar(x, shown["log_strength"], yerr=_errors(shown["log_strength"], shown["ci_low"], shown["ci_high"]),
                fmt="o", color=GOLD, ecolor=GREY, capsize=2)
    ax.axhline(0, color=GREY, lw=0.8)
    ax.set_xticks(x, shown["seed"].astype(str), rotation=90, fontsize=6)
    ax.set_title(f"Bradley-Terry log-strength per seed (95% CI, prompts resampled){note}", fontsize=9)
    ax.set_ylabel("log strength")
    return _png(fig)


def verifiers(table) -> bytes:
    """Each verifier's agreement with people (95% CI, clustered) beside chance: AUC, top-1 minus random, pairs."""
    panels = [("auc", "ci_low", "ci_high", 0.5, "within-judgement AUC"),
              ("difference", "diff_ci_low", "diff_ci_high", 0.0, "top-1 golden minus random pick"),
              ("pair_agreement", "pair_ci_low", "pair_ci_high", 0.5, "agreement on pairwise answers")]
    panels = [p for p in panels if p[0] in table and table[p[0]].notna().any()]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(4.2 * max(len(panels), 1), 0.45 * len(table) + 1.6),
                             squeeze=False)
    y = np.arange(len(table))[::-1]
    best = (table["p_holm"] < 0.05).to_numpy() if "p_holm" in table else np.zeros(len(table), bool)
    for ax, (value, low, high, chance, title) in zip(axes[0], panels):
        ax.errorbar(table[value], y, xerr=_errors(table[value], table[low], table[high]), fmt="none", ecolor=GREY,
                    capsize=2)
        ax.scatter(table[value], y, color=np.where(best, GOLD, "black"), zorder=3)
        ax.axvline(chance, color="black", lw=0.8, ls="--")
        ax.set_yticks(y, [f"{v}{' *' if b else ''}" for v, b in zip(table["verifier"], best)])
        ax.set_title(title, fontsize=9)
    fig.suptitle("Verifier vs people (95% CI, prompts resampled; dashed = chance; * = Holm p < 0.05)", fontsize=9)
    return _png(fig)
