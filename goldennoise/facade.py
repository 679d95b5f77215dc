"""GoldenNoise from a script, without the app: load a model, generate, judge, read, export.

    from goldennoise.facade import Collector

    gn = Collector("outputs", model="tiny-flux", height=128, width=128)
    batch = gn.generate("a red fox in the snow", seeds=[1, 2, 3, 4])
    gn.judge(batch, golden=[2, 4], annotator="me")
    gn.judge(batch, golden=[2], annotator="me", relabel=True)   # replaces the answer; gn.undo(record) withdraws one
    gn.table()                       # pandas: one row per judged seed, live answers only
    gn.export("exports")             # the Hugging Face dataset (and, if asked, the other formats)

The same code as the app: `generation.batch.make_batch` (exact latents, CLIP
scores, PNGs under `outputs/images/`), the same record schema and store. What it
leaves out: campaigns (records carry `campaign=None` unless `campaign=` names
one), prompt assignment, minimum viewing time. Nothing runs in the background
unless `submit` is called (then one worker thread, closed by `close`).
"""

from __future__ import annotations

import itertools
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from goldennoise.annotation.answers import library_versions
from goldennoise.errors import UserError
from goldennoise.generation import models, scoring
from goldennoise.generation.batch import Batch, Worker, make_batch
from goldennoise.generation.pipeline import GenerationParams, check_params, check_seeds, size_multiple
from goldennoise.ids import new_id, utc_now
from goldennoise.research import dataset, export
from goldennoise.store import prompts, schema
from goldennoise.store.live import live, verdict
from goldennoise.store.prompts import Prompt
from goldennoise.store.records import RecordStore

GENERATION = ("num_inference_steps", "guidance_scale", "height", "width", "max_sequence_length", "scheduler")
_WORKER_INDEX = itertools.count(1000)  # apart from the app's workers (0, 1, ...) in the same process


class Collector:
    """One loaded model writing judgements to one outputs folder."""

    def __init__(self, outputs: str | Path, model: str = "tiny-flux", dtype: str = "auto", device: str | None = None,
                 revision: str | None = None, clip: bool = True, annotator: str = "script",
                 campaign: str | None = None, **generation):
        unknown = sorted(set(generation) - set(GENERATION))
        if unknown:
            raise UserError(f"{unknown[0]}: not a generation parameter; use {', '.join(GENERATION)}.", unknown[0])
        spec = models.resolve(model, revision)
        values = {name: generation.get(name, getattr(spec, name, None)) for name in GENERATION}
        self.params = GenerationParams(values["num_inference_steps"], float(values["guidance_scale"]),
                                       values["height"], values["width"], values["max_sequence_length"],
                                       values["scheduler"])
        loaded = models.load_model(model, device=device, dtype=dtype, revision=revision)
        check_params(self.params, size_multiple(loaded.pipe))
        scorer = scoring.load_clip(loaded.spec.clip, device=loaded.device) if clip else None
        self.worker = Worker(next(_WORKER_INDEX), loaded, scorer)
        self.outputs = Path(outputs)
        self.store = RecordStore(self.outputs)
        self.annotator = self._annotator(annotator)
        self.campaign = campaign
        self._executor: ThreadPoolExecutor | None = None

    @staticmethod
    def _annotator(name) -> str:
        if not isinstance(name, str) or not 1 <= len(name) <= 64:
            raise UserError(f"annotator: a name of 1..64 characters, got {str(name)[:40]!r}.", "annotator")
        return name

    def generate(self, prompt: str, seeds: list[int], prompt_id: str | None = None) -> Batch:
        """Images of `prompt` for each of `seeds` (saved, scored, with each noise's provenance)."""
        text = " ".join(str(prompt).split())
        if not text:
            raise UserError("prompt: empty; give the text to generate.", "prompt")
        return make_batch(self.worker, self.outputs, text, prompt_id or prompts.prompt_id(text),
                          check_seeds(list(seeds)), self.params, group="facade", campaign=self.campaign)

    def submit(self, prompt: str, seeds: list[int], prompt_id: str | None = None) -> Future:
        """`generate` on a background thread (started now, on first use); returns a Future of the Batch."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="goldennoise-facade")
        return self._executor.submit(self.generate, prompt, seeds, prompt_id)

    def _prompt(self, batch: Batch) -> Prompt:
        """The batch's prompt; its index is its place among this campaign's prompts, in order of first record."""
        seen = list(dict.fromkeys(r.prompt.id for r in self.store.read().records if r.campaign == self.campaign))
        index = seen.index(batch.prompt_id) if batch.prompt_id in seen else len(seen)
        return Prompt(batch.prompt, batch.prompt_id, index, "facade")

    def _own_answer(self, batch_id: str, annotator: str):
        """This annotator's judgement of the batch that counts now, or None."""
        mine = [r for r in live(self.store.read().records)
                if r.kind == "judgement" and r.annotator == annotator and r.batch_id == batch_id]
        return mine[-1] if mine else None

    def judge(self, batch: Batch, golden: list[int], annotator: str | None = None,
              visible_ms: int | None = None, relabel: bool = False) -> schema.Judgement:
        """Record which of the batch's seeds are golden (the rest are bad); returns the record written.

        One annotator's answer to a batch counts once: judging it again is refused unless `relabel=True`,
        which replaces (supersedes) the earlier answer."""
        chosen = {int(s) for s in golden}
        if chosen - set(batch.seeds):
            raise UserError(f"golden: {sorted(chosen - set(batch.seeds))} are not seeds of this batch.", "golden")
        scores = batch.clip_scores or [None] * len(batch.seeds)
        samples = [{"seed": s, "golden": s in chosen, "clip_score": c, "image_path": p, "noise": n}
                   for s, c, p, n in zip(batch.seeds, scores, batch.image_paths, batch.noise, strict=True)]
        annotator = self._annotator(self.annotator if annotator is None else annotator)
        earlier = self._own_answer(batch.batch_id, annotator)
        if earlier is not None and not relabel:
            raise UserError(f"batch {batch.batch_id}: {annotator} has already judged it (record {earlier.record_id}); "
                            "pass relabel=True to replace that answer, or undo(record) to withdraw it.", "relabel")
        record = schema.Judgement(
            record_id=new_id(), created_at=utc_now(), annotator=annotator,
            prompt=self._prompt(batch).ref(), campaign=self.campaign, session_id="facade",
            versions=dict(library_versions()), model=batch.model, parameters=batch.parameters,
            seeds=list(batch.seeds), samples=samples, seed_strategy={"name": "explicit"},
            clip_model=batch.clip_model, batch_id=batch.batch_id, shown_scores=None,
            timing={"generated_at": batch.created_at, "visible_ms": visible_ms, "source": "facade",
                    "generation_seconds": round(batch.generation_seconds, 4)},
            golden_seeds=[s for s in batch.seeds if s in chosen], bad_seeds=[s for s in batch.seeds if s not in chosen],
            verdict=verdict(sorted(chosen), batch.seeds), supersedes=earlier.record_id if earlier else None)
        self.store.append(record)
        return record

    def undo(self, record: schema.Judgement, annotator: str | None = None) -> schema.Retraction:
        """Withdraw one of your own answers (a retraction line; the answer stays in the file, no longer counted).
        Undoing a relabel brings back the answer it replaced, as Undo does in the app."""
        annotator = self._annotator(self.annotator if annotator is None else annotator)
        if record.annotator != annotator:
            raise UserError(f"record {record.record_id}: it is {record.annotator}'s answer; only its author can "
                            "withdraw it.", "record")
        if all(r.record_id != record.record_id for r in live(self.store.read().records)):
            raise UserError(f"record {record.record_id}: not a live answer (already withdrawn or replaced).", "record")
        retraction = schema.Retraction(record_id=new_id(), created_at=utc_now(), annotator=annotator,
                                       prompt=record.prompt, campaign=record.campaign, session_id="facade",
                                       versions=dict(library_versions()), retracts=record.record_id)
        self.store.append(retraction)
        return retraction

    def table(self):
        """The live judgements as a pandas DataFrame, one row per judged seed (`research.dataset.sample_table`)."""
        return dataset.sample_table(self.store.read().records)

    def export(self, dest: str | Path, formats=("hub",), campaign: str | None = None, pool: bool = False) -> dict:
        """Write exports (default: the Hugging Face dataset, `dest/hub`); see `research.export.export`."""
        return export.export(self.outputs, dest, formats, campaign=campaign, pool=pool)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def __enter__(self) -> "Collector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
