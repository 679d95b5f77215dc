"""The Blocks: one builder per tab, then the wiring. Only layout here; behaviour is in handlers.py.

Tabs: Start (who you are, the guidelines, the campaign), Workbench, Pairwise,
History, Settings (administrators load a model with its parameters; annotators see
them read-only) and Analysis (administrators). Each labelling screen is one
`gr.HTML` updated in one piece, with a hidden button whose `js=` hands the answer
from `shortcuts.js` to the server: one round trip per answer. Every listener
returns a dict keyed by component, never a tuple that must match a list here.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import gradio as gr

from goldennoise.annotation import settings as campaign_settings
from goldennoise.annotation.service import Service
from goldennoise.ui import api, render
from goldennoise.ui.handlers import EXPORT_FORMATS, HISTORY_COLUMNS, Browser

LEASE_RENEW_SECONDS = 4  # also how soon an open tab follows a campaign switch or takes a freed prompt
# The browser tab's own key: kept in sessionStorage, so a reload of the tab keeps it (Undo after a reload).
TAB_KEY_JS = """(name, key) => {
  let k = sessionStorage.getItem("goldennoise-tab");
  if (!k) {
    k = (window.crypto && crypto.randomUUID) ? crypto.randomUUID().replaceAll("-", "")
      : Array.from({length: 32}, () => Math.floor(Math.random() * 16).toString(16)).join("");
    sessionStorage.setItem("goldennoise-tab", k);
  }
  return [name, k];
}"""
ANSWERS = dict(concurrency_id="answers", concurrency_limit=api.ANSWERS_AT_ONCE)  # the browser's and the API's
# Gradio's queue summarises its last events (up to 10,000) with pandas after every event, for a monitoring page this
# app does not serve: 2-11 ms of the interpreter after each answer, renewal and image batch, growing with the
# session (a tab renews its hold every 4 s), while the browser fetches the next images. Kept to a small window and
# computed rarely; set either variable to override.
QUEUE_ANALYTICS = {"GRADIO_ANALYTICS_MAX_EVENTS": "100", "GRADIO_ANALYTICS_CACHE_FREQUENCY": "1000000"}


def start_tab(ui) -> None:
    with gr.Tab("Start", id="start"):
        with gr.Row():
            ui.name = gr.Textbox(label="Your name (annotator)", placeholder="e.g. ada", max_length=64, scale=2,
                                 elem_id="gn-name")
            ui.start = gr.Button("Start labelling", variant="primary", scale=1, elem_id="gn-start")
        ui.start_message = gr.HTML(elem_id="gn-start-message")
        ui.guidelines = gr.Markdown(elem_id="gn-guidelines-start")
        ui.summary = gr.HTML(elem_id="gn-summary")


def view_tab(ui, title: str, tab_id: str, prefix: str, mode: str) -> SimpleNamespace:
    view = SimpleNamespace()
    with gr.Tab(title, id=tab_id) as view.tab:
        with gr.Column(elem_id=f"gn-{tab_id}"):
            view.message = gr.HTML(render.message(""), elem_id=f"{prefix}message", padding=False)
            view.screen = gr.HTML(render.idle(mode, "Say who you are in Start first."), elem_id=f"{prefix}screen",
                                  padding=False)
            view.payload = gr.Textbox(visible="hidden")
            view.send = gr.Button("send", visible="hidden", elem_id=f"{prefix}send")
    return view


def history_tab(ui) -> None:
    with gr.Tab("History", id="history") as ui.hist_tab:
        with gr.Row():
            ui.hist_text = gr.Textbox(label="Prompt contains", scale=3)
            ui.hist_campaign = gr.Dropdown([], label="Campaign", scale=2, allow_custom_value=False)
            ui.hist_everyone = gr.Checkbox(False, label="Everyone's answers", scale=1, visible=False)
            ui.hist_refresh = gr.Button("Refresh", scale=0)
        ui.hist_note = gr.Markdown()
        ui.hist_table = gr.Dataframe(headers=HISTORY_COLUMNS, interactive=False, wrap=True, elem_id="gn-history",
                                     max_height=360, column_widths=["11%", "9%", "12%", "34%", "9%", "8%", "17%"])
        ui.hist_details = gr.HTML()
        ui.hist_selected = gr.Textbox(visible="hidden")
        ui.hist_reason = gr.Markdown(visible=False)
        ui.hist_relabel = gr.Button("Relabel", visible=False, elem_id="gn-relabel")


def _widget(field, value):
    common = dict(label=field.label, info=field.help, elem_id=f"gn-set-{field.name}", interactive=False)
    if field.widget == "checkbox":
        return gr.Checkbox(value, **common)
    if field.widget == "dropdown":
        return gr.Dropdown(list(field.choices), value=value, **common)
    if field.widget == "names":
        return gr.Dropdown(list(field.choices), value=value, multiselect=True, **common)
    if field.widget == "model":
        return gr.Dropdown(list(field.choices), value=value, allow_custom_value=True, **common)
    if field.widget in ("integer", "number"):
        return gr.Number(value, precision=0 if field.widget == "integer" else None, **common)
    if field.widget == "textarea":
        return gr.Textbox(value, lines=4, max_lines=12, **common)
    return gr.Textbox("" if value is None else str(value), **common)


def settings_tab(ui, service: Service) -> None:
    c = service.campaign
    with gr.Tab("Settings", id="settings") as ui.set_tab:
        ui.set_note = gr.Markdown("The campaign's settings. Administrators change them here (any change makes a new "
                                  "campaign: a new id; records of the old one stay apart); annotators see them "
                                  "read-only.")
        ui.fields = {}
        per_row = 4
        for start in range(0, len(campaign_settings.FIELDS), per_row):
            with gr.Row():
                for field in campaign_settings.FIELDS[start:start + per_row]:
                    ui.fields[field.name] = _widget(field, campaign_settings.value_of(c, field))
        ui.set_apply = gr.Button("Load this model and switch to these settings", variant="stop", visible=False,
                                 elem_id="gn-set-apply")
        ui.set_upload = gr.File(label="Or upload a prompt file (CSV, JSON, JSONL, TXT): a new campaign on it",
                                type="filepath", file_types=[".csv", ".json", ".jsonl", ".ndjson", ".txt"],
                                elem_id="gn-prompt-file", visible=False)
        ui.set_message = gr.HTML(elem_id="gn-set-message")


def analysis_tab(ui) -> None:
    with gr.Tab("Analysis", id="analysis", visible=False) as ui.anal_tab:
        gr.Markdown("What this campaign's judgements say, every figure held out and every interval resampled by "
                    "prompt and seed (the same as `goldennoise analyze OUTPUTS`).")
        with gr.Row():
            ui.anal_selector = gr.Checkbox(True, label="Train and evaluate the seed selector")
            ui.anal_run = gr.Button("Run analysis", variant="primary")
        ui.anal_summary = gr.HTML(elem_id="gn-analysis-summary")
        ui.anal_table = gr.Dataframe(label="Seed selector, held out", interactive=False, visible=False,
                                     elem_id="gn-analysis-table", wrap=True)
        ui.anal_figures = gr.HTML(elem_id="gn-analysis-figures")  # whole figures, never cropped to thumbnails
        ui.anal_report = gr.File(label="Self-contained HTML report")
        with gr.Row():
            ui.formats = gr.CheckboxGroup(list(EXPORT_FORMATS), value=list(EXPORT_FORMATS), label="Export formats")
            ui.export = gr.Button("Export")
        ui.export_note = gr.HTML()
        ui.export_files = gr.File(label="Exported files", file_count="multiple")


def build_demo(service: Service, banner: str | None = None) -> gr.Blocks:
    """The app around a started service; `banner` warns on every page (no logins beyond this machine, ...)."""
    ui = SimpleNamespace()
    for name, value in QUEUE_ANALYTICS.items():  # read when the Blocks make their queue
        os.environ.setdefault(name, value)
    with gr.Blocks(title="GoldenNoise", delete_cache=(3600, 3600)) as demo:
        # The endpoints are registered first, so that they keep their plain names; their parameters' placeholder
        # components (70) go at the end of the page: the browser looks a component up by walking the page's tree in
        # order on every update, and 70 placeholders ahead of the Workbench cost each answer ~10 ms of script.
        with gr.Column(visible=False, render=False) as endpoints:
            api.register(service)
        ui.remembered = gr.BrowserState("", storage_key="goldennoise-annotator")
        ui.tab_key = gr.Textbox(visible="hidden")
        gr.HTML("<b>GoldenNoise</b> · tick the seeds whose images are best; every answer keeps the exact noise "
                "behind it.", elem_id="gn-brand", padding=False)
        if banner:
            gr.HTML(f"⚠️ <b>{render.e(banner)}</b>", elem_id="gn-banner")
        ui.guide = gr.Markdown(elem_id="gn-guide")
        with gr.Tabs(selected="start") as ui.tabs:
            start_tab(ui)
            ui.bench = view_tab(ui, "Workbench", "workbench", "gn-", "batch")
            ui.pair = view_tab(ui, "Pairwise", "pairwise", "gn-pair-", "pairwise")
            history_tab(ui)
            settings_tab(ui, service)
            analysis_tab(ui)
        ui.timer = gr.Timer(LEASE_RENEW_SECONDS)
        wire(demo, ui, Browser(service, ui))
        endpoints.render()
    return demo


def wire(demo, ui, b: Browser) -> None:
    private = dict(api_visibility="private")
    quiet = dict(show_progress="hidden", **private)
    arrival = b.arrival_outputs()
    demo.load(b.on_load, [ui.remembered, ui.tab_key], arrival, js=TAB_KEY_JS, **quiet)
    ui.start.click(b.start, [ui.name, ui.tab_key], arrival, **private)
    ui.name.submit(b.start, [ui.name, ui.tab_key], arrival, **private)
    for view, mode in ((ui.bench, "batch"), (ui.pair, "pairwise")):
        view.send.click(b.act(mode), view.payload, [view.screen, view.message], show_progress="hidden",
                        js=f"() => window.gn.take('{mode}')", **ANSWERS, **private)
        view.tab.select(b.open_view(mode), view.payload, [view.screen, view.message], show_progress="hidden",
                        js=f"() => window.gn ? window.gn.state('{mode}').batch : null", **private)
    ui.timer.tick(b.renew, None, [ui.bench.screen, ui.bench.message, ui.pair.screen, ui.pair.message],
                  concurrency_limit=None, **quiet)
    demo.unload(b.unload)

    history_in = [ui.hist_everyone, ui.hist_text, ui.hist_campaign]
    history_out = [ui.hist_table, ui.hist_note, ui.hist_campaign]
    for event in (ui.hist_tab.select, ui.hist_refresh.click, ui.hist_text.submit, ui.hist_everyone.input,
                  ui.hist_campaign.input):
        event(b.history, history_in, history_out, **private)
    ui.hist_table.select(b.history_select, ui.hist_table,
                         [ui.hist_details, ui.hist_selected, ui.hist_relabel, ui.hist_reason], **private)
    ui.hist_relabel.click(b.relabel, ui.hist_selected, [ui.bench.screen, ui.bench.message, ui.pair.screen,
                                                        ui.pair.message, ui.tabs], **private)

    fields = list(ui.fields.values())
    ui.set_apply.click(b.apply_settings(), fields, [ui.set_message, ui.summary, ui.guidelines, ui.guide, *fields],
                       concurrency_id="switch", concurrency_limit=1, **private)
    ui.fields["model"].input(b.model_defaults, ui.fields["model"],
                             [ui.fields[n] for n in ("num_inference_steps", "guidance_scale", "height", "width",
                                                     "max_sequence_length")], **private)
    ui.set_upload.upload(b.upload, ui.set_upload, [ui.set_upload, ui.set_message, ui.summary, ui.guidelines,
                                                   ui.guide, *fields], concurrency_id="switch", concurrency_limit=1,
                         **private)
    ui.anal_run.click(b.analysis, ui.anal_selector, [ui.anal_summary, ui.anal_figures, ui.anal_table,
                                                     ui.anal_report], concurrency_id="analysis",
                      concurrency_limit=1, **private)
    ui.export.click(b.export, ui.formats, [ui.export_note, ui.export_files], concurrency_id="analysis",
                    concurrency_limit=1, **private)
