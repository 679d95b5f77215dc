"""Matplotlib figures of an analysis, as PNG bytes (Agg backend, no display needed)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

GOLD, BAD = "#d4a017", "#5b6b7a"


def _errors(value, low, high):
    """Error bar lengths below and above `value`; never negative (rates at 0 or 1 round that way)."""
    return [np.maximum(value - low, 0), np.maximum(high - value, 0)]


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def rates(per_prompt, per_annotator) -> bytes:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.hist(per_prompt["golden_rate"], bins=np.linspace(0, 1, 11), color=GOLD, edgecolor="white")
    left.set(title="Golden rate per prompt", xlabel="golden seeds / seeds shown", ylabel="prompts")
    y = np.arange(len(per_annotator))
    right.barh(y, per_annotator["golden_rate"], color=GOLD,
               xerr=_errors(per_annotator["golden_rate"], per_annotator["ci_low"], per_annotator["ci_high"]))
    right.set_yticks(y, per_annotator["annotator"])
    right.set(title="Golden rate per annotator (95% CI)", xlim=(0, 1))
    return _png(fig)


def clip_scores(table) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    scored = table.dropna(subset=["clip_score"])
    bins = np.linspace(scored["clip_score"].min(), scored["clip_score"].max(), 25) if len(scored) else 10
    ax.hist(scored[~scored["golden"]]["clip_score"], bins=bins, alpha=0.6, color=BAD, label="bad")
    ax.hist(scored[scored["golden"]]["clip_score"], bins=bins, alpha=0.6, color=GOLD, label="golden")
    ax.set(title="CLIP score of golden vs bad seeds", xlabel="CLIP score", ylabel="seeds")
    ax.legend()
    return _png(fig)


def effect_sizes(noise_stats, top: int = 15) -> bytes:
    shown = noise_stats.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.32 * len(shown) + 1.2))
    y = np.arange(len(shown))
    ax.errorbar(shown["cohens_d"], y, xerr=_errors(shown["cohens_d"], shown["d_ci_low"], shown["d_ci_high"]),
                fmt="o", color="black", ecolor="gray", capsize=2)
    ax.axvline(0, color="gray", lw=0.8)
    ax.set_yticks(y, shown["feature"])
    ax.set(title="Golden vs bad noise: Cohen's d (95% bootstrap CI)", xlabel="d (golden - bad)")
    return _png(fig)


def scatter(coords, golden, title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(5, 4.2))
    ax.scatter(coords[~golden, 0], coords[~golden, 1], s=10, color=BAD, alpha=0.6, label="bad")
    ax.scatter(coords[golden, 0], coords[golden, 1], s=14, color=GOLD, alpha=0.9, label="golden")
    ax.set(title=title, xticks=[], yticks=[])
    ax.legend()
    return _png(fig)


def interval_bars(table, key: str, title: str, top: int = 30) -> bytes:
    shown = table.head(top)
    fig, ax = plt.subplots(figsize=(max(5, 0.28 * len(shown) + 1.5), 3.6))
    x = np.arange(len(shown))
    ax.bar(x, shown["golden_rate"], color=GOLD,
           yerr=_errors(shown["golden_rate"], shown["ci_low"], shown["ci_high"]), capsize=2)
    ax.set_xticks(x, shown[key].astype(str), rotation=90, fontsize=7)
    ax.set(title=title, ylabel="golden rate", ylim=(0, 1))
    return _png(fig)


def roc(curves: dict) -> bytes:
    from sklearn.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for label, (y, scores) in curves.items():
        fpr, tpr, _ = roc_curve(y, scores)
        ax.plot(fpr, tpr, label=label)
    ax.plot([0, 1], [0, 1], color="gray", lw=0.8, ls="--")
    ax.set(title="Seed selector, held out (grouped by prompt)", xlabel="false positive rate", ylabel="true positive rate")
    ax.legend(fontsize=7)
    return _png(fig)
