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
ACTIONS = {"batch": ("submit", "skip", "undo", "retry"),
           "pairwise": ("left", "right", "tie", "both_bad", "skip", "undo", "retry")}


FORM = ("name", "model", "dtype", "num_inference_steps", "guidance_scale", "height", "width", "scheduler", "batch_size",
        "seed_strategy", "start_seed", "pool_size", "candidates", "prefilter", "explore", "overlap", "blind",
        "min_view_ms")


def form_values(campaign) -> tuple:
    """The administrator's campaign form, filled from the campaign running now (in FORM's order)."""
    values = {**campaign.definition(), "scheduler": campaign.scheduler or "default", "start_seed": str(campaign.start_seed)}
    return tuple(values[key] for key in FORM)


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
        try:
            if not ctx.access.logins and not (remembered or "").strip():
                tab = ctx.tab(request)
                return self._arrival(tab, "Enter your name and press Start.", ctx.access.local_only,
                                     name=gr.skip(), tabs=gr.skip())
            tab, _ = ctx.join(request, remembered)
        except UserError as error:
            tab = ctx.tab(request) if not ctx.access.logins else None
            return self._arrival(tab, explain(error), False, name=gr.skip(), tabs=gr.skip(), kind="refused")
        return self._arrival(tab, f"Labelling as {tab.annotator}.", tab.is_admin,
                             name=gr.update(value=tab.annotator, interactive=not ctx.access.logins))

    def start(self, name: str, request: gr.Request):
        ctx = self.ctx
        try:
            tab, _ = ctx.join(request, name)
        except Exception as error:  # noqa: BLE001 - a UserError's words, else a generic line (logged)
            kind = "refused" if isinstance(error, UserError) else "error"
            return (gr.skip(),) * 2 + (message(explain(error), kind),) + (gr.skip(),) * (6 + len(FORM))
        return self._arrival(tab, f"Labelling as {tab.annotator}.", tab.is_admin, name=tab.annotator)

    def _arrival(self, tab, text: str, is_admin: bool, name=None, tabs=None, kind: str = "info"):
        """(name, screen, message, tabs, admin accordion, analysis tab, campaign, remembered name, everyone box,
        *form values) after a tab arrives or starts."""
        ctx = self.ctx
        html = ctx.screen_html(tab, "batch") if tab is not None else render.idle("batch", text)
        shown = gr.update(visible=is_admin)
        remembered = tab.annotator if tab is not None and tab.annotator and not ctx.access.logins else gr.skip()
        return (name if name is not None else gr.skip(), html, message(text, kind),
                tabs if tabs is not None else gr.Tabs(selected="workbench"), shown, shown,
                render.campaign_summary(ctx.engine.active, is_admin), remembered, shown,
                *form_values(ctx.engine.active.campaign))

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
            if action == "retry":  # the next batch could not be made before: try again
                flow.show(ctx.engine, tab, mode)
                return ctx.screen_html(tab, mode), message("")
            if action == "undo":
                record, back = flow.undo(ctx.engine, tab, mode)
                text = f"Undone: “{render.short(record.prompt.text)}” is back on screen" + (
                    ", with the ticks you had given it." if back.ticks else ".")
            else:
                batch = tab.views[mode].screen.batch
                scores = batch.clip_scores if batch is not None else None
                record, _ = flow.answer(
                    ctx.engine, tab, mode, str(data.get("batch") or ""), golden=data.get("golden") or [],
                    winner=action if mode == "pairwise" and action != "skip" else None, skip=action == "skip",
                    visible_ms=data.get("visible_ms") if isinstance(data.get("visible_ms"), int) else None,
                    interaction=data.get("interaction"))
                text = ("Relabel cancelled: your earlier answer stands." if record is None else
                        render.saved_text(record, scores if ctx.engine.active.campaign.blind else None))
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
        """Every few seconds while the tab is open: keep its prompts held, and move it to a new campaign at once."""
        ctx = self.ctx
        tab = ctx.tabs.get(getattr(request, "session_hash", None) or "", create=False)
        if not tab.annotator or ctx.engine._active is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        if tab.epoch == ctx.engine.epoch:
            ctx.engine.active.assigner.renew(tab.tab_id)
            return self._waiting(tab, "batch"), gr.skip(), self._waiting(tab, "pairwise"), gr.skip()
        try:
            flow.show(ctx.engine, tab, "batch")
            # the screens carry the switch notice; the message lines are cleared, not a second copy of it
            note = "" if tab.views["batch"].screen.notice else "The campaign changed."
            pair = ctx.screen_html(tab, "pairwise")
            return ctx.screen_html(tab, "batch"), message(note), pair, message(note)
        except Exception as error:  # noqa: BLE001
            return gr.skip(), message(explain(error), "refused"), gr.skip(), gr.skip()

    def _waiting(self, tab, mode: str):
        """A view waiting for prompts others hold: take one as soon as it is free (a tab closed, a lease ran out)."""
        ctx = self.ctx
        view = tab.views[mode]
        if view.screen.state != "done":
            return gr.skip()
        try:
            if flow.progress(ctx.engine, tab, mode)["remaining_for_you"] <= 0:
                return gr.skip()
            if flow.show(ctx.engine, tab, mode).state != "batch":
                return gr.skip()
            return ctx.screen_html(tab, mode)
        except Exception:  # noqa: BLE001 - the next tick tries again; the page keeps its waiting screen
            log.exception("waiting view of %s", tab.annotator)
            return gr.skip()

    def unload(self, request: gr.Request):
        tab = self.ctx.tabs.pop(getattr(request, "session_hash", None) or "")
        if tab is not None:
            freed = flow.close(self.ctx.engine, tab)
            log.info("tab of %s closed: %d prompt(s) freed", tab.annotator or "nobody", freed)

    # History --------------------------------------------------------------------------------

    def history(self, everyone: bool, text: str, campaign: str | None, request: gr.Request):
        ctx = self.ctx
        try:
            tab = ctx.tab(request)
            if not tab.annotator:
                return (pd.DataFrame([], columns=HISTORY_COLUMNS), "Enter your name in Start to see your answers.",
                        gr.skip())
            everyone = bool(everyone) and tab.is_admin
            read = ctx.engine.records.read()
            mine = [r for r in read.records if everyone or r.annotator == tab.annotator]
            campaigns = list(dict.fromkeys([ctx.engine.active.id] + [r.campaign or "(none)" for r in reversed(mine)]))
            chosen = campaign if campaign in campaigns else ctx.engine.active.id
            records = in_campaign(read.records, None if chosen == "(none)" else chosen)
            rows = history_rows(records, None if everyone else tab.annotator, text or "")
            for row in rows:
                row["golden"] = " ".join(map(str, row["golden"]))
                if len(row["prompt"]) > 140:
                    row["prompt"] = row["prompt"][:139] + "…"  # the whole prompt is in the details below
            note = (f"{len(rows)} answer{'' if len(rows) == 1 else 's'} · {'everyone' if everyone else 'yours'} · "
                    f"campaign {chosen}" + (" (the current one)" if chosen == ctx.engine.active.id else ""))
            if read.warnings:
                note += f" · {len(read.warnings)} unreadable line(s) skipped (see the log)"
            return pd.DataFrame(rows, columns=HISTORY_COLUMNS), note, gr.update(choices=campaigns, value=chosen)
        except Exception as error:  # noqa: BLE001
            return gr.skip(), explain(error), gr.skip()

    def history_select(self, table: pd.DataFrame, event: gr.SelectData, request: gr.Request):
        ctx = self.ctx
        try:
            tab = ctx.tab(request)
            record_id = str(table.iloc[event.index[0]]["record_id"])
            record = flow.find_record(ctx.engine, record_id, any_campaign=True)
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
            return (render.campaign_summary(active, True), message(f"Switched to campaign {active.id}; every open "
                                                                   "tab goes on there."), *form_values(active.campaign))
        except Exception as error:  # noqa: BLE001
            return (gr.skip(), message(explain(error), "refused" if isinstance(error, UserError) else "error"),
                    *[gr.skip()] * len(FORM))

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
                    message(f"{len(active.prompts)} prompts loaded: campaign {active.id}; every tab goes on there."),
                    *form_values(active.campaign))
        except Exception as error:  # noqa: BLE001
            return (None, gr.skip(), message(explain(error), "refused" if isinstance(error, UserError) else "error"),
                    *[gr.skip()] * len(FORM))

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

