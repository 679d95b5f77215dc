"""The browser's listeners: each calls one command of the annotation service and renders what it returns.

Methods of one object holding the service and the components (Gradio injects
`gr.Request` by type hint, which bound methods keep). Each returns a dict keyed by
component: only the components named change. An answer is one round trip: the
payload that `shortcuts.js` hands over (action, batch id, ticked seeds as strings,
how long the batch was visible, the keys and clicks) goes in; the next screen comes
out. A refusal (stale batch, too quick, disk full) leaves the screen and its ticks
as they are and says why in the status line.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import gradio as gr
import pandas as pd

from goldennoise.annotation import settings as campaign_settings
from goldennoise.annotation.service import Service, cut
from goldennoise.errors import UserError
from goldennoise.ui import render
from goldennoise.ui.common import caller_of, explain, kind_of, message

log = logging.getLogger("goldennoise.ui")
HISTORY_COLUMNS = ["answer", "golden", "time", "prompt", "annotator", "model", "record_id"]
EXPORT_FORMATS = ("hub", "table", "npnet", "npz", "jsonl")
ACTIONS = {"batch": ("submit", "skip", "undo", "retry"),
           "pairwise": ("left", "right", "tie", "both_bad", "skip", "undo", "retry")}


def _payload(text: str) -> dict:
    try:
        data = json.loads(text or "{}")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise UserError("The page sent something unexpected; reload it.", "payload")
    return data


class Browser:
    def __init__(self, service: Service, ui):
        self.service, self.ui = service, ui

    # Drawing ----------------------------------------------------------------------------------

    def draw(self, caller, mode: str, answered=None) -> str:
        d = self.service.display(caller, mode, answered)
        guide = bool(self.service.campaign.guidelines)
        return render.workbench(d, guide) if mode == "batch" else render.pairwise(d, guide)

    def _view(self, mode: str):
        return self.ui.bench if mode == "batch" else self.ui.pair

    def _settings(self, is_admin: bool) -> dict:
        c = self.service.campaign
        out = {self.ui.fields[f.name]: gr.update(value=campaign_settings.value_of(c, f), interactive=is_admin)
               for f in campaign_settings.FIELDS}
        return out

    def _campaign(self, is_admin: bool) -> dict:
        c = self.service.campaign
        guide = (f"### Guidelines\n\n{c.guidelines}" if c.guidelines else
                 "*This campaign has no written guidelines: tick the images you find best for the prompt.*")
        return {self.ui.summary: render.campaign_summary(self.service.settings(is_admin), is_admin),
                self.ui.guidelines: guide, self.ui.guide: guide, **self._settings(is_admin)}

    # Arriving and starting -------------------------------------------------------------------

    def arrival_outputs(self) -> list:
        ui = self.ui
        return [ui.name, ui.start_message, ui.bench.screen, ui.bench.message, ui.pair.screen, ui.tabs, ui.anal_tab,
                ui.summary,
                ui.guidelines, ui.guide, ui.remembered, ui.hist_everyone, ui.set_apply, ui.set_upload,
                *ui.fields.values()]

    def on_load(self, remembered: str, tab_key: str, request: gr.Request):
        """A tab connects: with a login (or a name this browser remembers) it starts labelling at once."""
        service, caller = self.service, caller_of(request)
        out = self._campaign(False)
        if not service.access.logins and not (remembered or "").strip():
            return {**out, self.ui.start_message: message("Enter your name and press Start.")}
        try:
            service.join(caller, remembered, tab_key)
        except Exception as error:  # noqa: BLE001 - said in words; the page stays on Start
            return {**out, self.ui.start_message: message(explain(error), kind_of(error))}
        return self._arrived(caller, allow_rename=not service.access.logins)

    def start(self, name: str, tab_key: str, request: gr.Request):
        caller = caller_of(request)
        try:
            self.service.join(caller, name, tab_key)
        except Exception as error:  # noqa: BLE001
            return {self.ui.start_message: message(explain(error), kind_of(error))}
        return self._arrived(caller, allow_rename=not self.service.access.logins)

    def _arrived(self, caller, allow_rename: bool) -> dict:
        ui, service = self.ui, self.service
        who = service.annotator_of(caller)
        is_admin = service.is_admin(caller)
        shown = gr.update(visible=is_admin)
        return {ui.name: gr.update(value=who, interactive=allow_rename),
                ui.start_message: message(f"Labelling as {who}." + (" You administer this campaign (Settings, "
                                                                    "Analysis)." if is_admin else "")),
                ui.bench.screen: self.draw(caller, "batch"), ui.bench.message: message(""),
                **self._first_view(caller), ui.anal_tab: shown, ui.hist_everyone: shown,
                ui.set_apply: shown, ui.set_upload: shown,
                ui.remembered: who if allow_rename else gr.skip(), **self._campaign(is_admin)}

    def _first_view(self, caller) -> dict:
        """The view a newcomer starts in: the Workbench, or Pairwise (already on its first pair) in a campaign
        answered there only."""
        ui = self.ui
        if not self.service.pairwise_only:
            return {ui.tabs: gr.Tabs(selected="workbench")}
        try:
            self.service.show(caller, "pairwise")
        except Exception:  # noqa: BLE001 - opening the tab shows the reason
            log.exception("the first pair could not be shown")
        return {ui.tabs: gr.Tabs(selected="pairwise"), ui.pair.screen: self.draw(caller, "pairwise")}

    # Workbench and Pairwise --------------------------------------------------------------------

    def act(self, mode: str):
        def listener(payload: str, request: gr.Request):
            return self._act(mode, payload, request)
        listener.__name__ = f"act_{mode}"
        return listener

    def _act(self, mode: str, payload: str, request: gr.Request):
        view, caller, service = self._view(mode), caller_of(request), self.service
        try:
            data = _payload(payload)
            action = data.get("action")
            if action not in ACTIONS[mode]:
                raise UserError(f"action: {str(action)[:20]!r} is not one of {', '.join(ACTIONS[mode])}.", "action")
            if action == "retry":  # the next batch could not be made before: try again
                service.show(caller, mode)
                return {view.screen: self.draw(caller, mode), view.message: message("")}
            if action == "undo":
                record, back = service.undo(caller, mode)
                text = f"Undone: “{cut(record.prompt.text)}” is back on screen" + (
                    ", with the ticks you had given it." if back.ticks else ".")
                done = None
            else:
                done = service.answer(
                    caller, mode, str(data.get("batch") or ""), golden=data.get("golden") or [],
                    winner=action if mode == "pairwise" and action != "skip" else None, skip=action == "skip",
                    visible_ms=data.get("visible_ms") if isinstance(data.get("visible_ms"), int) else None,
                    interaction=data.get("interaction"))
                text = done.message
            return {view.screen: self.draw(caller, mode, done), view.message: message(text)}
        except UserError as error:
            return {**self._catch_up(mode, payload, caller), view.message: message(explain(error), "refused")}
        except Exception as error:  # noqa: BLE001
            return {view.message: message(explain(error), "error")}

    def _catch_up(self, mode: str, payload: str, caller) -> dict:
        """After a refusal: keep the page as it is (and its ticks), unless the server shows another batch by now
        (the campaign was switched, the prompt was released, or the batch was answered in a reply the page has not
        seen)."""
        try:
            screen = self.service.show(caller, mode)
            client = _payload(payload).get("batch")
            if screen.batch is not None and screen.batch.batch_id == client:
                return {self._view(mode).screen: gr.skip()}
            return {self._view(mode).screen: self.draw(caller, mode)}
        except Exception:  # noqa: BLE001 - the refusal message is already on its way
            return {self._view(mode).screen: gr.skip()}

    def open_view(self, mode: str):
        def listener(client_batch: str | None, request: gr.Request):
            """A view's tab was opened: show its screen (taking a prompt if it has none); keep ticks if unchanged."""
            view, caller = self._view(mode), caller_of(request)
            try:
                screen = self.service.show(caller, mode)
                if screen.batch is not None and client_batch == screen.batch.batch_id:
                    return {view.message: message("")}
                return {view.screen: self.draw(caller, mode), view.message: message("")}
            except Exception as error:  # noqa: BLE001
                return {view.message: message(explain(error), kind_of(error))}
        listener.__name__ = f"open_{mode}"
        return listener

    def renew(self, request: gr.Request):
        """Every few seconds while the tab is open: keep its prompts held; move on from a released prompt; follow a
        campaign switch; take a freed prompt on a waiting screen."""
        caller = caller_of(request)
        try:
            changed = self.service.renew(caller)
        except Exception:  # noqa: BLE001 - the next tick tries again
            log.exception("renewal")
            changed = {}
        out = {self.ui.bench.screen: gr.skip()}  # a dict with at least one key: Gradio reads {} as one value
        for mode in changed:
            view = self._view(mode)
            out[view.screen] = self.draw(caller, mode)
            out[view.message] = message("")
        return out

    def unload(self, request: gr.Request):
        freed = self.service.close(caller_of(request))
        log.info("a tab closed: %d prompt(s) freed", freed)

    # History --------------------------------------------------------------------------------

    def history(self, everyone: bool, text: str, campaign: str | None, request: gr.Request):
        ui = self.ui
        try:
            found = self.service.history(caller_of(request), bool(everyone), text or "", campaign)
        except UserError as error:
            return {ui.hist_table: pd.DataFrame([], columns=HISTORY_COLUMNS), ui.hist_note: explain(error)}
        except Exception as error:  # noqa: BLE001
            return {ui.hist_note: explain(error)}
        rows = found["rows"]
        for row in rows:
            row["golden"] = " ".join(map(str, row["golden"]))
            if len(row["prompt"]) > 140:
                row["prompt"] = row["prompt"][:139] + "…"  # the whole prompt is in the details below
        note = (f"{len(rows)} answer{'' if len(rows) == 1 else 's'} · {'everyone' if found['everyone'] else 'yours'}"
                f" · campaign {found['campaign']}" + (" (the current one)" if found["current"] else ""))
        if found["warnings"]:
            note += f" · {len(found['warnings'])} unreadable line(s) of an imported records.jsonl were skipped"
        return {ui.hist_table: pd.DataFrame(rows, columns=HISTORY_COLUMNS), ui.hist_note: note,
                ui.hist_campaign: gr.update(choices=found["campaigns"], value=found["campaign"])}

    def history_select(self, table: pd.DataFrame, event: gr.SelectData, request: gr.Request):
        ui = self.ui
        try:
            record_id = str(table.iloc[event.index[0]]["record_id"])
            record, own = self.service.record(caller_of(request), record_id)
        except Exception as error:  # noqa: BLE001
            return {ui.hist_details: message(explain(error), "refused"), ui.hist_selected: "",
                    ui.hist_relabel: gr.update(visible=False), ui.hist_reason: gr.update(visible=False)}
        current = record.campaign == self.service.campaign.id
        if record.kind == "judgement":
            label, can, why = (("Relabel my answer in the Workbench", True, "") if own else
                               ("Judge it again myself (second opinion)", True, ""))
        elif record.kind == "pairwise":
            label, can, why = ("Relabel my answer in Pairwise", own, "" if own else
                               "Only the person who gave a pairwise answer can change it.")
        else:
            label, can, why = "Relabel", False, "A skip has nothing to relabel: the prompt comes back only to others."
        if not current and can:
            can, why = False, "This answer belongs to another campaign: relabel it while that campaign runs."
        return {ui.hist_details: render.record_details(record, own), ui.hist_selected: record_id,
                ui.hist_relabel: gr.update(value=label, interactive=can, visible=True),
                ui.hist_reason: gr.update(value=why, visible=bool(why))}

    def relabel(self, record_id: str, request: gr.Request):
        ui, caller = self.ui, caller_of(request)
        try:
            screen = self.service.relabel(caller, record_id)
        except Exception as error:  # noqa: BLE001
            return {ui.bench.message: message(explain(error), kind_of(error))}
        mode = screen.mode
        view = self._view(mode)
        return {view.screen: self.draw(caller, mode), view.message: message("Relabel: change your answer and "
                                                                            "submit (Skip keeps the earlier one)."),
                ui.tabs: gr.Tabs(selected="workbench" if mode == "batch" else "pairwise")}

    # Settings (administrators) ---------------------------------------------------------------------

    def apply_settings(self):
        """The Settings form's listener: one parameter per field (Gradio passes the request by its type hint, which
        a *args signature would hide), built from the campaign's fields."""
        import inspect

        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        params = [inspect.Parameter(name, kind) for name in self.ui.fields]
        params += [inspect.Parameter("request", kind, annotation=gr.Request),
                   inspect.Parameter("progress", kind, default=gr.Progress(track_tqdm=True))]
        signature = inspect.Signature(params)

        def listener(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            values = dict(bound.arguments)
            return self._apply(values.pop("request"), values.pop("progress"), values)

        listener.__signature__ = signature
        listener.__annotations__ = {"request": gr.Request}  # Gradio finds the request by its type hint
        listener.__name__ = "apply_settings"
        return listener

    def _apply(self, request, progress, form: dict):
        ui, caller, service = self.ui, caller_of(request), self.service
        try:
            changes = campaign_settings.changes(service.campaign, form)
            if not changes:
                return {ui.set_message: message("Nothing changed: the campaign runs as it is.")}
            runtime = service.switch(caller, changes, progress=lambda share, text: progress(share, desc=text))
        except Exception as error:  # noqa: BLE001
            return {ui.set_message: message(explain(error), kind_of(error))}
        return {ui.set_message: message(f"Switched to campaign {runtime.id}; every open tab goes on there."),
                **self._campaign(True)}

    def model_defaults(self, model: str):
        """A known model's own defaults fill the form when an administrator picks it (the known list only: this
        runs for anyone who can reach the page, and never looks at the disk)."""
        defaults = campaign_settings.model_defaults(model)
        return {self.ui.fields[name]: value for name, value in (defaults or {}).items()} or \
            {self.ui.fields["height"]: gr.skip()}

    def upload(self, path: str | None, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        """A new prompt file (administrators): parsed, kept as the campaign's prompt list, the upload deleted."""
        ui, caller = self.ui, caller_of(request)
        try:
            if not path:
                raise UserError("prompt file: none given.", "prompts")
            try:
                runtime = self.service.upload_prompts(caller, Path(path),
                                                      progress=lambda share, text: progress(share, desc=text))
            finally:
                Path(path).unlink(missing_ok=True)  # the raw upload is never kept
        except Exception as error:  # noqa: BLE001
            return {ui.set_upload: None, ui.set_message: message(explain(error), kind_of(error))}
        return {ui.set_upload: None, ui.set_message: message(f"{len(runtime.prompts)} prompts loaded: campaign "
                                                             f"{runtime.id}; every tab goes on there."),
                **self._campaign(True)}

    # Analysis and export (administrators) ------------------------------------------------------------

    def analysis(self, with_selector: bool, request: gr.Request, progress=gr.Progress()):
        ui = self.ui
        try:
            progress(0.02, desc="Reading records…")
            result = self.service.analyse(caller_of(request), bool(with_selector), progress)
        except Exception as error:  # noqa: BLE001
            return {ui.anal_summary: message(explain(error), kind_of(error))}
        table = render.selector_table(result.get("selector_table"))
        summary = "".join(f"<div class='gn-line'>{render.e(line)}</div>" for line in result["summary"])
        return {ui.anal_summary: summary, ui.anal_figures: render.figures(result["figures"]),
                ui.anal_table: gr.update(value=table, visible=table is not None),
                ui.anal_report: str(result["report"])}

    def export(self, formats: list[str], request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        """Export this campaign; hand the administrator one zip per format (an NPNet export is thousands of files)."""
        import shutil

        ui = self.ui
        try:
            progress(0.05, desc="Exporting…")
            done = self.service.export(caller_of(request), list(formats or []), progress)
            archives = []
            for name, folder in done["written"].items():
                progress(0.6, desc=f"Packing {name}…")
                folder = Path(folder)
                archives.append(shutil.make_archive(str(folder.parent / f"goldennoise-{name}"), "zip",
                                                    root_dir=folder) if folder.is_dir() else str(folder))
        except Exception as error:  # noqa: BLE001
            return {ui.export_note: message(explain(error), kind_of(error))}
        text = f"Exported {len(done['files'])} files ({', '.join(done['formats'])}) under exports/."
        if done["excluded"]:
            text += f" {len(done['excluded'])} record(s) were left out: their noise does not match (run goldennoise " \
                    "verify)."
        return {ui.export_note: message(text, "refused" if done["excluded"] else "info"), ui.export_files: archives}
