"""The Blocks: one builder per tab, then the wiring. Only layout here; behaviour is in handlers.py.

Tabs: Start (who you are; the campaign, editable by administrators), Workbench,
Pairwise, History, Analysis (administrators). Each labelling screen is one
`gr.HTML` updated in one piece, with a hidden button whose `js=` hands the
answer from `shortcuts.js` to the server: one round trip per answer.
"""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from goldennoise.generation import models, prefilter, seeds
from goldennoise.ui import api, render
from goldennoise.ui.context import Context
from goldennoise.ui.handlers import HISTORY_COLUMNS, Browser

EXPORT_FORMATS = ("hub", "table", "npnet", "npz")
LEASE_RENEW_SECONDS = 4  # also how soon an open tab follows a campaign switch or takes a freed prompt


def start_tab(ctx: Context) -> SimpleNamespace:
    c = ctx.engine.active.campaign
    ui = SimpleNamespace()
    with gr.Tab("Start", id="start"):
        with gr.Row():
            ui.name = gr.Textbox(label="Your name (annotator)", placeholder="e.g. ada", max_length=64, scale=2,
                                 elem_id="gn-name")
            ui.start = gr.Button("Start labelling", variant="primary", scale=1, elem_id="gn-start")
        if ctx.access.oauth:  # a Space with hf_oauth: log in with a Hugging Face account
            ui.login = gr.LoginButton()
        ui.campaign = gr.HTML(render.campaign_summary(ctx.engine.active, False))
        with gr.Accordion("Advanced: change the campaign (administrators)", open=False, visible=False) as ui.admin:
            gr.Markdown("Changing any value makes a new campaign (a new id; records of the old one stay apart). "
                        "Open tabs are moved to it after in-flight batches finish.")
            with gr.Row():
                ui.c_name = gr.Textbox(c.name, label="Campaign name")
                ui.c_model = gr.Dropdown(list(models.KNOWN_MODELS), value=c.model, allow_custom_value=True,
                                         label="Model (known name, hub id or folder)")
                ui.c_dtype = gr.Dropdown(list(models.DTYPES), value=c.dtype, label="dtype")
                ui.c_scheduler = gr.Textbox(c.scheduler or "default", label="Scheduler (class name or default)")
            with gr.Row():
                ui.c_steps = gr.Number(c.num_inference_steps, precision=0, label="num_inference_steps")
                ui.c_guidance = gr.Number(c.guidance_scale, label="guidance_scale")
                ui.c_height = gr.Number(c.height, precision=0, label="height")
                ui.c_width = gr.Number(c.width, precision=0, label="width")
            with gr.Row():
                ui.c_batch = gr.Number(c.batch_size, precision=0, label="Seeds per prompt")
                ui.c_strategy = gr.Radio(list(seeds.STRATEGIES), value=c.seed_strategy, label="Seed strategy")
                ui.c_start = gr.Textbox(str(c.start_seed), label="Start seed (exact, up to 2^63-1)")
                ui.c_pool = gr.Number(c.pool_size, precision=0, label="Pool size")
            with gr.Row():
                ui.c_candidates = gr.Number(c.candidates, precision=0, label="Candidates (0: no pre-filter)")
                ui.c_method = gr.Radio(list(prefilter.METHODS), value=c.prefilter, label="Rank candidates by")
                ui.c_explore = gr.Number(c.explore, precision=0, label="Exploration slots")
                ui.c_overlap = gr.Number(c.overlap, label="Overlap (fraction judged twice)")
                ui.c_blind = gr.Checkbox(c.blind, label="Blind (hide CLIP until answered)")
                ui.c_min_view = gr.Number(c.min_view_ms, precision=0, label="Minimum viewing time (ms)")
            ui.switch = gr.Button("Switch to this campaign", variant="stop")
            ui.prompt_file = gr.File(label="Or upload a prompt file (CSV, JSON, JSONL, TXT): a new campaign on it",
                                     type="filepath", file_types=[".csv", ".json", ".jsonl", ".ndjson", ".txt"],
                                     elem_id="gn-prompt-file")
        ui.start_message = gr.HTML(elem_id="gn-start-message")
    return ui


def view_tab(title: str, tab_id: str, prefix: str) -> SimpleNamespace:
    ui = SimpleNamespace()
    with gr.Tab(title, id=tab_id) as ui.tab:
        with gr.Column(elem_id=f"gn-{tab_id}"):
            ui.message = gr.HTML(render.message(""), elem_id=f"{prefix}message", padding=False)
            ui.screen = gr.HTML(render.idle("batch" if tab_id == "workbench" else "pairwise",
                                            "Say who you are in Start first."), elem_id=f"{prefix}screen",
                                padding=False)
            ui.payload = gr.Textbox(visible="hidden")
            ui.send = gr.Button("send", visible="hidden", elem_id=f"{prefix}send")
    return ui


def history_tab() -> SimpleNamespace:
    ui = SimpleNamespace()
    with gr.Tab("History", id="history") as ui.tab:
        with gr.Row():
            ui.text = gr.Textbox(label="Prompt contains", scale=3)
            ui.campaign = gr.Dropdown([], label="Campaign", scale=2, allow_custom_value=False)
            ui.everyone = gr.Checkbox(False, label="Everyone's answers", scale=1, visible=False)
            ui.refresh = gr.Button("Refresh", scale=0)
        ui.note = gr.Markdown()
        ui.table = gr.Dataframe(headers=HISTORY_COLUMNS, interactive=False, wrap=True, elem_id="gn-history",
                                max_height=360, column_widths=["11%", "9%", "12%", "34%", "9%", "8%", "17%"])
        ui.details = gr.HTML()
        ui.selected = gr.Textbox(visible="hidden")
        ui.relabel = gr.Button("Relabel", visible=False)
    return ui


def analysis_tab() -> SimpleNamespace:
    ui = SimpleNamespace()
    with gr.Tab("Analysis", id="analysis", visible=False) as ui.tab:
        gr.Markdown("What this campaign's judgements say, every figure held out and every interval resampled by "
                    "prompt and seed (the same as `goldennoise analyze OUTPUTS`).")
        with gr.Row():
            ui.with_selector = gr.Checkbox(True, label="Train and evaluate the seed selector")
            ui.run = gr.Button("Run analysis", variant="primary")
        ui.summary = gr.HTML(elem_id="gn-analysis-summary")
        ui.figures = gr.Gallery(label="Figures", columns=2, height="auto", format="png", object_fit="contain",
                                elem_id="gn-analysis-figures")
        ui.selector = gr.Dataframe(label="Seed selector, held out", interactive=False, visible=False)
        ui.report = gr.File(label="Self-contained HTML report")
        with gr.Row():
            ui.formats = gr.CheckboxGroup(list(EXPORT_FORMATS), value=list(EXPORT_FORMATS), label="Export formats")
            ui.export = gr.Button("Export")
        ui.export_note = gr.HTML()
        ui.files = gr.File(label="Exported files", file_count="multiple")
    return ui


def build_demo(ctx: Context, banner: str | None = None) -> gr.Blocks:
    """The app around a started engine; `banner` warns on every page (no logins beyond this machine, ...)."""
    b = Browser(ctx)
    with gr.Blocks(title="GoldenNoise", delete_cache=(3600, 3600)) as demo:
        api.register(ctx)  # first, so the public endpoints keep their plain names
        remembered = gr.BrowserState("", storage_key="goldennoise-annotator")
        gr.HTML("<b>GoldenNoise</b> · tick the seeds whose images are best; every answer keeps the exact noise "
                "behind it.", elem_id="gn-brand", padding=False)
        if banner:
            gr.HTML(f"⚠️ <b>{render.e(banner)}</b>", elem_id="gn-banner")
        with gr.Tabs(selected="start") as tabs:
            start = start_tab(ctx)
            bench = view_tab("Workbench", "workbench", "gn-")
            pair = view_tab("Pairwise", "pairwise", "gn-pair-")
            hist = history_tab()
            anal = analysis_tab()
        timer = gr.Timer(LEASE_RENEW_SECONDS)

        # Wiring ---------------------------------------------------------------------------------
        private = dict(api_visibility="private", concurrency_limit=None)
        form = [start.c_name, start.c_model, start.c_dtype, start.c_steps, start.c_guidance, start.c_height,
                start.c_width, start.c_scheduler, start.c_batch, start.c_strategy, start.c_start, start.c_pool,
                start.c_candidates, start.c_method, start.c_explore, start.c_overlap, start.c_blind, start.c_min_view]
        arrive = [start.name, bench.screen, bench.message, tabs, start.admin, anal.tab, start.campaign, remembered,
                  hist.everyone, *form]
        quiet = dict(show_progress="hidden", **private)
        demo.load(b.on_load, remembered, arrive, **quiet)
        start.start.click(b.start, start.name, arrive, **private)
        start.name.submit(b.start, start.name, arrive, **private)
        bench.send.click(b.act, bench.payload, [bench.screen, bench.message], js="() => window.gn.take('batch')",
                         show_progress="hidden", **private)
        pair.send.click(b.pair_act, pair.payload, [pair.screen, pair.message], js="() => window.gn.take('pairwise')",
                        show_progress="hidden", **private)
        bench.tab.select(b.open_workbench, bench.payload, [bench.screen, bench.message], show_progress="hidden",
                         js="() => window.gn ? window.gn.state('batch').batch : null", **private)
        pair.tab.select(b.open_pairwise, pair.payload, [pair.screen, pair.message], show_progress="hidden",
                        js="() => window.gn ? window.gn.state('pairwise').batch : null", **private)
        timer.tick(b.renew, None, [bench.screen, bench.message, pair.screen, pair.message], **quiet)
        demo.unload(b.unload)

        history_in, history_out = [hist.everyone, hist.text, hist.campaign], [hist.table, hist.note, hist.campaign]
        hist.tab.select(b.history, history_in, history_out, **private)
        hist.refresh.click(b.history, history_in, history_out, **private)
        hist.text.submit(b.history, history_in, history_out, **private)
        hist.everyone.input(b.history, history_in, history_out, **private)
        hist.campaign.input(b.history, history_in, history_out, **private)
        hist.table.select(b.history_select, hist.table, [hist.details, hist.selected, hist.relabel], **private)
        hist.relabel.click(b.relabel, hist.selected, [bench.screen, bench.message, tabs], **private)

        start.switch.click(b.switch, form, [start.campaign, start.start_message, *form], **private)
        start.c_model.input(defaults_for, start.c_model, [start.c_steps, start.c_guidance, start.c_height,
                                                          start.c_width], **private)
        start.prompt_file.upload(b.upload, start.prompt_file, [start.prompt_file, start.campaign, start.start_message,
                                                               *form], **private)
        anal.run.click(b.analysis, anal.with_selector, [anal.summary, anal.figures, anal.selector, anal.report],
                       concurrency_id="analysis", concurrency_limit=1, api_visibility="private")
        anal.export.click(b.export, anal.formats, [anal.export_note, anal.files], concurrency_id="analysis",
                          concurrency_limit=1, api_visibility="private")
    return demo


def defaults_for(model: str):
    """A known model's own defaults fill the form when an administrator picks it.

    Only the list of known models is consulted (never the disk): this runs for anyone who can reach the page.
    """
    spec = models.KNOWN_MODELS.get(model) if isinstance(model, str) else None
    if spec is None:
        return [gr.skip()] * 4
    return spec.num_inference_steps, spec.guidance_scale, spec.height, spec.width
