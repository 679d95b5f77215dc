"""The HTML pieces of a report: escaped text, captioned tables, inlined figures, lists.

Shared by `report` (the page) and `sections` (its body), so neither imports the other back.
"""

from __future__ import annotations

import base64
import html
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


def e(text) -> str:
    return html.escape(str(text))


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
        return f"<p class='note'>{e(what)}: no rows.</p>"
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
    return f"<p class='caption'>{e(caption)}</p>{body}"


def bullets(items, empty: str = "") -> str:
    if not items:
        return f"<p>{e(empty)}</p>" if empty else ""
    return "<ul>" + "".join(f"<li>{e(i)}</li>" for i in items) + "</ul>"


def figure(result, name: str) -> str:
    if name not in result.figures:
        return ""
    png, title = result.figures[name]
    return f"<img alt='{e(title)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def pairs(values: dict) -> str:
    rows = "".join(f"<tr><th>{e(k)}</th><td style='text-align:left'>{e(v)}</td></tr>" for k, v in values)
    return f"<table>{rows}</table>"
