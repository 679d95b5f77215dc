"""What the collected golden-noise data says: `analyze(outputs)` and the HTML report.

    python -m goldennoise.analysis OUTPUTS [--out report.html] [--no-selector]

Works from `records.jsonl` alone (plus the saved images for CLIP embeddings).
Runs on the most common noise shape (one model and size); other shapes are
counted in the summary and noted. Parts that need more data than there is
(no CLIP scores, no pooled seeds, one annotator) are skipped with a note rather
than shown as empty figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from goldennoise import dataset, selector
from goldennoise.analysis import embedding, figures, stats
from goldennoise.features import feature_matrix
from goldennoise.records import RecordStore

MIN_SAMPLES = 20


@dataclass
class Analysis:
    summary: dict[str, pd.DataFrame]
    clip: dict
    noise_stats: pd.DataFrame | None
    clusters: pd.DataFrame | None
    seed_rates: pd.DataFrame
    seed_test: dict
    selector_results: pd.DataFrame | None
    agreement: pd.DataFrame
    figures: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    selector: selector.SeedSelector | None = None


def analyze(outputs: str | Path, with_selector: bool = True, clip_embeddings: bool = True) -> Analysis:
    """Run every analysis on the records under `outputs`."""
    outputs = Path(outputs)
    read = RecordStore(outputs).read()
    notes = [f"{w}" for w in read.warnings]
    full = dataset.sample_table(read.records)
    if full.empty:
        raise ValueError(f"{outputs}: no judgements to analyse yet.")
    table = dataset.main_shape(full)
    if len(table) < len(full):
        notes.append(f"Noise analyses use shape {table['noise_shape'].iloc[0]} ({len(table)} of {len(full)} seeds); "
                     "other models/sizes are in the summary only.")
    summary = stats.summary(full)
    golden = table["golden"].to_numpy(bool)
    figs = {"golden_rates": figures.rates(summary["per_prompt"], summary["per_annotator"])}
    clip = stats.clip_agreement(full)
    if clip.get("judgements_used"):
        figs["clip_scores"] = figures.clip_scores(full)
    else:
        notes.append("CLIP agreement: " + clip["note"] + ".")
    seed_table, seed_test = stats.seed_rates(full)
    if len(seed_table):
        figs["seed_rates"] = figures.interval_bars(seed_table, "seed", "Golden rate per pooled seed (95% CI)")
    else:
        notes.append("Per-seed rates: " + seed_test["note"] + ".")
    agreement = stats.agreement(full)
    if agreement.empty:
        notes.append("Agreement: no seed was judged by two annotators (use --overlap).")
    analysis = Analysis(summary, clip, None, None, seed_table, seed_test, None, agreement, figs, notes)
    if len(table) < MIN_SAMPLES or golden.all() or not golden.any():
        notes.append(f"Noise statistics, embeddings and the selector need {MIN_SAMPLES}+ seeds with both golden "
                     f"and bad among them; have {len(table)} seeds, {int(golden.sum())} golden.")
        return analysis
    noises = dataset.load_noises(table)  # re-made from the records and verified against their sha256
    X, names = feature_matrix(noises)
    analysis.noise_stats = stats.noise_statistics(pd.DataFrame(X, columns=names), golden)
    figs["effect_sizes"] = figures.effect_sizes(analysis.noise_stats)
    figs["noise_tsne"] = figures.scatter(embedding.tsne(noises), golden, "t-SNE of noises")
    figs["noise_umap"] = figures.scatter(embedding.umap(noises), golden, "UMAP of noises")
    cluster_labels, analysis.clusters = embedding.clusters(noises, golden)
    figs["clusters"] = figures.interval_bars(analysis.clusters, "cluster", "Golden rate per k-means cluster of noises")
    if clip_embeddings:
        _clip_embedding_figure(table, read.records, outputs, golden, figs, notes)
    if with_selector:
        _selector(analysis, X, names, table, golden, noises.shape[1:])
    return analysis


def _clip_embedding_figure(table, records, outputs, golden, figs, notes) -> None:
    used = set(table["record_id"])
    clip_name = next((r.clip_model["id"] for r in records if r.clip_model and r.record_id in used), None)
    if clip_name is None:
        notes.append("CLIP image embeddings: no CLIP model recorded.")
        return
    try:
        vectors = embedding.clip_image_embeddings([outputs / p for p in table["image_path"]], clip_name)
    except Exception as error:  # model not cached, images moved: the figure is optional
        notes.append(f"CLIP image embeddings skipped: {str(error).splitlines()[0]}")
        return
    figs["clip_tsne"] = figures.scatter(embedding.tsne(vectors), golden, f"t-SNE of image embeddings ({clip_name})")


def _selector(analysis: Analysis, X, names, table, golden, noise_shape) -> None:
    groups = table["prompt_id"].to_numpy()
    if len(np.unique(groups)) < 5:
        analysis.notes.append("Seed selector: needs judgements on 5+ prompts for grouped cross-validation.")
        return
    results = selector.evaluate(X, golden.astype(int), groups)
    analysis.selector_results = pd.DataFrame(results)
    curves = {}
    for name, fit in selector.MODELS.items():
        curves[f"{name} (held out)"] = (golden, selector.out_of_fold(X, golden.astype(int), groups, fit))
    shuffled = selector.shuffle_within_groups(golden.astype(int), groups)
    curves["logistic, shuffled labels"] = (shuffled, selector.out_of_fold(X, shuffled, groups, selector._logistic))
    analysis.figures["selector_roc"] = figures.roc(curves)
    real = analysis.selector_results.query("labels == 'real' and model == 'logistic regression'")
    analysis.selector = selector.train(X, golden.astype(int), names, list(noise_shape), float(real["held_out_auc"].iloc[0]))
