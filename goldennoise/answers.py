"""Answers: a judgement, a pairwise preference or a skip becomes a record; undo and relabel.

Each answer is appended to the store and remembered on the session's undo stack
with what it changed, so `undo` can append a retraction and put the prompt, its
images and its ticks back on screen. `reopen` shows an old judgement's batch again
(rebuilt from its record); the next submit then `supersedes` it.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import asdict

from goldennoise import __version__, history
from goldennoise.assignment import Assigner
from goldennoise.engine import Batch
from goldennoise.prompts import Prompt
from goldennoise.records import Record, RecordStore, new_record_id, utc_now
from goldennoise.session import PAIRWISE, SessionState, UndoEntry, clear_screen, current_prompt

MAX_UNDO = 100
WINNERS = ("left", "right", "tie", "both_bad")


@functools.cache  # the versions cannot change within a process
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


def _base_record(state: SessionState, kind: str, prompt: Prompt, batch: Batch | None, golden: set[int]) -> Record:
    s = state.settings
    samples = []
    if batch is not None:
        scores = batch.clip_scores or [None] * len(batch.seeds)
        samples = [
            {"seed": seed, "golden": seed in golden, "clip_score": score, "image_path": path, "noise": block}
            for seed, score, path, block in zip(batch.seeds, scores, batch.image_paths, batch.noise, strict=True)
        ]
    return Record(
        record_id=new_record_id(),
        created_at=utc_now(),
        annotator=state.annotator,
        prompt=asdict(prompt),  # text, id, index, source, metadata
        model=batch.model if batch else {"name": s.model},
        parameters=batch.parameters if batch else s.params().to_dict(),
        seeds=list(batch.seeds) if batch else [],
        samples=samples,
        seed_strategy={"name": s.seed_strategy, "start_seed": s.start_seed, "batch_size": s.batch_size,
                       **({"pool_size": s.pool_size} if s.seed_strategy == "pool" else {})},
        clip_model=batch.clip_model if batch else None,
        timing={} if batch is None else {
            "generated_at": batch.created_at,
            "shown_at": state.shown_at,
            "prefetched": batch.prefetched,
            "generation_seconds": round(batch.generation_seconds, 4),
            "scoring_seconds": round(batch.scoring_seconds, 4),
            "saving_seconds": round(batch.saving_seconds, 4),
        },
        versions=dict(library_versions()),  # a copy: records must not share the cached dict
        session_id=state.session_id,
        kind=kind,
        supersedes=state.supersedes,
        prefilter=batch.prefilter if batch else None,
    )


def _on_screen(state: SessionState, mode: str) -> tuple[Prompt, Batch]:
    batch, prompt = state.batch, current_prompt(state)
    if batch is None or prompt is None:
        raise ValueError("Nothing to submit: generate a batch first.")
    if state.mode != mode:
        raise ValueError(f"The batch on screen was made for the {state.mode} view, not the {mode} view.")
    return prompt, batch


def _append(store: RecordStore, state: SessionState, record: Record, golden: list[int], status: str,
            assigner: Assigner | None) -> Record:
    prompt = current_prompt(state)
    store.append(record)
    if assigner is not None:
        assigner.answered(prompt.text, state.annotator, record.seeds if record.kind == "judgement" else None)
    state.undo_stack.append(UndoEntry(record.record_id, state.position, state.reopened, state.batch, golden,
                                      state.status.get(prompt.text), state.mode))
    del state.undo_stack[:-MAX_UNDO]
    state.status[prompt.text] = status
    clear_screen(state)
    return record


def build_record(state: SessionState, golden_seeds: list[int]) -> Record:
    """The record of judging the batch on screen with `golden_seeds` chosen."""
    prompt, batch = _on_screen(state, "batch")
    golden = [int(s) for s in golden_seeds]
    unknown = sorted(set(golden) - set(batch.seeds))
    if unknown:
        raise ValueError(f"Seeds {unknown} are not in the batch on screen ({batch.seeds}).")
    record = _base_record(state, "judgement", prompt, batch, set(golden))
    record.golden_seeds = [seed for seed in batch.seeds if seed in set(golden)]
    record.bad_seeds = [seed for seed in batch.seeds if seed not in set(golden)]
    record.verdict = history.verdict(record.golden_seeds, batch.seeds)
    return record


def submit(store: RecordStore, state: SessionState, golden_seeds: list[int], assigner: Assigner | None = None) -> Record:
    """Record the judgement of the batch on screen; unticked seeds are bad seeds."""
    record = build_record(state, golden_seeds)
    return _append(store, state, record, record.golden_seeds, "judged", assigner)


def submit_pair(store: RecordStore, state: SessionState, winner: str, assigner: Assigner | None = None) -> Record:
    """Record a pairwise preference between the two seeds on screen."""
    if winner not in WINNERS:
        raise ValueError(f"winner must be one of {', '.join(WINNERS)}, got {winner!r}.")
    prompt, batch = _on_screen(state, PAIRWISE)
    left, right = batch.seeds
    record = _base_record(state, "pairwise", prompt, batch, set())
    record.preference = {"left": left, "right": right, "winner": winner}
    return _append(store, state, record, [], "judged", assigner)


def skip(store: RecordStore, state: SessionState, assigner: Assigner | None = None) -> Record:
    """Record that the prompt on screen was passed over (not a judgement) and move on."""
    prompt = current_prompt(state)
    if prompt is None:
        raise ValueError("No prompt on screen to skip.")
    record = _base_record(state, "skip", prompt, state.batch, set())
    return _append(store, state, record, [], "skipped", assigner)


def undo(store: RecordStore, state: SessionState, assigner: Assigner | None = None) -> Record:
    """Retract this session's last answer and put its prompt and images back on screen.

    The prefetched batch of the following prompt is kept: it is still the one to show next.
    """
    if not state.undo_stack:
        raise ValueError("Nothing to undo in this session.")
    entry = state.undo_stack.pop()
    prompt = entry.reopened or state.prompts[entry.position]
    retraction = Record(record_id=new_record_id(), created_at=utc_now(), annotator=state.annotator,
                        prompt=asdict(prompt),
                        model={"name": state.settings.model} if state.settings else {},
                        session_id=state.session_id, kind="retraction", retracts=entry.record_id)
    store.append(retraction)
    if assigner is not None:
        assigner.retracted(prompt.text, state.annotator)
    if entry.previous_status is None:
        state.status.pop(prompt.text, None)
    else:
        state.status[prompt.text] = entry.previous_status
    state.position, state.reopened = entry.position, entry.reopened
    state.batch, state.mode, state.shown_at = entry.batch, entry.mode, utc_now() if entry.batch else None
    state.restored_golden, state.supersedes = entry.golden_seeds, None
    return retraction


def batch_from_record(record: Record) -> Batch:
    """The batch a judgement was made on, rebuilt from its record (images stay on disk)."""
    scores = [sample["clip_score"] for sample in record.samples]
    return Batch(
        prompt=record.prompt["text"], seeds=list(record.seeds),
        image_paths=[sample["image_path"] for sample in record.samples],
        clip_scores=None if any(score is None for score in scores) else scores,
        noise=[sample["noise"] for sample in record.samples], model=record.model, parameters=record.parameters,
        clip_model=record.clip_model, generation_seconds=record.timing.get("generation_seconds", 0.0),
        scoring_seconds=record.timing.get("scoring_seconds", 0.0), saving_seconds=record.timing.get("saving_seconds", 0.0),
        created_at=record.timing.get("generated_at", record.created_at), prefilter=record.prefilter,
    )


def reopen(state: SessionState, record: Record) -> None:
    """Show an earlier judgement's batch again; the next submit supersedes that record."""
    if record.kind != "judgement":
        raise ValueError("Only judgements can be relabeled.")
    if state.settings is None:
        raise ValueError("Load a model first: a relabel is recorded with the session's settings.")
    state.reopened = Prompt(**record.prompt)
    state.batch, state.mode, state.shown_at = batch_from_record(record), "batch", utc_now()
    state.restored_golden, state.supersedes = list(record.golden_seeds), record.record_id
