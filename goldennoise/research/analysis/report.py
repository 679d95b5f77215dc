"""Self-contained HTML reports (figures inlined as PNG) of each group, and an index when there are several.

Everything that came from users (prompts, annotator names, campaign names) is
escaped: tables through pandas `to_html(escape=True)`, every other string through
`html.escape`. Every table says what it shows: all its rows, or which ones and how
many were left out (the full table is then written as CSV beside the report).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from goldennoise.research.analysis import sections
from goldennoise.research.analysis.html import CSS, bullets, e, pairs


def safe_name(text: str) -> str:
    """A path component from user-chosen text (campaign ids are slugs already; this is a guard)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "_"


def render(result, outputs: str, folder: Path) -> str:
    """The group report as one HTML string (tables are also written as CSV under `folder/tables`)."""
    parts = [f"<!doctype html><meta charset='utf-8'><title>GoldenNoise analysis: {e(result.key)}</title>",
             f"<style>{CSS}</style><h1>GoldenNoise analysis</h1>",
             f"<p>Group {e(result.label)}, from {e(outputs)}.</p>",
             "<h2>Design</h2>", pairs(result.design),
             "<h2>Caveats</h2>", bullets(result.caveats, "None found in the data."),
             ]
    if result.corrected:
        parts += ["<h2>Claims corrected for pre-filtering</h2>", bullets(result.corrected)]
    parts += ["<h2>Summary</h2>", bullets(result.summary)]
    parts += sections.body(result, folder)
    parts += ["<h2>Notes</h2>", bullets(result.notes, "None.")]
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
        parts.append(f"<h2><a href='{e(link)}'>{e(key)}</a></h2>{bullets(summary)}")
    parts += ["<h2>Notes</h2>", bullets(notes, "None.")]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
