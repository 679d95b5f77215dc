"""Administrator actions behind the UI: a campaign from the form or an uploaded prompt file, analysis, export.

Form values are checked here and turned into a `Campaign` (whole numbers must be
whole, seeds are parsed from text so 64-bit values stay exact); the engine does
the switch. Analysis and export write under the outputs folder and hand the
files to the administrator's browser (Gradio copies them to its own cache).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import gradio as gr

from goldennoise.errors import UserError
from goldennoise.store.campaign import Campaign
from goldennoise.store.prompts import load_prompts
from goldennoise.ui import render
from goldennoise.ui.context import Context, message

PROMPT_FILES = "prompt-files"


def whole(value, name: str, allow_none: bool = False) -> int | None:
    """A whole number from a form value (a number box gives floats; text boxes give strings)."""
    if value in (None, "") and allow_none:
        return None
    if isinstance(value, bool):
        raise UserError(f"{name}: must be a whole number, got {value!r}.", name)
    if isinstance(value, str):
        text = value.strip()
        if not text.lstrip("-").isdigit():
            raise UserError(f"{name}: must be a whole number, got {value!r}.", name)
        return int(text)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    raise UserError(f"{name}: must be a whole number, got {value!r}.", name)


def number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{name}: must be a number, got {value!r}.", name)
    return float(value)


def campaign_from_form(current: Campaign, v: dict) -> Campaign:
    """A new campaign from the administrator's form (unchanged fields keep their values)."""
    return replace(
        current, name=str(v["name"] or current.name).strip()[:80], model=str(v["model"] or "").strip(),
        dtype=v["dtype"] or "auto", num_inference_steps=whole(v["num_inference_steps"], "num_inference_steps"),
        guidance_scale=number(v["guidance_scale"], "guidance_scale"), height=whole(v["height"], "height"),
        width=whole(v["width"], "width"), scheduler=(v["scheduler"] or None) if v["scheduler"] != "default" else None,
        batch_size=whole(v["batch_size"], "batch_size"), seed_strategy=v["seed_strategy"],
        start_seed=whole(v["start_seed"], "start_seed"), pool_size=whole(v["pool_size"], "pool_size"),
        candidates=whole(v["candidates"], "candidates"), prefilter=v["prefilter"], explore=whole(v["explore"], "explore"),
        overlap=number(v["overlap"], "overlap"), blind=bool(v["blind"]), min_view_ms=whole(v["min_view_ms"], "min_view_ms"),
        prompts_sha256=None).check()


def campaign_with_prompts(current: Campaign, upload: Path, outputs: Path) -> Campaign:
    """The current campaign on an uploaded prompt file, kept as JSONL under `<outputs>/prompt-files/`."""
    prompt_set = load_prompts(upload)  # refuses a bad file with the line and the reason
    rows = [{"prompt": p.text, **p.metadata, "id": p.id} for p in prompt_set.prompts]
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    import hashlib

    folder = Path(outputs) / PROMPT_FILES
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.jsonl"
    target.write_text(text, encoding="utf-8")
    return replace(current, prompts=str(target), prompts_sha256=None)


def run_analysis(ctx: Context, with_selector: bool, progress):
    from goldennoise.research import analysis

    progress(0.05, desc="Re-making noises and fitting…")
    result = analysis.run(ctx.outputs, campaign=ctx.engine.active.id, with_selector=with_selector, progress=progress)
    lines = result["summary"]
    table = result.get("selector_table")
    summary = "".join(f"<div class='gn-line'>{render.e(line)}</div>" for line in lines)
    return (summary, result["figures"], gr.update(value=table, visible=table is not None),
            str(result["report"]))


def run_export(ctx: Context, formats: list[str], progress):
    """Export this campaign; hand the administrator one zip per format (an NPNet export is thousands of files)."""
    import shutil

    from goldennoise.research import export

    progress(0.05, desc="Exporting…")
    dest = ctx.outputs / "exports"
    done = export.export(ctx.outputs, dest, formats or list(export.FORMATS), campaign=ctx.engine.active.id)
    archives = []
    for name, folder in done["written"].items():
        progress(0.6, desc=f"Packing {name}…")
        archives.append(shutil.make_archive(str(dest / f"goldennoise-{name}"), "zip", root_dir=folder))
    text = f"Exported {len(done['files'])} files ({', '.join(done['formats'])}) under exports/."
    if done["excluded"]:
        text += f" {len(done['excluded'])} record(s) were left out: their noise does not match (run goldennoise verify)."
    return message(text, "refused" if done["excluded"] else "info"), archives
