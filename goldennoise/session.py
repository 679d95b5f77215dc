"""One annotator's session: settings, prompt queue, current batch, answers, undo.

The state is a plain dataclass (kept per browser tab in `gr.State`, or by any
Python caller); the functions here take the shared `Engine` / `RecordStore` as
arguments, so the whole annotation loop runs and is tested without Gradio.

Flow: `apply_settings` loads the model and resumes at the first prompt this
annotator has not answered on this model; `advance` moves along the queue;
`generate`/`generate_stream` show the current prompt's batch (taking the
prefetched one when it is ready) and start prefetching the next. Answers
(submit, pair, skip, undo, relabel) are in `answers.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from goldennoise import generation, history, models, prefilter, seeds
from goldennoise.assignment import Assigner
from goldennoise.engine import Batch, Engine
from goldennoise.generation import GenerationParams
from goldennoise.prompts import Prompt, PromptSet
from goldennoise.records import RecordStore, utc_now

PAIRWISE = "pairwise"


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
    pool_size: int = 64  # seeds in the pool, for the "pool" strategy
    candidates: int = 0  # > batch_size: make this many, show the best batch_size (pre-filter)
    prefilter: str = "clip"  # how candidates are ranked: "clip" or "selector"
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
class UndoEntry:
    """What an answer changed, so that undo can put it back."""

    record_id: str
    position: int
    reopened: Prompt | None
    batch: Batch | None
    golden_seeds: list[int]
    previous_status: str | None
    mode: str


@dataclass
class SessionState:
    """Per-annotator progress; plain data, safe to deep-copy."""

    prompts: list[Prompt]
    prompt_source: str
    annotator: str = "anonymous"
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    settings: Settings | None = None
    position: int = -1  # index into prompts of the prompt on screen; -1 before the first
    reopened: Prompt | None = None  # a prompt brought back from history, shown instead of position
    supersedes: str | None = None  # the record a relabel replaces
    batch: Batch | None = None
    mode: str = "batch"  # or PAIRWISE: which view the batch on screen was made for
    shown_at: str | None = None
    status: dict[str, str] = field(default_factory=dict)  # prompt text -> "judged" / "skipped"
    undo_stack: list[UndoEntry] = field(default_factory=list)
    restored_golden: list[int] = field(default_factory=list)  # seeds to pre-tick after an undo


def new_session(prompt_set: PromptSet, annotator: str = "anonymous") -> SessionState:
    return SessionState(prompts=list(prompt_set.prompts), prompt_source=prompt_set.source, annotator=annotator)


def use_prompts(state: SessionState, prompt_set: PromptSet) -> None:
    """Switch the session to another prompt file; answered prompts stay answered."""
    state.prompts = list(prompt_set.prompts)
    state.prompt_source = prompt_set.source
    clear_screen(state)
    state.position, state.reopened = -1, None


def clear_screen(state: SessionState) -> None:
    """Nothing on screen: no batch, no restored ticks, no relabel pending."""
    state.batch, state.shown_at, state.restored_golden, state.supersedes = None, None, [], None


def apply_settings(engine: Engine, state: SessionState, settings: Settings, store: RecordStore | None = None,
                   assigner: Assigner | None = None) -> str:
    """Check `settings`, load the model (and CLIP) they name, keep them, and resume.

    With a `store`, the session continues at the first prompt this annotator has
    not answered on this model (and, with an `assigner`, that no one else holds).
    Returns a status line.
    """
    if not 1 <= settings.batch_size <= generation.MAX_BATCH:
        raise ValueError(f"batch_size must lie in 1..{generation.MAX_BATCH}, got {settings.batch_size}.")
    seeds.draw_seeds(settings.seed_strategy, settings.batch_size, len(state.prompts), settings.start_seed,
                     settings.pool_size)
    generation.check_inputs(settings.params(), list(range(settings.batch_size)))  # before any loading
    if settings.candidates and not settings.batch_size < settings.candidates <= generation.MAX_BATCH:
        raise ValueError(f"candidates must be 0 (off) or in {settings.batch_size + 1}..{generation.MAX_BATCH}, "
                         f"got {settings.candidates}.")
    if settings.candidates and settings.prefilter not in prefilter.METHODS:
        raise ValueError(f"Unknown pre-filter {settings.prefilter!r}; choose one of {', '.join(prefilter.METHODS)}.")
    if settings.candidates and settings.prefilter == "clip" and not settings.use_clip:
        raise ValueError("Pre-filtering by CLIP needs CLIP scores: turn CLIP scoring on.")
    model = engine.load(settings.model)
    if settings.scheduler and settings.scheduler not in models.compatible_schedulers(model.pipe):
        raise ValueError(f"Scheduler {settings.scheduler!r} does not fit {model.spec.name}; "
                         f"choose one of {models.compatible_schedulers(model.pipe)}.")
    generation.check_inputs(settings.params(), list(range(settings.batch_size)), generation.size_multiple(model))
    if settings.candidates and settings.prefilter == "selector":
        engine.load_selector()
    clip_note = "CLIP off"
    if settings.use_clip:
        clip = engine.load_clip(model.spec.clip)
        clip_note = f"CLIP {clip.model_id}"
    engine.discard_prefetched(state.session_id)
    state.settings = settings
    clear_screen(state)
    state.reopened = None
    if store is not None:
        records = store.read().records
        state.status = history.prompt_status(records, state.annotator, model.spec.name)
        state.position = -1
        if assigner is not None:
            assigner.sync(records)
    revision = (model.revision or "revision unknown")[:20]
    return f"Loaded {model.spec.name} ({model.pipeline_class}, {model.dtype} on {model.device}, {revision}); {clip_note}."


def current_prompt(state: SessionState) -> Prompt | None:
    if state.reopened is not None:
        return state.reopened
    return state.prompts[state.position] if 0 <= state.position < len(state.prompts) else None


def _open(state: SessionState, position: int, assigner: Assigner | None, claim: bool) -> bool:
    text = state.prompts[position].text
    if text in state.status:
        return False
    if assigner is None:
        return True
    return assigner.claim(text, state.annotator) if claim else assigner.available(text, state.annotator)


def _next_open_position(state: SessionState, after: int, assigner: Assigner | None = None, claim: bool = False) -> int:
    position = after + 1
    while position < len(state.prompts) and not _open(state, position, assigner, claim):
        position += 1
    return position


def _upcoming_position(state: SessionState, assigner: Assigner | None = None, claim: bool = False) -> int:
    """Where the queue goes next: back to the open prompt a relabel interrupted, else onwards."""
    p = state.position
    if state.reopened is not None and 0 <= p < len(state.prompts) and state.prompts[p].text not in state.status:
        return p
    return _next_open_position(state, p, assigner, claim)


def advance(state: SessionState, assigner: Assigner | None = None) -> Prompt | None:
    """Move to the next prompt open to this annotator (and claim it); None once none is left."""
    left = current_prompt(state)
    if assigner is not None and left is not None and left.text not in state.status:
        assigner.release(left.text, state.annotator)
    state.position, state.reopened = _upcoming_position(state, assigner, claim=True), None
    clear_screen(state)
    return current_prompt(state)


def _batch_size(state: SessionState, mode: str) -> int:
    """Seeds to generate: 2 for a pair, else the candidates when pre-filtering, else the batch size."""
    if mode == PAIRWISE:
        return 2
    return max(state.settings.batch_size, state.settings.candidates)


def _prefetch_key(state: SessionState, prompt: Prompt, mode: str) -> tuple:
    s = state.settings
    return (prompt.text, mode, s.model, s.params(), s.batch_size, s.seed_strategy, s.start_seed, s.pool_size,
            s.use_clip, s.candidates, s.prefilter)


def _draw(state: SessionState, prompt: Prompt, mode: str, assigner: Assigner | None = None) -> list[int]:
    s = state.settings
    earlier = assigner.seeds_for(prompt.text) if assigner is not None and mode == "batch" else None
    if earlier and len(earlier) == s.batch_size and not s.candidates:
        return list(earlier)  # an overlap prompt: judge the seeds the other annotator judged
    return seeds.draw_seeds(s.seed_strategy, _batch_size(state, mode), prompt.index, s.start_seed, s.pool_size)


def generate_stream(engine: Engine, state: SessionState, mode: str = "batch",
                    assigner: Assigner | None = None) -> Iterator[Batch]:
    """Put the current prompt's batch on screen, yielding it as chunks are ready.

    A prefetched batch is shown at once; otherwise, where a batch would take long,
    it is generated in chunks (each seed's noise is the same either way). Then the
    next prompt's batch is prefetched.
    """
    if state.settings is None:
        raise ValueError("No model loaded for this session: choose settings and press Load first.")
    prompt = current_prompt(state) or advance(state, assigner)
    if prompt is None:
        raise ValueError("No prompt left for you: every prompt of this file has been answered or is taken.")
    s = state.settings
    batch = engine.take_prefetched(state.session_id, _prefetch_key(state, prompt, mode))
    if batch is None:
        batch_seeds = _draw(state, prompt, mode, assigner)
        # Candidates for pre-filtering are ranked only once all exist: no streaming then.
        filtering = mode != PAIRWISE and len(batch_seeds) > s.batch_size
        chunk = len(batch_seeds) if filtering else engine.stream_chunk_size(len(batch_seeds))
        for start in range(0, len(batch_seeds), chunk):
            part = engine.generate_batch(s.model, prompt.text, batch_seeds[start:start + chunk], s.params(), s.use_clip)
            batch = part if batch is None else batch.extended(part)
            if start + chunk < len(batch_seeds):
                yield batch
    if mode != PAIRWISE and len(batch.seeds) > s.batch_size:  # fresh or prefetched candidates
        batch = prefilter.choose(batch, s.batch_size, s.prefilter, engine.selector)
    state.batch, state.mode, state.shown_at = batch, mode, utc_now()
    prefetch_next(engine, state, mode, assigner)
    yield batch


def generate(engine: Engine, state: SessionState, mode: str = "batch", assigner: Assigner | None = None) -> Batch:
    """Put the current prompt's batch on screen and return it (see `generate_stream`)."""
    for batch in generate_stream(engine, state, mode, assigner):
        pass
    return batch


def prefetch_next(engine: Engine, state: SessionState, mode: str = "batch", assigner: Assigner | None = None) -> bool:
    """Start making the batch of the prompt after the current one; False if there is none."""
    position = _upcoming_position(state, assigner)
    if position >= len(state.prompts) or state.settings is None:
        return False
    prompt, s = state.prompts[position], state.settings
    engine.prefetch(state.session_id, _prefetch_key(state, prompt, mode), s.model, prompt.text,
                    _draw(state, prompt, mode, assigner), s.params(), s.use_clip)
    return True


def counts(state: SessionState) -> dict[str, int]:
    texts = [p.text for p in state.prompts]
    judged = sum(state.status.get(t) == "judged" for t in texts)
    skipped = sum(state.status.get(t) == "skipped" for t in texts)
    return {"total": len(texts), "judged": judged, "skipped": skipped, "remaining": len(texts) - judged - skipped}


def progress_text(state: SessionState) -> str:
    c = counts(state)
    where = "relabeling from history" if state.reopened else (
        f"prompt {min(state.position + 1, c['total'])} of {c['total']}")
    return (f"{where.capitalize()} · {c['judged']} judged · {c['skipped']} skipped · "
            f"{c['remaining']} remaining · {state.prompt_source}")
