"""The browser's listeners: each answers with whole screens and a status line, and never with a traceback.

Methods of one object holding the `Context` (Gradio injects `gr.Request` by type
hint, which bound methods keep). An answer is one round trip: the payload that
`shortcuts.js` hands over (action, batch id, ticked seeds as strings, how long the
batch was visible, the keys and clicks) goes in; the next screen comes out. A
refusal (stale batch, too quick, disk full) leaves the screen and its ticks as
they are (`gr.skip()`) and says why in the status line.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import gradio as gr
import pandas as pd

from goldennoise.annotation import flow
from goldennoise.errors import UserError
from goldennoise.store.live import history_rows, in_campaign
from goldennoise.ui import render
from goldennoise.ui.context import Context, explain, message

log = logging.getLogger("goldennoise.ui")
HISTORY_COLUMNS = ["answer", "golden", "time", "prompt", "annotator", "model", "record_id"]
ACTIONS = {"batch": ("submit", "skip", "undo"), "pairwise": ("left", "right", "tie", "both_bad", "skip", "undo")}


def _payload(text: str) -> dict:
    try:
        data = json.loads(text or "{}")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise UserError("The page sent something unexpected; reload it.", "payload")
    return data


class Browser:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    # Arriving and starting -------------------------------------------------------------------

    def on_load(self, remembered: str, request: gr.Request):
        """A tab connects: with a login (or a name this browser remembers) it starts labelling at once."""
        ctx = self.ctx
        admin_view = gr.update(visible=False)
        try:
            if not ctx.access.logins and not (remembered or "").strip():
                return (gr.skip(), ctx.screen_html(ctx.tab(request), "batch"),
                        message("Enter your name and press Start."), admin_view, admin_view,
                        render.campaign_summary(ctx.engine.active, False), gr.skip())
            tab, _ = ctx.join(request, remembered)
        except UserError as error:
            tab = ctx.tab(request) if not ctx.access.logins else None
            html = ctx.screen_html(tab, "batch") if tab else render.idle("batch", str(error))
            return gr.skip(), html, message(explain(error), "refused"), admin_view, admin_view, "", gr.skip()
        shown = gr.update(visible=tab.is_admin)
        name = gr.update(value=tab.annotator, interactive=not ctx.access.logins)
        return (name, ctx.screen_html(tab, "batch"), message(f"Labelling as {tab.annotator}."), shown, shown,
                render.campaign_summary(ctx.engine.active, tab.is_admin), gr.Tabs(selected="workbench"))

    def start(self, name: str, request: gr.Request):
        ctx = self.ctx
        try:
            tab, _ = ctx.join(request, name)
        except UserError as error:
            return (gr.skip(), gr.skip(), message(explain(error), "refused"), gr.skip(), gr.skip(), gr.skip(),
                    gr.skip(), gr.skip())
        except Exception as error:  # noqa: BLE001 - shown as a generic line, logged with its traceback
            return (gr.skip(), gr.skip(), message(explain(error), "error"), gr.skip(), gr.skip(), gr.skip(),
                    gr.skip(), gr.skip())
        shown = gr.update(visible=tab.is_admin)
        return (tab.annotator, ctx.screen_html(tab, "batch"), message(f"Labelling as {tab.annotator}."),
                gr.Tabs(selected="workbench"), shown, shown, render.campaign_summary(ctx.engine.active, tab.is_admin),
                tab.annotator)

    # Workbench and Pairwise --------------------------------------------------------------------

    def act(self, payload: str, request: gr.Request):
        return self._act("batch", payload, request)

    def pair_act(self, payload: str, request: gr.Request):
        return self._act("pairwise", payload, request)

    def _act(self, mode: str, payload: str, request: gr.Request):
        ctx = self.ctx
        try:
            data = _payload(payload)
            action = data.get("action")
            if action not in ACTIONS[mode]:
                raise UserError(f"action: {action!r} is not one of {', '.join(ACTIONS[mode])}.", "action")
            tab = ctx.tab(request)
            if action == "undo":
                record, _ = flow.undo(ctx.engine, tab, mode)
                text = f"Undone: “{record.prompt.text[:60]}” is back on screen."
            else:
                batch = tab.views[mode].screen.batch
                scores = batch.clip_scores if batch is not None else None
                record, _ = flow.answer(
                    ctx.engine, tab, mode, str(data.get("batch") or ""), golden=data.get("golden") or [],
                    winner=action if mode == "pairwise" and action != "skip" else None, skip=action == "skip",
                    visible_ms=data.get("visible_ms") if isinstance(data.get("visible_ms"), int) else None,
                    interaction=data.get("interaction"))
                text = render.saved_text(record, scores if ctx.engine.active.campaign.blind else None)
            return ctx.screen_html(tab, mode), message(text)
        except UserError as error:
            return self._catch_up(mode, payload, request), message(explain(error), "refused")
        except Exception as error:  # noqa: BLE001
            return gr.skip(), message(explain(error), "error")

    def _catch_up(self, mode: str, payload: str, request):
        """After a refusal: keep the page as it is (and its ticks), unless the server shows another batch by now
        (the campaign was switched, or the batch was answered in a reply the page has not seen)."""
        try:
            tab = self.ctx.tab(request)
            screen = flow.show(self.ctx.engine, tab, mode) if tab.annotator else None
            client = _payload(payload).get("batch")
            if screen is None or (screen.batch is not None and screen.batch.batch_id == client):
                return gr.skip()
            return self.ctx.screen_html(tab, mode)
        except Exception:  # noqa: BLE001 - the refusal message is already on its way
            return gr.skip()

    def open_view(self, mode: str, client_batch: str | None, request: gr.Request):
        """A view's tab was opened: show its screen (taking a prompt if it has none); keep ticks if unchanged."""
        ctx = self.ctx
        try:
            tab = ctx.tab(request)
            if not tab.annotator:
                return gr.skip(), message("Enter your name in Start first.")
            screen = flow.show(ctx.engine, tab, mode)
            if screen.batch is not None and client_batch == screen.batch.batch_id:
                return gr.skip(), message("")
            return ctx.screen_html(tab, mode), message("")
        except Exception as error:  # noqa: BLE001
            return gr.skip(), message(explain(error), "refused" if isinstance(error, UserError) else "error")

    def open_workbench(self, client_batch: str, request: gr.Request):
        return self.open_view("batch", client_batch, request)

    def open_pairwise(self, client_batch: str, request: gr.Request):
        return self.open_view("pairwise", client_batch, request)

    def renew(self, request: gr.Request):
        tab = self.ctx.tabs.get(getattr(request, "session_hash", None) or "")
        if tab.annotator and self.ctx.engine._active is not None:
            self.ctx.engine.active.assigner.renew(tab.tab_id)

    def unload(self, request: gr.Request):
        tab = self.ctx.tabs.pop(getattr(request, "session_hash", None) or "")
        if tab is not None:
            freed = flow.close(self.ctx.engine, tab)
            log.info("tab of %s closed: %d prompt(s) freed", tab.annotator or "nobody", freed)

    # History --------------------------------------------------------------------------------

    def history(self, everyone: bool, text: str, request: gr.Request):
        ctx = self.ctx
        try:
            tab = ctx.tab(request)
            if not tab.annotator:
                return pd.DataFrame([], columns=HISTORY_COLUMNS), "Enter your name in Start to see your answers."
            if everyone and not tab.is_admin:
                everyone = False
            read = ctx.engine.records.read()
            records = in_campaign(read.records, ctx.engine.active.id)
            rows = history_rows(records, None if everyone else tab.annotator, text or "")
            note = (f"{len(rows)} answer{'' if len(rows) == 1 else 's'} · {'everyone' if everyone else 'yours'} · "
                    f"campaign {ctx.engine.active.id}")
            if read.warnings:
                note += f" · {len(read.warnings)} unreadable line(s) skipped (see the log)"
            return pd.DataFrame(rows, columns=HISTORY_COLUMNS), note
        except Exception as error:  # noqa: BLE001
            return gr.skip(), explain(error)

    def history_select(self, table: pd.DataFrame, event: gr.SelectData, request: gr.Request):
        ctx = self.ctx
        try:
            tab = ctx.tab(request)
            record_id = str(table.iloc[event.index[0]]["record_id"])
            record = flow.find_record(ctx.engine, record_id)
            if record.annotator != tab.annotator and not tab.is_admin:
                raise UserError("That answer is not yours.", "record_id")
            own = record.annotator == tab.annotator
            label = ("Relabel my answer in the Workbench" if own else "Judge it again myself (second opinion)")
            can = record.kind == "judgement"
            return (render.record_details(ctx.outputs, record, own), record_id,
                    gr.update(value=label, interactive=can, visible=True))
        except Exception as error:  # noqa: BLE001
            return message(explain(error), "refused"), "", gr.update(visible=False)

    def relabel(self, record_id: str, request: gr.Request):
        ctx = self.ctx
        try:
            tab = ctx.tab(request)
            flow.relabel(ctx.engine, tab, record_id)
            return ctx.screen_html(tab, "batch"), message("Relabel: change the ticks and submit."), \
                gr.Tabs(selected="workbench")
        except Exception as error:  # noqa: BLE001
            return gr.skip(), message(explain(error), "refused"), gr.skip()

    # Administration -------------------------------------------------------------------------

    def switch(self, name: str, model: str, dtype: str, num_inference_steps, guidance_scale, height, width,
               scheduler: str, batch_size, seed_strategy: str, start_seed: str, pool_size, candidates,
               prefilter: str, explore, overlap, blind: bool, min_view_ms, request: gr.Request,
               progress=gr.Progress(track_tqdm=True)):
        from goldennoise.ui.admin import campaign_from_form

        ctx = self.ctx
        try:
            ctx.require_admin(request)
            campaign = campaign_from_form(ctx.engine.active.campaign, dict(
                name=name, model=model, dtype=dtype, num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale, height=height, width=width, scheduler=scheduler,
                batch_size=batch_size, seed_strategy=seed_strategy, start_seed=start_seed, pool_size=pool_size,
                candidates=candidates, prefilter=prefilter, explore=explore, overlap=overlap, blind=blind,
                min_view_ms=min_view_ms))
            active = ctx.engine.switch(campaign, progress=lambda share, text: progress(share, desc=text))
            return render.campaign_summary(active, True), message(f"Switched to campaign {active.id}; every open "
                                                                  "tab goes on there.")
        except Exception as error:  # noqa: BLE001
            return gr.skip(), message(explain(error), "refused" if isinstance(error, UserError) else "error")

    def upload(self, path: str | None, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        """A new prompt file (administrators): parsed, kept as the campaign's prompt list, the upload deleted."""
        from goldennoise.ui.admin import campaign_with_prompts

        ctx = self.ctx
        try:
            ctx.require_admin(request)
            if not path:
                raise UserError("prompt file: none given.", "prompts")
            try:
                campaign = campaign_with_prompts(ctx.engine.active.campaign, Path(path), ctx.outputs)
            finally:
                Path(path).unlink(missing_ok=True)  # the raw upload is never kept
            active = ctx.engine.switch(campaign, progress=lambda share, text: progress(share, desc=text))
            return (None, render.campaign_summary(active, True),
                    message(f"{len(active.prompts)} prompts loaded: campaign {active.id}; every tab goes on there."))
        except Exception as error:  # noqa: BLE001
            return None, gr.skip(), message(explain(error), "refused" if isinstance(error, UserError) else "error")

    def analysis(self, with_selector: bool, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        from goldennoise.ui.admin import run_analysis

        try:
            self.ctx.require_admin(request)
            return run_analysis(self.ctx, bool(with_selector), progress)
        except Exception as error:  # noqa: BLE001
            return message(explain(error), "refused"), [], None, None

    def export(self, formats: list[str], request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        from goldennoise.ui.admin import run_export

        try:
            self.ctx.require_admin(request)
            return run_export(self.ctx, formats, progress)
        except Exception as error:  # noqa: BLE001
            return message(explain(error), "refused"), None

