"""A self-contained HTML report of an `Analysis` (figures inlined as base64 PNG)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from goldennoise.analysis import Analysis

TITLES = {
    "golden_rates": "Golden rates", "clip_scores": "CLIP scores", "effect_sizes": "Noise statistics",
    "noise_tsne": "t-SNE of noises", "noise_umap": "UMAP of noises", "clusters": "Clusters",
    "clip_tsne": "t-SNE of image CLIP embeddings", "seed_rates": "Seeds across prompts", "selector_roc": "Seed selector",
}
CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f6f3e8}img{max-width:100%;border:1px solid #eee;margin:.3em 0}.note{color:#8a5a00}"""


def _table(frame: pd.DataFrame | None, rows: int = 30) -> str:
    if frame is None or frame.empty:
        return "<p class='note'>Not enough data.</p>"
    return frame.head(rows).to_html(index=False, float_format=lambda v: f"{v:.3f}", escape=True, border=0)


def _figure(analysis: Analysis, name: str) -> str:
    if name not in analysis.figures:
        return ""
    data = base64.b64encode(analysis.figures[name]).decode()
    return f"<img alt='{TITLES[name]}' src='data:image/png;base64,{data}'>"


def _dict(values: dict) -> str:
    return _table(pd.DataFrame([values]))


def render(analysis: Analysis, source: str) -> str:
    parts = [f"<!doctype html><meta charset='utf-8'><title>GoldenNoise report</title><style>{CSS}</style>",
             f"<h1>GoldenNoise report</h1><p>{html.escape(source)}</p>"]
    if analysis.notes:
        parts.append("<ul>" + "".join(f"<li class='note'>{html.escape(n)}</li>" for n in analysis.notes) + "</ul>")
    s = analysis.summary
    parts += ["<h2>Dataset</h2>", _table(s["overall"]), _figure(analysis, "golden_rates"),
              "<h3>Per annotator</h3>", _table(s["per_annotator"]), "<h3>Per model and parameters</h3>",
              _table(s["per_model"]), "<h3>Per prompt</h3>", _table(s["per_prompt"].sort_values("golden_rate"))]
    parts += ["<h2>Does CLIP agree with the annotator?</h2>",
              "<p>Within each judgement, the ROC AUC of CLIP score for golden vs bad seeds (0.5 = no agreement), "
              "and how often the seed CLIP ranks first was golden, against the chance of picking a golden seed at random.</p>",
              _dict(analysis.clip), _figure(analysis, "clip_scores")]
    parts += ["<h2>Golden vs bad noise</h2>", _figure(analysis, "effect_sizes"), _table(analysis.noise_stats, 40),
              "<h2>Embeddings and clusters</h2>", _figure(analysis, "noise_tsne"), _figure(analysis, "noise_umap"),
              _figure(analysis, "clip_tsne"), "<h3>k-means clusters of noises</h3>", _figure(analysis, "clusters"),
              _table(analysis.clusters)]
    parts += ["<h2>Are some seeds good for every prompt?</h2>",
              "<p>Seeds judged on several prompts (pool strategy), with Wilson 95% intervals, and a chi-square test of "
              "the hypothesis that every seed has the same golden rate.</p>",
              _dict(analysis.seed_test), _figure(analysis, "seed_rates"), _table(analysis.seed_rates)]
    parts += ["<h2>Seed selector</h2>",
              "<p>Held-out AUC only: cross-validation with folds grouped by prompt; interval from a bootstrap over prompts. "
              "The control re-runs it with labels shuffled within each prompt and should sit near 0.5.</p>",
              _table(analysis.selector_results), _figure(analysis, "selector_roc")]
    parts += ["<h2>Agreement between annotators</h2>", _table(analysis.agreement)]
    return "\n".join(parts)


def write(analysis: Analysis, outputs: Path, report_path: Path | None = None) -> dict:
    """Write the report, each figure as PNG and the trained selector under `outputs/analysis/`."""
    from goldennoise.selector import SELECTOR_FILE

    folder = Path(outputs) / "analysis"
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    report_path = report_path or folder / "report.html"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(render(analysis, str(outputs)), encoding="utf-8")
    figure_paths = []
    for name, png in analysis.figures.items():
        path = folder / "figures" / f"{name}.png"
        path.write_bytes(png)
        figure_paths.append((path, TITLES[name]))
    written = {"report": report_path, "figures": figure_paths, "selector": None}
    if analysis.selector is not None:
        written["selector"] = folder / SELECTOR_FILE
        analysis.selector.save(written["selector"])
    return written
