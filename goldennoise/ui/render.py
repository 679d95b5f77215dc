"""HTML for the screens: every user string escaped, so a prompt or a name is always shown as text.

One function per screen. The Workbench and Pairwise screens are single HTML
fragments (prompt, images, ticks, progress, buttons) so the browser replaces
them in one update: no frame shows a new prompt over old images. Data
attributes carry what `shortcuts.js` needs (batch id, seeds as strings, the
minimum viewing time); seeds stay strings in the page because JavaScript numbers
cannot hold 64-bit integers.
"""

from __future__ import annotations

import html

from goldennoise.annotation.service import TWINS_NOTICE, Display
from goldennoise.ui.guard import image_url

e = html.escape
GUIDE_BUTTON = "<button type='button' data-action='guide' class='gn-guide-button'>Guidelines <kbd>?</kbd></button>"


def _progress(p: dict | None) -> str:
    if not p:
        return ""
    return (f"{p['judged']} judged · {p['skipped']} skipped · {p['remaining_for_you']} left for you "
            f"(of {p['total']})")


def _frame(view: str, state: str, body: str, notice: str | None, progress: dict | None, attrs: str = "",
           warning: str | None = None) -> str:
    note = f"<div class='gn-notice' role='status'>{e(notice)}</div>" if notice else ""
    warn = f"<span class='gn-placeholder' title='{e(warning)}'>⚠ placeholder model: random weights</span>" \
        if warning else ""
    return (f"<div class='gn-screen' data-view='{view}' data-state='{state}' {attrs}>"
            f"<div class='gn-top'><span class='gn-progress'>{e(_progress(progress))}</span>{warn}</div>{note}{body}"
            "</div>")


def idle(view: str, message: str, retry: bool = False) -> str:
    button = ("<div class='gn-actions'><button type='button' class='gn-primary' data-action='retry'>Try again "
              "<kbd>Enter</kbd></button></div>") if retry else ""
    return _frame(view, "idle", f"<p class='gn-empty'>{e(message)}</p>{button}", None, None)


def done(view: str, notice: str | None, progress: dict | None, waiting: bool = False) -> str:
    skipped, judged = (progress or {}).get("skipped", 0), (progress or {}).get("judged", 0)
    text = ("Nothing left for you right now: the remaining prompts are being answered by others. "
            "This screen takes the next one as soon as it is free." if waiting else
            "Nothing to do here: every prompt has already been answered by others." if not judged and not skipped else
            "All done — you have answered every prompt here. Thank you!" if not skipped else
            f"All done — every prompt here is answered or skipped ({skipped} skipped; Undo brings back the last).")
    return _frame(view, "done", f"<div class='gn-done'><p class='gn-done-title'>✓ {e(text)}</p></div>",
                  notice, progress)


def _cell(i: int, seed: int, path: str, score: float | None, ticked: bool) -> str:
    label = f"#{i} · seed {seed}" + ("" if score is None else f" · CLIP {score:.2f}")
    return (f"<button type='button' class='gn-cell{' gn-ticked' if ticked else ''}' data-seed='{seed}' data-i='{i}' "
            f"aria-pressed='{'true' if ticked else 'false'}' aria-label='{e(label)}' title='{e(label)}'>"
            f"<img src='{e(image_url(path))}' alt='{e(label)}' draggable='false'>"
            f"<span class='gn-num'>#{i}</span><span class='gn-check' aria-hidden='true'>✓</span>"
            f"<span class='gn-seed'>seed {seed}{'' if score is None else f' · {score:.2f}'}</span></button>")


def workbench(d: Display, guide: bool = False) -> str:
    """The Workbench: prompt, the batch (tick by click or number), Submit, and the other actions."""
    screen, progress = d.screen, d.progress
    if screen.state == "done":
        return done("batch", screen.notice, progress, d.waiting)
    if screen.state != "batch":
        return idle("batch", screen.notice or "Say who you are in Start, then label here.",
                    retry=bool(screen.notice) and screen.notice != TWINS_NOTICE)
    batch = screen.batch
    scores = None if d.blind or batch.clip_scores is None else batch.clip_scores
    cells = "".join(_cell(i + 1, seed, path, None if scores is None else scores[i], seed in screen.ticks)
                    for i, (seed, path) in enumerate(zip(batch.seeds, batch.image_paths)))
    n = len(batch.seeds)
    cols = n if n <= 4 else (4 if n <= 8 else 5)
    rows = -(-n // cols)
    origin = {"relabel": ("Relabelling your earlier answer" if screen.supersedes else
                          "Second opinion on another annotator's answer"), "undo": "Undone: answer again",
              "explicit": "Seeds chosen on request", "request": "Made on request"}
    tag = f"<span class='gn-origin'>{e(origin[screen.origin])}</span>" if screen.origin in origin else ""
    long = " gn-long" if len(screen.prompt.text) > 240 else ""
    body = (f"<p class='gn-prompt{long}' title='{e(screen.prompt.text[:1000])}'>{tag}{e(screen.prompt.text)}</p>"
            f"<div class='gn-grid' style='--cols:{cols};--rows:{rows}'>{cells}</div>"
            "<div class='gn-actions'>"
            "<button type='button' class='gn-primary' data-action='submit'>Submit <kbd>Enter</kbd></button>"
            "<button type='button' data-action='all'>All golden <kbd>a</kbd></button>"
            "<button type='button' data-action='none'>None <kbd>n</kbd></button>"
            "<button type='button' data-action='skip'>Skip <kbd>s</kbd></button>"
            "<button type='button' data-action='undo'>Undo <kbd>u</kbd></button>"
            "<button type='button' data-action='zoom'>Larger <kbd>f</kbd></button>"
            + (GUIDE_BUTTON if guide else "") +
            "<span class='gn-hint'>Click an image or press its number to tick it: ticked = golden, the rest are "
            "recorded as bad.</span></div>")
    attrs = (f"data-batch='{e(batch.batch_id)}' data-min-view='{int(d.min_view_ms)}' "
             f"data-ticks='{e(','.join(str(s) for s in screen.ticks))}'")
    return _frame("batch", "batch", body, screen.notice, progress, attrs, d.warning)


def pairwise(d: Display, guide: bool = False) -> str:
    """Two seeds of one prompt side by side: left, right, tie or both bad."""
    screen, progress = d.screen, d.progress
    if screen.state == "done":
        return done("pairwise", screen.notice, progress, d.waiting)
    if screen.state != "batch":
        return idle("pairwise", screen.notice or "Say who you are in Start, then compare pairs here.",
                    retry=bool(screen.notice))
    batch = screen.batch
    sides = []
    for side, seed, path, score in zip(("Left", "Right"), batch.seeds, batch.image_paths,
                                       batch.clip_scores if batch.clip_scores and not d.blind else (None, None)):
        label = f"{side} · seed {seed}" + ("" if score is None else f" · CLIP {score:.2f}")
        sides.append(f"<figure class='gn-side'><img src='{e(image_url(path))}' alt='{e(label)}' "
                     f"draggable='false'><figcaption>{e(label)}</figcaption></figure>")
    tag = "<span class='gn-origin'>Relabelling your earlier answer</span>" if screen.origin == "relabel" else ""
    body = (f"<p class='gn-prompt'>{tag}{e(screen.prompt.text)}</p><div class='gn-pair'>{''.join(sides)}</div>"
            "<div class='gn-actions'>"
            "<button type='button' class='gn-primary' data-action='left'>Left is better <kbd>1</kbd> <kbd>←</kbd></button>"
            "<button type='button' class='gn-primary' data-action='right'>Right is better <kbd>2</kbd> <kbd>→</kbd></button>"
            "<button type='button' data-action='tie'>Tie <kbd>t</kbd></button>"
            "<button type='button' data-action='both_bad'>Both bad <kbd>b</kbd></button>"
            "<button type='button' data-action='skip'>Skip <kbd>s</kbd></button>"
            "<button type='button' data-action='undo'>Undo <kbd>u</kbd></button>"
            + (GUIDE_BUTTON if guide else "") + "</div>")
    attrs = f"data-batch='{e(batch.batch_id)}' data-min-view='{int(d.min_view_ms)}'"
    return _frame("pairwise", "batch", body, screen.notice, progress, attrs, d.warning)


def message(text: str, kind: str = "info", nonce: int = 0) -> str:
    """A status line under the screen; `nonce` makes every reply a change the page can see."""
    return f"<div class='gn-msg gn-{kind}' data-n='{nonce}' role='status'>{e(text)}</div>"


def campaign_summary(settings: dict, is_admin: bool) -> str:
    """The running campaign in a few lines (the Start tab); `settings` as the service gives them."""
    c = settings
    rows = [("Campaign", c["id"]), ("Model", f"{c['model']} ({c['dtype']})"),
            ("Generation", f"{c['num_inference_steps']} steps · guidance {c['guidance_scale']} · "
                           f"{c['width']}×{c['height']}" + (f" · {c['scheduler']}" if c["scheduler"] else "")),
            ("Prompts", f"{c['prompt_count']} from {c['prompts']}"),
            ("Seeds", f"{c['seed_strategy']} · {c['batch_size']} per prompt" +
                      (f" · pool of {c['pool_size']} from {c['start_seed']}" if c["seed_strategy"] == "pool" else "")),
            ("Pre-filter", f"{c['candidates']} candidates by {c['prefilter']}, {c['explore']} explored"
             if c["candidates"] else "off"),
            ("Annotation", f"overlap {c['overlap']:g} · "
                           + ("blind (no CLIP score or pick on screen)" if c["blind"] else "CLIP scores shown")
                           + (" · CLIP's pick said after each answer" if c["show_clip_pick_after"] else "")
                           + f" · at least {c['min_view_ms']} ms per batch"),
            ("Batches ready", f"{c['batches_ready']} of {c['prompt_count']}"),
            ("Your role", "administrator (change it in Settings)" if is_admin else
             "annotator (the campaign is read-only)")]
    cells = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in rows)
    warnings = "".join(f"<p class='gn-warn'>{e(w)}</p>" for w in c["warnings"])
    return f"<table class='gn-campaign'>{cells}</table>{warnings}"


def record_details(record, own: bool) -> str:
    """A record from History, as text and thumbnails."""
    head = (f"<p class='gn-prompt'>{e(record.prompt.text)}</p><p>{e(record.annotator)} · "
            f"{e(record.model.name or record.model.id or '')} · {e(record.created_at)} · "
            f"<b>{e(record.kind if record.kind != 'judgement' else record.verdict.replace('_', ' '))}</b>"
            f"{' · yours' if own else ''}</p><p class='gn-id'>record <code>{e(record.record_id)}</code></p>")
    golden = set(getattr(record, "golden_seeds", []))
    won = {"left": 0, "right": 1}.get(record.preference.winner) if record.kind == "pairwise" else None
    cells = []
    for place, s in enumerate(record.samples):  # a pairwise winner by its side: a same-seed pair has one seed twice
        mark = "golden" if s.seed in golden or place == won else ("bad" if record.kind == "judgement" else "")
        cells.append(f"<figure class='gn-thumb gn-{mark or 'shown'}'><img src='{e(image_url(s.image_path))}' "
                     f"alt='seed {s.seed}'><figcaption>seed {s.seed}{' · ' + mark if mark else ''}"
                     f"{'' if s.clip_score is None else f' · CLIP {s.clip_score:.2f}'}</figcaption></figure>")
    return f"<div class='gn-record'>{head}<div class='gn-thumbs'>{''.join(cells)}</div></div>"


def figures(found: list[tuple[str, str]]) -> str:
    """The analysis's figures, whole (inlined PNGs: the outputs folder is never served), each with its title."""
    import base64
    from pathlib import Path

    parts = []
    for path, title in found:
        data = base64.b64encode(Path(path).read_bytes()).decode()
        parts.append(f"<figure class='gn-figure'><img alt='{e(title)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{e(title)}</figcaption></figure>")
    return "".join(parts)


def selector_table(table):
    """The selector's held-out figures with what matters first: the estimate, its interval and p; then what it is."""
    if table is None or table.empty:
        return None
    import pandas as pd

    return pd.DataFrame({
        "figure": table["question"], "estimate": table["estimate"].astype(float).round(3),
        "95% interval": [f"{lo:.3f} – {hi:.3f}" for lo, hi in zip(table["ci_low"], table["ci_high"])],
        "p": table["p"], "chance": table["chance"], "held out": table["held_out"],
        "seeds · prompts": [f"{s} · {p}" for s, p in zip(table["seeds"], table["prompts"])]})
