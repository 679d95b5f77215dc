"""The scriptable API: named endpoints with diffusers' names, keywords with defaults, structured JSON out.

    from gradio_client import Client
    c = Client("http://127.0.0.1:7860/")
    screen = c.predict(annotator="ada", api_name="/start")["screen"]
    reply = c.predict(batch_id=screen["batch_id"], golden_seeds=[screen["seeds"][0]], api_name="/submit_selection")
    reply["record"]["record_id"], reply["next"]["seeds"]

Every answer names the batch it answers (`batch_id`) and is refused, with a
clear message, if that batch is not the one on this client's screen (already
answered, undone, or never shown). The same rules as the browser apply: the
campaign's minimum viewing time, your own records only for undo and relabel,
administrators only for switching, analysis and export. Each client (each
`Client`) is one tab with its own screen and undo.
"""

from __future__ import annotations

import functools
import time

import gradio as gr

from goldennoise.annotation import flow
from goldennoise.errors import UserError
from goldennoise.store.live import history_rows, in_campaign
from goldennoise.ui import render
from goldennoise.ui.context import Context, explain


def _guard(fn):
    """Errors for API callers: a UserError's own message, or a generic one (logged with its traceback)."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as error:  # noqa: BLE001
            raise gr.Error(explain(error), print_exception=False) from None
    return call


ANSWERS_AT_ONCE = 4


def _ms(begin: float) -> float:
    """Milliseconds spent in the handler since `begin` (answers report it as `server_ms`)."""
    return round((time.perf_counter() - begin) * 1000, 2)


def describe(ctx: Context, tab, mode: str) -> dict:
    """A view's screen as data: batch id, prompt, seeds, images, (scores unless blind), ticks, progress."""
    active = ctx.engine.active
    screen = tab.views[mode].screen
    out = {"mode": mode, "state": screen.state, "campaign": active.id, "notice": screen.notice,
           "progress": flow.progress(ctx.engine, tab, mode)}
    if screen.state == "batch":
        batch = screen.batch
        out.update(
            batch_id=batch.batch_id, prompt={"id": screen.prompt.id, "text": screen.prompt.text,
                                             "index": screen.prompt.index},
            seeds=list(batch.seeds), ticks=list(screen.ticks), origin=screen.origin, supersedes=screen.supersedes,
            second_opinion_of=screen.second_opinion_of, min_view_ms=active.campaign.min_view_ms,
            images=[{"position": i + 1, "seed": s, "image_path": p, "image_url": render.image_url(ctx.outputs, p)}
                    for i, (s, p) in enumerate(zip(batch.seeds, batch.image_paths))])
        if not active.campaign.blind:
            out["clip_scores"] = batch.clip_scores
    return out


def summary(record, clip_scores=None) -> dict | None:
    if record is None:  # a skipped relabel: nothing was recorded
        return None
    data = {"record_id": record.record_id, "kind": record.kind, "prompt_id": record.prompt.id,
            "campaign": record.campaign, "annotator": record.annotator}
    if record.kind == "judgement":
        data.update(verdict=record.verdict, golden_seeds=list(record.golden_seeds), bad_seeds=list(record.bad_seeds),
                    supersedes=record.supersedes, second_opinion_of=record.second_opinion_of)
    if record.kind == "pairwise":
        data["preference"] = record.preference.model_dump()
    if record.kind != "retraction":
        data["clip_scores"] = [s.clip_score for s in record.samples]
    else:
        data["retracts"] = record.retracts
    return data


def register(ctx: Context) -> None:
    """Declare the endpoints inside the current `gr.Blocks`."""

    @_guard
    def start(annotator: str = "", request: gr.Request = None) -> dict:
        """Join as `annotator` (ignored with logins: the login is the annotator); returns the first screen."""
        tab, _ = ctx.join(request, annotator)
        return {"annotator": tab.annotator, "administrator": tab.is_admin, "screen": describe(ctx, tab, "batch")}

    @_guard
    def screen(mode: str = "batch", request: gr.Request = None) -> dict:
        """The current screen of a view ("batch" or "pairwise"), taking the next prompt if it has none."""
        tab = ctx.tab(request)
        flow.show(ctx.engine, tab, mode)
        return describe(ctx, tab, mode)

    @_guard
    def submit_selection(batch_id: str, golden_seeds: list[int] | None = None, visible_ms: int | None = None,
                         request: gr.Request = None) -> dict:
        """Judge the batch `batch_id`: `golden_seeds` are golden, the other seeds shown are bad."""
        begin = time.perf_counter()
        tab = ctx.tab(request)
        record, _ = flow.answer(ctx.engine, tab, "batch", batch_id, golden=golden_seeds or [], visible_ms=visible_ms)
        return {"record": summary(record), "next": describe(ctx, tab, "batch"), "server_ms": _ms(begin)}

    @_guard
    def skip_prompt(batch_id: str, mode: str = "batch", request: gr.Request = None) -> dict:
        """Pass over the batch `batch_id` (recorded as a skip, never a judgement)."""
        begin = time.perf_counter()
        tab = ctx.tab(request)
        record, _ = flow.answer(ctx.engine, tab, mode, batch_id, skip=True)
        return {"record": summary(record), "next": describe(ctx, tab, mode), "server_ms": _ms(begin)}

    @_guard
    def submit_pair(batch_id: str, winner: str, visible_ms: int | None = None, request: gr.Request = None) -> dict:
        """Answer the pair `batch_id`: winner "left", "right", "tie" or "both_bad"."""
        begin = time.perf_counter()
        tab = ctx.tab(request)
        record, _ = flow.answer(ctx.engine, tab, "pairwise", batch_id, winner=winner, visible_ms=visible_ms)
        return {"record": summary(record), "next": describe(ctx, tab, "pairwise"), "server_ms": _ms(begin)}

    @_guard
    def undo_last(mode: str = "batch", request: gr.Request = None) -> dict:
        """Retract this client's last answer in a view; its batch is back on screen."""
        tab = ctx.tab(request)
        record, _ = flow.undo(ctx.engine, tab, mode)
        return {"record": summary(record), "screen": describe(ctx, tab, mode)}

    @_guard
    def history(everyone: bool = False, text: str = "", request: gr.Request = None) -> list[dict]:
        """Your live answers in this campaign, newest first (everyone's: administrators only)."""
        tab = ctx.tab(request)
        if not tab.annotator:
            raise UserError("annotator: call /start first.", "annotator")
        if everyone and not tab.is_admin:
            raise UserError("everyone: only an administrator sees everyone's answers.", "everyone")
        if not isinstance(text, str) or len(text) > 4000:
            raise UserError("text: must be a piece of prompt text (at most 4000 characters).", "text")
        records = in_campaign(ctx.engine.records.read().records, ctx.engine.active.id)
        return history_rows(records, None if everyone else tab.annotator, text)

    @_guard
    def relabel(record_id: str, request: gr.Request = None) -> dict:
        """Show a judgement again: yours is relabelled (superseded), someone else's gets your second opinion."""
        tab = ctx.tab(request)
        flow.relabel(ctx.engine, tab, record_id)
        return describe(ctx, tab, "batch")

    @_guard
    def campaign(request: gr.Request = None) -> dict:
        """The running campaign's definition (read-only for annotators)."""
        active = ctx.engine.active
        definition = {**active.campaign.definition(), "model": active.campaign.public_model}
        definition.pop("prompts")  # a path on the server
        return {"id": active.id, **definition, "prompts": len(active.prompts), "batches_ready": active.store.count()}

    @_guard
    def switch_campaign(model: str = "", num_inference_steps: int | None = None, guidance_scale: float | None = None,
                        height: int | None = None, width: int | None = None, batch_size: int | None = None,
                        seed_strategy: str = "", start_seed: int | None = None, dtype: str = "",
                        name: str = "", request: gr.Request = None) -> dict:
        """Administrators: switch to the current campaign with these values changed (empty: unchanged)."""
        from dataclasses import replace

        ctx.require_admin(request)
        current = ctx.engine.active.campaign
        changed = {k: v for k, v in dict(model=model, num_inference_steps=num_inference_steps,
                                           guidance_scale=guidance_scale, height=height, width=width,
                                           batch_size=batch_size, seed_strategy=seed_strategy, start_seed=start_seed,
                                           dtype=dtype, name=name).items() if v not in (None, "")}
        if "model" in changed and changed["model"] != current.model:
            for key in ("num_inference_steps", "guidance_scale", "height", "width", "max_sequence_length"):
                changed.setdefault(key, None)  # the new model's defaults
        active = ctx.engine.switch(replace(current, **changed, prompts_sha256=None))
        return {"id": active.id, "prompts": len(active.prompts)}

    # Answers share a small pool: on a few cores, many at once only take the GIL from each other (device work is
    # queued by the engine's worker pool anyway).
    for fn in (start, screen, submit_selection, skip_prompt, submit_pair, undo_last, relabel):
        gr.api(fn, api_name=fn.__name__, concurrency_id="answers", concurrency_limit=ANSWERS_AT_ONCE)
    for fn in (history, campaign, switch_campaign):
        gr.api(fn, api_name=fn.__name__, concurrency_limit=None)
