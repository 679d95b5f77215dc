"""Self-contained HTML reports (figures inlined as PNG) of each group, and an index when there are several.

Everything that came from users (prompts, annotator names, campaign names) is
escaped: tables through pandas `to_html(escape=True)`, every other string through
`html.escape`. Every table says what it shows: all its rows, or which ones and how
many were left out (the full table is then written as CSV beside the report).
"""

from __future__ import annotations

import base64
import html
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from goldennoise.research.analysis.inference import format_p

CSS = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;color:#222;line-height:1.4}
table{border-collapse:collapse;font-size:13px;margin:.3em 0 1.4em}td,th{border:1px solid #ddd;padding:3px 8px}
th{background:#f6f3e8}td{text-align:right}img{max-width:100%;border:1px solid #eee;margin:.3em 0}
.note{color:#8a5a00}.caption{font-size:13px;color:#555;margin:.8em 0 0}li{margin:.2em 0}"""
MAX_ROWS = 500
P_COLUMNS = ("p_value", "q_value", "p_holm")


def _e(text) -> str:
    return html.escape(str(text))


def safe_name(text: str) -> str:
    """A path component from user-chosen text (campaign ids are slugs already; this is a guard)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "_"


def _format(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for column in frame.columns:
        if column in P_COLUMNS:
            frame[column] = [format_p(v) for v in frame[column]]
        elif pd.api.types.is_float_dtype(frame[column]):
            frame[column] = [("" if not np.isfinite(v) else f"{v:.3f}") for v in frame[column]]
    return frame


def table(frame: pd.DataFrame | None, what: str, folder: Path | None = None, name: str | None = None,
          limit: int = MAX_ROWS, ranked_by: str = "") -> str:
    """A captioned table: all rows, or the first `limit` with the count left out and the CSV holding all."""
    if frame is None or frame.empty:
        return f"<p class='note'>{_e(what)}: no rows.</p>"
    caption = f"{what}: all {len(frame)} rows."
    shown = frame
    if folder is not None and name:
        (folder / "tables").mkdir(parents=True, exist_ok=True)
        frame.to_csv(folder / "tables" / f"{name}.csv", index=False)
    if len(frame) > limit:
        shown = frame.head(limit)
        caption = (f"{what}: the first {limit} of {len(frame)} rows{' ranked by ' + ranked_by if ranked_by else ''}; "
                   f"{len(frame) - limit} left out, all in tables/{name}.csv.")
    body = _format(shown).to_html(index=False, escape=True, border=0, na_rep="")
    return f"<p class='caption'>{_e(caption)}</p>{body}"


def _list(items, empty: str = "") -> str:
    if not items:
        return f"<p>{_e(empty)}</p>" if empty else ""
    return "<ul>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"


def _figure(result, name: str) -> str:
    if name not in result.figures:
        return ""
    png, title = result.figures[name]
    return f"<img alt='{_e(title)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def _pairs(values: dict) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td style='text-align:left'>{_e(v)}</td></tr>" for k, v in values)
    return f"<table>{rows}</table>"


def render(result, outputs: str, folder: Path) -> str:
    """The group report as one HTML string (tables are also written as CSV under `folder/tables`)."""
    from goldennoise.research.analysis import sections

    parts = [f"<!doctype html><meta charset='utf-8'><title>GoldenNoise analysis: {_e(result.key)}</title>",
             f"<style>{CSS}</style><h1>GoldenNoise analysis</h1>",
             f"<p>Group {_e(result.label)}, from {_e(outputs)}.</p>",
             "<h2>Design</h2>", _pairs(result.design),
             "<h2>Caveats</h2>", _list(result.caveats, "None found in the data."),
             ]
    if result.corrected:
        parts += ["<h2>Claims corrected for pre-filtering</h2>", _list(result.corrected)]
    parts += ["<h2>Summary</h2>", _list(result.summary)]
    parts += sections.body(result, folder)
    parts += ["<h2>Notes</h2>", _list(result.notes, "None.")]
    return "\n".join(parts)


def write_group(result, outputs: Path, folder: Path) -> tuple[Path, list[tuple[str, str]]]:
    """Write the group's report.html and figures/*.png; returns the report and the (png path, title) list."""
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    path = folder / "report.html"
    path.write_text(render(result, str(outputs), folder), encoding="utf-8")
    written = []
    for name, (png, title) in result.figures.items():
        png_path = folder / "figures" / f"{name}.png"
        png_path.write_bytes(png)
        written.append((str(png_path), f"{result.key}: {title}"))
    return path, written


def write_index(entries: list[tuple[str, Path, list[str]]], path: Path, notes: list[str]) -> Path:
    """An index page linking each group's report, with its summary lines."""
    parts = [f"<!doctype html><meta charset='utf-8'><title>GoldenNoise analysis</title><style>{CSS}</style>",
             "<h1>GoldenNoise analysis</h1>",
             "<p>Each (campaign, generation configuration) group is analysed on its own: noises of different models, "
             "sizes or dtypes are not comparable.</p>"]
    for key, report, summary in entries:
        link = os.path.relpath(report, path.parent)
        parts.append(f"<h2><a href='{_e(link)}'>{_e(key)}</a></h2>{_list(summary)}")
    parts += ["<h2>Notes</h2>", _list(notes, "None.")]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
