"""The Gradio Blocks app: Settings and Workbench tabs over the core session functions.

The only module that imports gradio. Every listener has an `api_name`, so the
same loop is scriptable with `gradio_client`; per-annotator state lives in
`gr.State`, the loaded model and the record store are shared. Errors a user can
act on are raised as `gr.Error`, which the browser shows as a message and the
API returns to the caller; the app keeps serving.
"""

from __future__ import annotations

import logging
from pathlib import Path

import gradio as gr

from goldennoise import models, seeds, session
from goldennoise.engine import Engine
from goldennoise.generation import GenerationError
from goldennoise.models import ModelLoadError
from goldennoise.prompts import PromptFileError, PromptSet, load_prompts
from goldennoise.records import RecordStore

log = logging.getLogger(__name__)
GPU = "gpu"  # one concurrency id for everything that runs the pipeline
DEFAULT_SCHEDULER = "pipeline default"
USER_ERRORS = (ValueError, ModelLoadError, GenerationError, PromptFileError)


def _user_error(error: Exception) -> gr.Error:
    log.warning("request refused: %s", error)
    return gr.Error(str(error), print_exception=False)


def _whole(value, name: str) -> int:
    """A whole number from a UI/API value, or a ValueError naming the field."""
    if value is None or value == "" or float(value) != int(float(value)):
        raise ValueError(f"{name} must be a whole number, got {value!r}.")
    return int(float(value))


def _settings_from_inputs(model, steps, guidance, scheduler, width, height, batch_size, seed_strategy,
                          start_seed, max_sequence_length, use_clip) -> session.Settings:
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
    )


def _caption(seed: int, score: float | None) -> str:
    return f"seed {seed}" + ("" if score is None else f" · CLIP {score:.2f}")


def build_demo(engine: Engine, store: RecordStore, prompt_set: PromptSet, defaults: session.Settings) -> gr.Blocks:
    """Build the app around a shared engine and store, starting every session on `prompt_set`."""
    outputs = store.outputs

    def init_model(model, steps, guidance, scheduler, width, height, batch_size, seed_strategy, start_seed,
                   max_sequence_length, use_clip, annotator, state, progress=gr.Progress()):
        try:
            settings = _settings_from_inputs(model, steps, guidance, scheduler, width, height, batch_size,
                                             seed_strategy, start_seed, max_sequence_length, use_clip)
            progress(0.1, desc=f"Loading {settings.model}…")
            state.annotator = (annotator or "").strip() or "anonymous"
            status = session.apply_settings(engine, state, settings)
        except USER_ERRORS as error:
            raise _user_error(error) from None
        schedulers = [DEFAULT_SCHEDULER] + models.compatible_schedulers(engine.model.pipe)
        return status, state, gr.update(choices=schedulers)

    def upload_prompts(path, state):
        if not path:
            return "No file given.", state
        try:
            loaded = load_prompts(path)
        except PromptFileError as error:
            raise _user_error(error) from None
        session.use_prompts(state, loaded)
        return loaded.summary(), state

    def get_next_prompt(state):
        prompt = session.advance(state)
        text = prompt.text if prompt else "All prompts done. Load another prompt file in Settings to go on."
        return text, session.progress_text(state), state

    def generate_batch(state):
        try:
            batch = session.generate(engine, state)
        except USER_ERRORS as error:
            raise _user_error(error) from None
        scores = batch.clip_scores or [None] * len(batch.seeds)
        gallery = [(str(outputs / path), _caption(seed, score)) for seed, score, path in
                   zip(batch.seeds, scores, batch.image_paths)]
        choices = [(f"#{i + 1} · seed {seed}", seed) for i, seed in enumerate(batch.seeds)]
        hint = ""
        if batch.clip_scores:
            best = max(range(len(batch.seeds)), key=lambda i: batch.clip_scores[i])
            hint = f"Best by CLIP: #{best + 1} · seed {batch.seeds[best]} ({batch.clip_scores[best]:.2f})"
        timing = f"{len(batch.seeds)} images in {batch.generation_seconds:.2f} s"
        return gallery, gr.update(choices=choices, value=[]), f"{hint}  \n{timing}", state

    def submit_selection(golden, state):
        try:
            record = session.submit(store, state, golden or [])
        except USER_ERRORS as error:
            raise _user_error(error) from None
        return (f"Saved: {len(record.golden_seeds)} golden, {len(record.bad_seeds)} bad "
                f"for “{record.prompt['text'][:60]}” (record {record.record_id[:8]})."), state

    def start_if_idle(state):
        """After loading, put the first prompt on screen unless one is there already."""
        if session.current_prompt(state) is None:
            session.advance(state)
        prompt = session.current_prompt(state)
        return (prompt.text if prompt else "All prompts done."), session.progress_text(state), state, gr.Tabs(selected="workbench")

    def defaults_for(model):
        try:
            spec = models.resolve(model)
        except ModelLoadError:
            return [gr.update()] * 5
        return (spec.num_inference_steps, spec.guidance_scale, spec.width, spec.height,
                spec.max_sequence_length or 0)

    with gr.Blocks(title="GoldenNoise") as demo:
        state = gr.State(session.new_session(prompt_set))
        gr.Markdown("# GoldenNoise\nPick the seeds whose images are best: every judgement is recorded with the noise behind it.")
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
                    prompt_file = gr.File(label="Prompt file (CSV, JSON, JSONL, TXT)", type="filepath",
                                          file_types=[".csv", ".json", ".jsonl", ".ndjson", ".txt"])
                    prompt_status = gr.Markdown(prompt_set.summary())
                load = gr.Button("Load model", variant="primary")
                status = gr.Markdown("No model loaded yet.")
            with gr.Tab("Workbench", id="workbench"):
                progress = gr.Markdown("Load a model in Settings to start.")
                prompt_box = gr.Textbox(label="Prompt", interactive=False, lines=2)
                gallery = gr.Gallery(label="Batch", columns=4, height="auto", format="png", object_fit="contain")
                golden = gr.CheckboxGroup([], label="Golden seeds (tick the good ones; the rest are recorded as bad)")
                hint = gr.Markdown()
                with gr.Row():
                    submit = gr.Button("Submit", variant="primary")
                    next_button = gr.Button("Next (skip, no record)")
                message = gr.Markdown()

        model.change(defaults_for, model, [steps, guidance, width, height, max_sequence_length],
                     api_visibility="private")
        prompt_file.upload(upload_prompts, [prompt_file, state], [prompt_status, state], api_name="load_prompts")
        # Named API endpoints first, so that the private chained copies below do not take their names.
        next_button.click(get_next_prompt, state, [prompt_box, progress, state], api_name="get_next_prompt").success(
            generate_batch, state, [gallery, golden, hint, state], api_name="generate_batch",
            concurrency_id=GPU, concurrency_limit=1)
        (submit.click(submit_selection, [golden, state], [message, state], api_name="submit_selection")
               .success(get_next_prompt, state, [prompt_box, progress, state], api_visibility="private")
               .success(generate_batch, state, [gallery, golden, hint, state], api_visibility="private",
                        concurrency_id=GPU, concurrency_limit=1))
        (load.click(init_model,
                    [model, steps, guidance, scheduler, width, height, batch_size, seed_strategy, start_seed,
                     max_sequence_length, use_clip, annotator, state],
                    [status, state, scheduler], api_name="init_model", concurrency_id=GPU, concurrency_limit=1)
             .success(start_if_idle, state, [prompt_box, progress, state, tabs], api_visibility="private")
             .success(generate_batch, state, [gallery, golden, hint, state], api_visibility="private",
                      concurrency_id=GPU, concurrency_limit=1))
    return demo


def launch(demo: gr.Blocks, outputs: Path, **kwargs):
    """Queue and launch `demo`, allowing Gradio to serve the saved images under `outputs`."""
    return demo.queue(default_concurrency_limit=4).launch(allowed_paths=[str(Path(outputs).resolve())], **kwargs)
