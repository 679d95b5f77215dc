"""One annotator's session: settings, prompt queue, current batch, submitting.

The state is a plain dataclass (kept per browser tab in `gr.State`, or by any
Python caller); the functions here take the shared `Engine` / `RecordStore` as
arguments, so the whole annotation loop runs and is tested without Gradio.
"""

from __future__ import annotations

import platform
import uuid
from dataclasses import dataclass, field

from goldennoise import __version__, generation, models, seeds
from goldennoise.engine import Batch, Engine
from goldennoise.generation import GenerationParams
from goldennoise.prompts import Prompt, PromptSet
from goldennoise.records import Record, RecordStore, new_record_id, utc_now


@dataclass
class Settings:
    """What an annotator chose in the Settings tab."""

    model: str
    num_inference_steps: int
    guidance_scale: float
    height: int
    width: int
    batch_size: int = 4
    seed_strategy: str = "random"
    start_seed: int = 0
    scheduler: str | None = None
    max_sequence_length: int | None = None
    use_clip: bool = True

    def params(self) -> GenerationParams:
        return GenerationParams(
            num_inference_steps=self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            height=self.height,
            width=self.width,
            max_sequence_length=self.max_sequence_length,
            scheduler=self.scheduler,
        )


def default_settings(model_name: str | None = None) -> Settings:
    """Settings with the model's own defaults (steps, guidance, size)."""
    spec = models.resolve(model_name or models.default_model_name())
    return Settings(
        model=spec.name,
        num_inference_steps=spec.num_inference_steps,
        guidance_scale=spec.guidance_scale,
        height=spec.height,
        width=spec.width,
        max_sequence_length=spec.max_sequence_length,
    )


@dataclass
class SessionState:
    """Per-annotator progress; plain data, safe to deep-copy."""

    prompts: list[Prompt]
    prompt_source: str
    annotator: str = "anonymous"
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    settings: Settings | None = None
    position: int = -1  # index into prompts of the prompt on screen; -1 before the first
    batch: Batch | None = None
    shown_at: str | None = None
    judged: int = 0


def new_session(prompt_set: PromptSet, annotator: str = "anonymous") -> SessionState:
    return SessionState(prompts=list(prompt_set.prompts), prompt_source=prompt_set.source, annotator=annotator)


def use_prompts(state: SessionState, prompt_set: PromptSet) -> None:
    """Switch the session to another prompt file, from its first prompt."""
    state.prompts = list(prompt_set.prompts)
    state.prompt_source = prompt_set.source
    state.position, state.batch, state.shown_at = -1, None, None


def apply_settings(engine: Engine, state: SessionState, settings: Settings) -> str:
    """Check `settings`, load the model (and CLIP) they name, and keep them; return a status line."""
    if not 1 <= settings.batch_size <= generation.MAX_BATCH:
        raise ValueError(f"batch_size must lie in 1..{generation.MAX_BATCH}, got {settings.batch_size}.")
    seeds.draw_seeds(settings.seed_strategy, settings.batch_size, len(state.prompts), settings.start_seed)
    generation.check_inputs(settings.params(), list(range(settings.batch_size)))  # before any loading
    model = engine.load(settings.model)
    if settings.scheduler and settings.scheduler not in models.compatible_schedulers(model.pipe):
        raise ValueError(f"Scheduler {settings.scheduler!r} does not fit {model.spec.name}; "
                         f"choose one of {models.compatible_schedulers(model.pipe)}.")
    generation.check_inputs(settings.params(), list(range(settings.batch_size)), generation.size_multiple(model))
    clip_note = "CLIP off"
    if settings.use_clip:
        clip = engine.load_clip(model.spec.clip)
        clip_note = f"CLIP {clip.model_id}"
    state.settings = settings
    state.batch, state.shown_at = None, None
    revision = (model.revision or "revision unknown")[:20]
    return f"Loaded {model.spec.name} ({model.pipeline_class}, {model.dtype} on {model.device}, {revision}); {clip_note}."


def current_prompt(state: SessionState) -> Prompt | None:
    return state.prompts[state.position] if 0 <= state.position < len(state.prompts) else None


def advance(state: SessionState) -> Prompt | None:
    """Move to the next prompt; None once every prompt has been shown."""
    state.position = min(state.position + 1, len(state.prompts))
    state.batch, state.shown_at = None, None
    return current_prompt(state)


def generate(engine: Engine, state: SessionState) -> Batch:
    """Generate the batch for the current prompt and keep it as the one on screen."""
    if state.settings is None:
        raise ValueError("No model loaded for this session: choose settings and press Load first.")
    prompt = current_prompt(state) or advance(state)
    if prompt is None:
        raise ValueError("No prompt left: every prompt of this file has been shown.")
    s = state.settings
    batch_seeds = seeds.draw_seeds(s.seed_strategy, s.batch_size, prompt.index, s.start_seed)
    state.batch = engine.generate_batch(s.model, prompt.text, batch_seeds, s.params(), s.use_clip)
    state.shown_at = utc_now()
    return state.batch


def library_versions() -> dict:
    import diffusers
    import torch
    import transformers

    return {
        "goldennoise": __version__,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def build_record(state: SessionState, golden_seeds: list[int]) -> Record:
    """The record of judging the batch on screen with `golden_seeds` chosen."""
    batch, prompt = state.batch, current_prompt(state)
    if batch is None or prompt is None:
        raise ValueError("Nothing to submit: generate a batch first.")
    golden = [int(s) for s in golden_seeds]
    unknown = sorted(set(golden) - set(batch.seeds))
    if unknown:
        raise ValueError(f"Seeds {unknown} are not in the batch on screen ({batch.seeds}).")
    chosen = set(golden)
    scores = batch.clip_scores or [None] * len(batch.seeds)
    samples = [
        {"seed": seed, "golden": seed in chosen, "clip_score": score, "image_path": path, "noise": block}
        for seed, score, path, block in zip(batch.seeds, scores, batch.image_paths, batch.noise, strict=True)
    ]
    s = state.settings
    return Record(
        record_id=new_record_id(),
        created_at=utc_now(),
        annotator=state.annotator,
        prompt={"text": prompt.text, "id": prompt.id, "index": prompt.index, "source": prompt.source,
                "metadata": prompt.metadata},
        model=batch.model,
        parameters=batch.parameters,
        seeds=list(batch.seeds),
        golden_seeds=[seed for seed in batch.seeds if seed in chosen],
        bad_seeds=[seed for seed in batch.seeds if seed not in chosen],
        samples=samples,
        seed_strategy={"name": s.seed_strategy, "start_seed": s.start_seed, "batch_size": s.batch_size},
        clip_model=batch.clip_model,
        timing={
            "generated_at": batch.created_at,
            "shown_at": state.shown_at,
            "generation_seconds": round(batch.generation_seconds, 4),
            "scoring_seconds": round(batch.scoring_seconds, 4),
            "saving_seconds": round(batch.saving_seconds, 4),
        },
        versions=library_versions(),
        session_id=state.session_id,
    )


def submit(store: RecordStore, state: SessionState, golden_seeds: list[int]) -> Record:
    """Record the judgement of the batch on screen; the batch is then cleared."""
    record = build_record(state, golden_seeds)
    store.append(record)
    state.judged += 1
    state.batch, state.shown_at = None, None
    return record


def progress_text(state: SessionState) -> str:
    total = len(state.prompts)
    shown = min(state.position + 1, total)
    return f"Prompt {shown} of {total} · {state.judged} judged this session · {state.prompt_source}"
