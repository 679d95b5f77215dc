"""Answers as records: a judgement, a pairwise preference, a skip or a retraction of what was on screen.

The one place records are made, for the browser, the API and the script API alike:
pure functions from a tab and its screen to a validated record (`store.schema`);
the annotation service decides when to write them. A record carries the batch it
was made on (its id, every seed's noise provenance, its verifiers' scores and
which weights made them, pre-filter slots and propensities), how long the batch was on screen, whether CLIP scores were visible
before the answer (and whether CLIP's pick is shown after answers), the guidelines'
hash, the tab's derived id, and the keys and clicks that made the choice.
"""

from __future__ import annotations

import functools
import platform

from goldennoise.generation.batch import Batch
from goldennoise.ids import new_id, utc_now
from goldennoise.store import schema
from goldennoise.store.live import verdict
from goldennoise.store.prompts import Prompt
from goldennoise.version import __version__

MAX_INTERACTION = 200


@functools.cache  # the versions cannot change within a process
def library_versions() -> dict:
    import diffusers
    import torch
    import transformers

    return {"goldennoise": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "python": platform.python_version()}


def _samples(batch: Batch, golden: set[int] | None) -> list[dict]:
    scores = batch.clip_scores or [None] * len(batch.seeds)
    slots = batch.slots or [{}] * len(batch.seeds)
    verifier_scores = [{name: values[i] for name, values in batch.scores.items()} or None
                       for i in range(len(batch.seeds))]
    return [{"seed": seed, "golden": None if golden is None else seed in golden, "clip_score": score,
             "image_path": path, "noise": block, **({"scores": more} if more else {}),
             **{k: v for k, v in slot.items() if k in schema.Sample.model_fields}}
            for seed, score, path, block, slot, more in zip(batch.seeds, scores, batch.image_paths, batch.noise, slots,
                                                           verifier_scores, strict=True)]


def _interaction(events) -> list[dict]:
    clean = []
    for event in list(events or [])[:MAX_INTERACTION]:
        if isinstance(event, dict):
            clean.append({str(k)[:16]: (v if isinstance(v, (int, float, bool)) else str(v)[:32])
                          for k, v in list(event.items())[:6]})
    return clean


def _common(campaign, tab, prompt: Prompt) -> dict:
    return {"record_id": new_id(), "created_at": utc_now(), "annotator": tab.annotator, "prompt": prompt.ref(),
            "campaign": campaign.id, "session_id": tab.session_id, "versions": dict(library_versions())}


def _shown(campaign, screen, elapsed_ms: int, visible_ms: int | None, interaction) -> dict:
    batch = screen.batch
    strategy = ({"name": "explicit"} if screen.origin == "explicit" else  # seeds given, not drawn
                {"name": campaign.seed_strategy, "start_seed": campaign.start_seed, "batch_size": campaign.batch_size,
                 **({"pool_size": campaign.pool_size} if campaign.seed_strategy == "pool" else {})})
    return {
        "model": batch.model, "parameters": batch.parameters, "seeds": list(batch.seeds), "seed_strategy": strategy,
        "clip_model": batch.clip_model, "verifiers": batch.verifier_models or None, "batch_id": batch.batch_id,
        "shown_scores": not campaign.blind,
        "view": screen.mode, "interaction": _interaction(interaction),
        "guidelines_sha256": campaign.guidelines_sha256,
        "feedback": "clip_pick" if campaign.show_clip_pick_after else None,
        "timing": {"generated_at": batch.created_at, "shown_at": screen.shown_at_iso, "elapsed_ms": elapsed_ms,
                   "visible_ms": visible_ms, "source": batch.source,
                   "generation_seconds": round(batch.generation_seconds, 4),
                   "scoring_seconds": round(batch.scoring_seconds, 4), "saving_seconds": round(batch.saving_seconds, 4)},
    }


def judgement(campaign, tab, screen, golden: list[int], elapsed_ms: int, visible_ms: int | None = None,
              interaction=None):
    batch = screen.batch
    chosen = {int(s) for s in golden}
    return schema.Judgement(
        **_common(campaign, tab, screen.prompt), **_shown(campaign, screen, elapsed_ms, visible_ms, interaction),
        samples=_samples(batch, chosen), golden_seeds=[s for s in batch.seeds if s in chosen],
        bad_seeds=[s for s in batch.seeds if s not in chosen], verdict=verdict(list(chosen), batch.seeds),
        supersedes=screen.supersedes, second_opinion_of=screen.second_opinion_of, prefilter=batch.prefilter)


def pairwise(campaign, tab, screen, winner: str, elapsed_ms: int, visible_ms: int | None = None, interaction=None):
    left, right = screen.batch.seeds
    return schema.Pairwise(
        **_common(campaign, tab, screen.prompt), **_shown(campaign, screen, elapsed_ms, visible_ms, interaction),
        samples=_samples(screen.batch, None), preference={"left": left, "right": right, "winner": winner})


def skip(campaign, tab, screen, elapsed_ms: int, interaction=None):
    return schema.Skip(**_common(campaign, tab, screen.prompt), **_shown(campaign, screen, elapsed_ms, None, interaction),
                       samples=_samples(screen.batch, None))


def retraction(campaign, tab, record):
    """The undo of `record` (one of the tab's own answers)."""
    prompt = Prompt(record.prompt.text, record.prompt.id, record.prompt.index, record.prompt.source)
    return schema.Retraction(**{**_common(campaign, tab, prompt), "prompt": record.prompt.model_dump(),
                                "campaign": record.campaign}, retracts=record.record_id)


def batch_from_record(record) -> Batch:
    """The batch a judgement was made on, rebuilt from its record (images stay on disk)."""
    scores = [s.clip_score for s in record.samples]
    return Batch(
        batch_id=record.batch_id or f"r{record.record_id}", prompt=record.prompt.text, prompt_id=record.prompt.id,
        seeds=list(record.seeds), image_paths=[s.image_path for s in record.samples],
        clip_scores=None if any(score is None for score in scores) else scores,
        noise=[s.noise.model_dump() if s.noise else None for s in record.samples],
        model=record.model.model_dump(), parameters=record.parameters.model_dump(), clip_model=record.clip_model,
        generation_seconds=float(record.timing.get("generation_seconds") or 0.0),
        scoring_seconds=float(record.timing.get("scoring_seconds") or 0.0),
        saving_seconds=float(record.timing.get("saving_seconds") or 0.0),
        created_at=record.timing.get("generated_at") or record.created_at, campaign=record.campaign,
        source="record", prefilter=record.prefilter.model_dump() if getattr(record, "prefilter", None) else None,
        slots=[{k: v for k, v in (("slot", s.slot), ("propensity", s.propensity), ("rank_score", s.rank_score))
                if v is not None} for s in record.samples] if any(s.slot for s in record.samples) else [],
        scores={name: [s.scores[name] for s in record.samples] for name in (record.verifiers or {})
                if all(s.scores and name in s.scores for s in record.samples)},
        verifier_models=dict(record.verifiers or {}))
