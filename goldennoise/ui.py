"""The Gradio Blocks app: Settings, Workbench, Pairwise and History over the core session.

The only module that imports gradio. Every listener has an `api_name`, so the
same loop is scriptable with `gradio_client`; per-annotator state lives in
`gr.State`, the loaded model and the record store are shared. Errors a user can
act on are raised as `gr.Error`, which the browser shows as a message and the
API returns to the caller; the app keeps serving. Keyboard shortcuts live in
`shortcuts.js`, passed to `launch(js=...)`.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import gradio as gr
import pandas as pd

from goldennoise import answers, export, history, models, prefilter, seeds, session
from goldennoise.assignment import Assigner
from goldennoise.engine import Batch, Engine
from goldennoise.generation import GenerationError
from goldennoise.models import ModelLoadError
from goldennoise.prompts import PromptFileError, PromptSet, load_prompts
from goldennoise.records import RecordStore

log = logging.getLogger(__name__)
GPU = "gpu"  # one concurrency id for everything that runs the pipeline
DEFAULT_SCHEDULER = "pipeline default"
USER_ERRORS = (ValueError, ModelLoadError, GenerationError, PromptFileError)
SHORTCUTS_JS = (Path(__file__).parent / "shortcuts.js").read_text()
LEGEND = ("**Keys** · `1`–`9`, `0` toggle seed 1–10 · `Enter` submit · `a` all golden · `n` none golden · "
          "`s` skip · `u` undo · `f` / `←` `→` larger view (`Esc` closes) · off while typing in a field")
PAIR_LEGEND = "**Keys** · `1` / `←` left · `2` / `→` right · `t` tie · `b` both bad · `s` skip · `u` undo"
HISTORY_COLUMNS = ["time", "annotator", "prompt", "model", "answer", "golden", "shown", "record_id"]


def _refused(error: Exception) -> gr.Error:
    log.warning("request refused: %s", error)
    return gr.Error(str(error), print_exception=False)


def user_errors(fn):
    """Turn errors a user can act on into `gr.Error` (a message in the UI and the API)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as error:
            raise _refused(error) from None
    return wrapper


def user_errors_stream(fn):
    """`user_errors` for generator listeners (errors surface while iterating)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            yield from fn(*args, **kwargs)
        except USER_ERRORS as error:
            raise _refused(error) from None
    return wrapper


def _whole(value, name: str) -> int:
    """A whole number from a UI/API value, or a ValueError naming the field."""
    try:
        number = float(value)
        whole = int(number)
    except (TypeError, ValueError, OverflowError):  # None, "", "abc", inf, nan
        raise ValueError(f"{name} must be a whole number, got {value!r}.") from None
    if number != whole:
        raise ValueError(f"{name} must be a whole number, got {value!r}.")
    return whole


def _settings_from_inputs(model, steps, guidance, scheduler, width, height, batch_size, seed_strategy,
                          start_seed, max_sequence_length, use_clip, pool_size=64, candidates=0,
                          prefilter_method="clip") -> session.Settings:
    return session.Settings(
        model=str(model or "").strip(),
        num_inference_steps=_whole(steps, "Steps"),
        guidance_scale=float(guidance),
        height=_whole(height, "Height"),
        width=_whole(width, "Width"),
        batch_size=_whole(batch_size, "Batch size"),
        seed_strategy=seed_strategy,
        start_seed=_whole(start_seed, "Start seed"),
        scheduler=None if scheduler in (None, "", DEFAULT_SCHEDULER) else scheduler,
        max_sequence_length=None if max_sequence_length in (None, "", 0) else _whole(max_sequence_length, "Max sequence length"),
        use_clip=bool(use_clip),
        pool_size=_whole(pool_size, "Pool size"),
        candidates=_whole(candidates or 0, "Candidates"),
        prefilter=prefilter_method or "clip",
    )


def _caption(seed: int, score: float | None) -> str:
    return f"seed {seed}" + ("" if score is None else f" · CLIP {score:.2f}")


def build_demo(engine: Engine, store: RecordStore, prompt_set: PromptSet, defaults: session.Settings,
               assigner: Assigner | None = None, banner: str | None = None) -> gr.Blocks:
    """Build the app around a shared engine, store and prompt assigner; sessions start on `prompt_set`.

    `banner` is a warning shown at the top of every page (e.g. a share link without auth).
    """
    outputs = store.outputs
    assigner = assigner or Assigner()

    def image_path(relative: str) -> str:
        return str(outputs / relative)

    def render_batch(state, batch: Batch | None, final: bool = True):
        """(gallery, golden checkbox update, hint) for the batch-view batch on screen."""
        if batch is None or (final and state.mode != "batch"):
            return [], gr.update(choices=[], value=[]), ""
        scores = batch.clip_scores or [None] * len(batch.seeds)
        gallery = [(image_path(p), _caption(s, c)) for s, c, p in zip(batch.seeds, scores, batch.image_paths)]
        choices = [(f"#{i + 1} · seed {seed}", seed) for i, seed in enumerate(batch.seeds)]
        hint = ""
        if batch.clip_scores:
            best = max(range(len(batch.seeds)), key=lambda i: batch.clip_scores[i])
            hint = f"Best by CLIP: **#{best + 1}** · seed {batch.seeds[best]} ({batch.clip_scores[best]:.2f})"
        if batch.prefilter and final:
            p = batch.prefilter
            by = "CLIP" if p["method"] == "clip" else "the seed selector"
            hint = (f"Pre-filtered by {by}: the best {p['shown']} of {p['candidates']} candidates, best first "
                    f"({len(p['hidden'])} hidden, recorded). Recommended: **#1** · seed {batch.seeds[0]}.  \n{hint}")
        how = "prefetched" if batch.prefetched else f"generated in {batch.generation_seconds:.2f} s"
        if not final:
            how = f"generating… {len(batch.seeds)} ready"
        value = [s for s in state.restored_golden if s in batch.seeds] if final else []
        return gallery, gr.update(choices=choices, value=value), f"{hint}  \n{len(batch.seeds)} images, {how}"

    def render_pair(state):
        batch = state.batch
        if batch is None or state.mode != session.PAIRWISE:
            return None, None
        scores = batch.clip_scores or [None, None]
        return tuple(gr.update(value=image_path(p), label=f"{side} · {_caption(s, c)}") for side, s, c, p in
                     zip(("Left", "Right"), batch.seeds, scores, batch.image_paths))

    def prompt_view(state):
        prompt = session.current_prompt(state)
        text = prompt.text if prompt else "All prompts answered. Load another prompt file in Settings to go on."
        return text, session.progress_text(state)

    @user_errors
    def init_model(model, steps, guidance, scheduler, width, height, batch_size, seed_strategy, start_seed,
                   max_sequence_length, use_clip, annotator, pool_size, candidates, prefilter_method, state,
                   request: gr.Request, progress=gr.Progress()):
        settings = _settings_from_inputs(model, steps, guidance, scheduler, width, height, batch_size, seed_strategy,
                                         start_seed, max_sequence_length, use_clip, pool_size, candidates,
                                         prefilter_method)
        progress(0.1, desc=f"Loading {settings.model}…")
        # With auth on, the logged-in user is the annotator, whatever is typed.
        logged_in = getattr(request, "username", None)
        state.annotator = logged_in or (annotator or "").strip()[:64] or "anonymous"
        status = session.apply_settings(engine, state, settings, store, assigner)
        who = f"Annotator: **{state.annotator}**" + (" (logged in)" if logged_in else "")
        schedulers = [DEFAULT_SCHEDULER] + models.compatible_schedulers(engine.model.pipe)
        return f"{status}  \n{who}", state, gr.update(choices=schedulers)

    @user_errors
    def upload_prompts(path, state):
        if not path:
            return "No file given.", state
        loaded = load_prompts(path)
        session.use_prompts(state, loaded)
        return loaded.summary(), state

    def get_next_prompt(state):
        session.advance(state, assigner)
        return *prompt_view(state), state

    @user_errors_stream
    def generate_batch(state):
        for batch in session.generate_stream(engine, state, assigner=assigner):
            final = state.batch is batch
            yield *render_batch(state, batch, final), state

    @user_errors
    def submit_selection(golden, state):
        record = answers.submit(store, state, golden or [], assigner)
        counted = {"none_golden": f"none golden ({len(record.bad_seeds)} bad)",
                   "all_golden": f"all golden ({len(record.golden_seeds)})"}.get(
            record.verdict, f"{len(record.golden_seeds)} golden, {len(record.bad_seeds)} bad")
        return f"Saved: {counted} for “{record.prompt['text'][:60]}” (record {record.record_id[:8]}).", state

    @user_errors
    def skip_prompt(state):
        record = answers.skip(store, state, assigner)
        return f"Skipped “{record.prompt['text'][:60]}”.", state

    @user_errors
    def undo_last(state):
        retraction = answers.undo(store, state, assigner)
        text, progress = prompt_view(state)
        message = f"Undone: “{retraction.prompt['text'][:60]}” is back (retraction {retraction.record_id[:8]})."
        return (text, progress, *render_batch(state, state.batch), *render_pair(state), message, state)

    @user_errors_stream
    def pairwise_batch(state):
        for batch in session.generate_stream(engine, state, mode=session.PAIRWISE, assigner=assigner):
            if state.batch is batch:
                yield *prompt_view(state), *render_pair(state), state

    @user_errors
    def submit_pair(winner, state):
        record = answers.submit_pair(store, state, winner, assigner)
        return f"Saved pairwise: {winner.replace('_', ' ')} for “{record.prompt['text'][:60]}”.", state

    def start_if_idle(state):
        """After loading, put the first open prompt on screen unless one is there already."""
        if session.current_prompt(state) is None or session.current_prompt(state).text in state.status:
            session.advance(state, assigner)
        return *prompt_view(state), state, gr.Tabs(selected="workbench")

    def defaults_for(model):
        try:
            spec = models.resolve(model)
        except ModelLoadError:
            return [gr.update()] * 5
        return (spec.num_inference_steps, spec.guidance_scale, spec.width, spec.height,
                spec.max_sequence_length or 0)

    def history_table(text, model):
        result = store.read()
        rows = history.table(result.records, text or "", model or "")
        names = sorted({r.model.get("name", "") for r in result.records if r.model.get("name")})
        note = f"{len(rows)} answer{'' if len(rows) == 1 else 's'} shown" + (f"; {len(result.warnings)} unreadable line(s) skipped"
                                               if result.warnings else "")
        return pd.DataFrame(rows, columns=HISTORY_COLUMNS), gr.update(choices=[""] + names), note

    def find_record(record_id: str):
        for record in history.live(store.read().records):
            if record.record_id == record_id:
                return record
        raise ValueError(f"No live record {record_id!r}: it may have been undone or relabeled.")

    @user_errors
    def show_record(table: pd.DataFrame, event: gr.SelectData):
        record = find_record(str(table.iloc[event.index[0]]["record_id"]))
        scores = {s["seed"]: s["clip_score"] for s in record.samples}
        paths = {s["seed"]: s["image_path"] for s in record.samples}
        golden = [(image_path(paths[s]), _caption(s, scores[s])) for s in record.golden_seeds]
        bad = [(image_path(paths[s]), _caption(s, scores[s])) for s in record.bad_seeds]
        if record.kind != "judgement":
            bad = [(image_path(paths[s]), _caption(s, scores[s])) for s in record.seeds]
        details = (f"**{record.prompt['text']}**  \n{record.annotator} · {record.model.get('name')} · "
                   f"{record.created_at} · {record.verdict or record.kind} · record `{record.record_id}`")
        return golden, bad, details, record.record_id

    @user_errors
    def reopen_record(record_id, state):
        answers.reopen(state, find_record(record_id))
        return (*prompt_view(state), *render_batch(state, state.batch), state, gr.Tabs(selected="workbench"))

    @user_errors
    def run_analysis(with_selector, progress=gr.Progress()):
        from goldennoise.analysis import analyze, report

        progress(0.1, desc="Re-making noises and fitting…")
        analysis = analyze(outputs, with_selector=bool(with_selector))
        written = report.write(analysis, outputs)
        overall = analysis.summary["overall"].iloc[0]
        lines = [f"**{int(overall['prompts_judged'])} prompts**, {int(overall['judgements'])} judgements, "
                 f"{int(overall['seeds_judged'])} seeds judged, golden rate {overall['golden_rate']:.3f} "
                 f"[{overall['ci_low']:.3f}, {overall['ci_high']:.3f}], {int(overall['annotators'])} annotator(s)."]
        clip = analysis.clip
        if clip.get("judgements_used"):
            lines.append(f"CLIP vs annotator: within-prompt AUC {clip['mean_within_prompt_auc']:.3f} "
                         f"[{clip['auc_ci_low']:.3f}, {clip['auc_ci_high']:.3f}]; best-CLIP seed golden "
                         f"{clip['best_clip_was_golden']:.2f} vs chance {clip['chance_best_clip_golden']:.2f}.")
        if analysis.selector is not None:
            lines.append(f"Seed selector saved (held-out AUC {analysis.selector.held_out_auc:.3f}); "
                         "choose 'selector' in Settings to pre-filter with it.")
        lines += [f"- {note}" for note in analysis.notes]
        gallery = [(str(path), title) for path, title in written["figures"]]
        table = None if analysis.selector_results is None else analysis.selector_results.round(3)
        return "  \n".join(lines), gallery, table, str(written["report"])

    @user_errors
    def run_export(formats):
        done = export.export(outputs, outputs / "exports", formats or export.FORMATS)
        files = [str(path) for name, path in done.items() if name != "imagefolder"]
        note = "\n".join(f"- {name}: `{path}`" for name, path in done.items())
        return note, files

    with gr.Blocks(title="GoldenNoise") as demo:
        state = gr.State(session.new_session(prompt_set))
        gr.Markdown("# GoldenNoise\nPick the seeds whose images are best: every judgement is recorded with the noise behind it.")
        if banner:
            gr.Markdown(f"⚠️ **{banner}**", elem_id="gn-banner")
        with gr.Tabs() as tabs:
            with gr.Tab("Settings", id="settings"):
                with gr.Row():
                    annotator = gr.Textbox(label="Annotator", placeholder="your name", scale=1)
                    model = gr.Dropdown(list(models.KNOWN_MODELS), value=defaults.model, allow_custom_value=True,
                                        label="Model (known name, hub id or local folder)", scale=2)
                    scheduler = gr.Dropdown([DEFAULT_SCHEDULER], value=DEFAULT_SCHEDULER, label="Scheduler", scale=1)
                with gr.Row():
                    steps = gr.Number(defaults.num_inference_steps, precision=0, label="Steps (num_inference_steps)")
                    guidance = gr.Number(defaults.guidance_scale, label="Guidance (guidance_scale)")
                    width = gr.Number(defaults.width, precision=0, step=16, label="Width")
                    height = gr.Number(defaults.height, precision=0, step=16, label="Height")
                    max_sequence_length = gr.Number(defaults.max_sequence_length or 0, precision=0,
                                                    label="Max sequence length (0: none)")
                with gr.Row():
                    batch_size = gr.Number(defaults.batch_size, precision=0, label="Batch size (seeds per prompt)")
                    seed_strategy = gr.Radio(list(seeds.STRATEGIES), value=defaults.seed_strategy, label="Seed strategy")
                    start_seed = gr.Number(defaults.start_seed, precision=0, label="Start seed (sequential)")
                    use_clip = gr.Checkbox(defaults.use_clip, label="CLIP scores")
                with gr.Row():
                    pool_size = gr.Number(defaults.pool_size, precision=0, label="Pool size (pool strategy)")
                    candidates = gr.Number(defaults.candidates, precision=0,
                                           label="Candidates per prompt (0: off; more than the batch size: "
                                                 "show only the best)")
                    prefilter_method = gr.Radio(list(prefilter.METHODS), value=defaults.prefilter,
                                                label="Rank candidates by")
                with gr.Row():
                    prompt_file = gr.File(label="Prompt file (CSV, JSON, JSONL, TXT)", type="filepath",
                                          file_types=[".csv", ".json", ".jsonl", ".ndjson", ".txt"])
                    prompt_status = gr.Markdown(prompt_set.summary())
                load = gr.Button("Load model", variant="primary")
                status = gr.Markdown("No model loaded yet. Loading resumes at your first unanswered prompt.")
            with gr.Tab("Workbench", id="workbench"):
                with gr.Column(elem_id="gn-workbench"):
                    progress = gr.Markdown("Load a model in Settings to start.")
                    prompt_box = gr.Textbox(label="Prompt", interactive=False, lines=2)
                    gallery = gr.Gallery(label="Batch", columns=4, height="auto", format="png", object_fit="contain",
                                         elem_id="gn-gallery")
                    golden = gr.CheckboxGroup([], label="Golden seeds (tick the good ones; the rest are recorded as bad)",
                                              elem_id="gn-golden")
                    hint = gr.Markdown()
                    with gr.Row():
                        submit = gr.Button("Submit (Enter)", variant="primary", elem_id="gn-submit", scale=2)
                        all_golden = gr.Button("All golden (a)", elem_id="gn-all")
                        none_golden = gr.Button("None golden (n)", elem_id="gn-none")
                        skip = gr.Button("Skip (s)", elem_id="gn-skip")
                        undo = gr.Button("Undo (u)", elem_id="gn-undo")
                    message = gr.Markdown()
                    gr.Markdown(LEGEND)
            with gr.Tab("Pairwise", id="pairwise"):
                with gr.Column(elem_id="gn-pairwise"):
                    pair_progress = gr.Markdown("Compare two seeds of one prompt. Load a model in Settings first.")
                    pair_prompt = gr.Textbox(label="Prompt", interactive=False, lines=2)
                    with gr.Row():
                        left_image = gr.Image(label="Left", type="filepath", format="png", interactive=False, height=512)
                        right_image = gr.Image(label="Right", type="filepath", format="png", interactive=False, height=512)
                    with gr.Row():
                        pair_start = gr.Button("Show a pair", variant="secondary")
                        left = gr.Button("Left is better (1 / ←)", elem_id="gn-left", variant="primary")
                        right = gr.Button("Right is better (2 / →)", elem_id="gn-right", variant="primary")
                        tie = gr.Button("Tie (t)", elem_id="gn-tie")
                        both_bad = gr.Button("Both bad (b)", elem_id="gn-both-bad")
                        pair_skip = gr.Button("Skip (s)", elem_id="gn-pair-skip")
                        pair_undo = gr.Button("Undo (u)", elem_id="gn-pair-undo")
                    pair_message = gr.Markdown()
                    gr.Markdown(PAIR_LEGEND)
                    pair_winner = gr.Radio(list(answers.WINNERS), visible=False)
                    pair_api = gr.Button(visible=False)
            with gr.Tab("History", id="history"):
                with gr.Row():
                    history_text = gr.Textbox(label="Prompt contains", scale=2)
                    history_model = gr.Dropdown([""], value="", label="Model", scale=1)
                    refresh = gr.Button("Refresh", scale=0)
                history_note = gr.Markdown()
                history_df = gr.Dataframe(headers=HISTORY_COLUMNS, interactive=False, wrap=True)
                history_details = gr.Markdown("Select a row to see its golden and bad images.")
                with gr.Row():
                    golden_gallery = gr.Gallery(label="Golden", columns=3, height="auto", format="png", fit_columns=False)
                    bad_gallery = gr.Gallery(label="Bad (or not judged)", columns=3, height="auto", format="png",
                                             fit_columns=False)
                selected_id = gr.Textbox(label="Selected record", interactive=False)
                relabel = gr.Button("Relabel in the Workbench (supersedes this record)")

            with gr.Tab("Analysis", id="analysis"):
                gr.Markdown("What the judgements say: golden vs bad, CLIP vs annotator, noise statistics, "
                            "embeddings, seeds across prompts, a seed selector with held-out figures. "
                            "The same as `python -m goldennoise.analysis OUTPUTS`.")
                with gr.Row():
                    with_selector = gr.Checkbox(True, label="Train and evaluate the seed selector")
                    analyze_button = gr.Button("Run analysis", variant="primary")
                analysis_summary = gr.Markdown()
                analysis_figures = gr.Gallery(label="Figures", columns=2, height="auto", format="png",
                                              object_fit="contain", elem_id="gn-analysis-figures")
                selector_table = gr.Dataframe(label="Seed selector (held out, grouped by prompt)", interactive=False)
                report_file = gr.File(label="Self-contained HTML report")
                gr.Markdown("### Export")
                with gr.Row():
                    export_formats = gr.CheckboxGroup(list(export.FORMATS), value=list(export.FORMATS),
                                                      label="Formats")
                    export_button = gr.Button("Export")
                export_note = gr.Markdown()
                export_files = gr.File(label="Exported files", file_count="multiple")

        batch_outputs = [gallery, golden, hint, state]
        pair_outputs = [pair_prompt, pair_progress, left_image, right_image, state]
        # The first chain names the API endpoints; later copies of the same steps are private.
        def then_next(event, public: bool = False):
            """Chain: next prompt, then its batch (prefetched when ready)."""
            names = dict(api_name="get_next_prompt") if public else dict(api_visibility="private")
            batch_names = dict(api_name="generate_batch") if public else dict(api_visibility="private")
            return (event.success(get_next_prompt, state, [prompt_box, progress, state], **names)
                         .success(generate_batch, state, batch_outputs, concurrency_id=GPU, concurrency_limit=1,
                                  **batch_names))

        then_next(skip.click(skip_prompt, state, [message, state], api_name="skip_prompt"), public=True)
        then_next(submit.click(submit_selection, [golden, state], [message, state], api_name="submit_selection"))
        undo.click(undo_last, state, [prompt_box, progress, gallery, golden, hint, left_image, right_image, message, state],
                   api_name="undo_last")
        all_golden.click(None, js="() => window.goldennoise.tick(true)")
        none_golden.click(None, js="() => window.goldennoise.tick(false)")
        (load.click(init_model,
                    [model, steps, guidance, scheduler, width, height, batch_size, seed_strategy, start_seed,
                     max_sequence_length, use_clip, annotator, pool_size, candidates, prefilter_method, state],
                    [status, state, scheduler], api_name="init_model", concurrency_id=GPU, concurrency_limit=1)
             .success(start_if_idle, state, [prompt_box, progress, state, tabs], api_visibility="private")
             .success(generate_batch, state, batch_outputs, api_visibility="private",
                      concurrency_id=GPU, concurrency_limit=1))
        model.change(defaults_for, model, [steps, guidance, width, height, max_sequence_length],
                     api_visibility="private")
        prompt_file.upload(upload_prompts, [prompt_file, state], [prompt_status, state], api_name="load_prompts")

        pair_start.click(pairwise_batch, state, pair_outputs, api_name="pairwise_batch",
                         concurrency_id=GPU, concurrency_limit=1)
        # API callers name the winner; the buttons each pass their own.
        pair_api.click(submit_pair, [pair_winner, state], [pair_message, state], api_name="submit_pair")
        for button, winner in ((left, "left"), (right, "right"), (tie, "tie"), (both_bad, "both_bad")):
            (button.click(submit_pair, [gr.State(winner), state], [pair_message, state], api_visibility="private")
                   .success(get_next_prompt, state, [pair_prompt, pair_progress, state], api_visibility="private")
                   .success(pairwise_batch, state, pair_outputs, api_visibility="private",
                            concurrency_id=GPU, concurrency_limit=1))
        (pair_skip.click(skip_prompt, state, [pair_message, state], api_visibility="private")
                  .success(get_next_prompt, state, [pair_prompt, pair_progress, state], api_visibility="private")
                  .success(pairwise_batch, state, pair_outputs, api_visibility="private",
                           concurrency_id=GPU, concurrency_limit=1))
        pair_undo.click(undo_last, state, [prompt_box, progress, gallery, golden, hint, left_image, right_image,
                                           pair_message, state], api_visibility="private")

        history_inputs, history_outputs = [history_text, history_model], [history_df, history_model, history_note]
        refresh.click(history_table, history_inputs, history_outputs, api_name="history")
        history_text.submit(history_table, history_inputs, history_outputs, api_visibility="private")
        history_model.input(history_table, history_inputs, history_outputs, api_visibility="private")
        history_df.select(show_record, history_df, [golden_gallery, bad_gallery, history_details, selected_id],
                          api_visibility="private")
        analyze_button.click(run_analysis, with_selector, [analysis_summary, analysis_figures, selector_table,
                                                           report_file], api_name="analysis",
                             concurrency_id="analysis", concurrency_limit=1)
        export_button.click(run_export, export_formats, [export_note, export_files], api_name="export",
                            concurrency_id="analysis", concurrency_limit=1)
        relabel.click(reopen_record, [selected_id, state], [prompt_box, progress, *batch_outputs[:3], state, tabs],
                      api_name="reopen_record")
    return demo


MAX_UPLOAD = "20mb"  # prompt files; the parser refuses more than 20 MiB as well


def launch(demo: gr.Blocks, outputs: Path, max_queue: int = 64, **kwargs):
    """Queue and launch `demo` with the shortcuts, serving the saved images under `outputs`.

    The queue is bounded: past `max_queue` waiting requests a caller is told the
    queue is full instead of hanging; queued callers see their position.
    """
    return demo.queue(default_concurrency_limit=4, max_size=max_queue).launch(
        allowed_paths=[str(Path(outputs).resolve())], js=SHORTCUTS_JS, max_file_size=MAX_UPLOAD, **kwargs)
