"""GoldenNoise from a script, without the app: load a model, generate, judge, read, export.

    from goldennoise.facade import Collector

    gn = Collector("outputs", model="tiny-flux", height=128, width=128)
    batch = gn.generate("a red fox in the snow", seeds=[1, 2, 3, 4])   # seeds=None: the campaign's seed strategy
    gn.judge(batch, golden=[2, 4], annotator="me")   # verifiers=("pickscore",) scores every image too
    gn.judge(batch, golden=[2], annotator="me", relabel=True)   # replaces the answer; gn.undo(record) withdraws one
    gn.table()                       # pandas: one row per judged seed, live answers only
    gn.export("exports")             # the Hugging Face dataset (and, if asked, the other formats)

An adapter over the same annotation service as the app: the keyword arguments make a
campaign (`campaign=` names it; its prompts are the ones you generate), `runtime_for`
turns it into a running model, and every record is made by the same code as the
app's, so a judgement written here has the same form as one made in the Workbench.
What it leaves out: prompt assignment and the minimum viewing time (0 here). Nothing
runs in the background unless `submit` is called (then one worker thread, closed by
`close`).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from goldennoise.annotation.access import Access
from goldennoise.annotation.service import Caller, Service
from goldennoise.errors import UserError
from goldennoise.generation.batch import Batch
from goldennoise.research import dataset, export
from goldennoise.store import schema
from goldennoise.store.campaign import GENERATION, Campaign
from goldennoise.store.names import MAX_NAME, display, identity
from goldennoise.store.prompts import PromptSet


class Collector:
    """One loaded model writing judgements of one campaign to one outputs folder (or store)."""

    def __init__(self, outputs: str | Path, model: str = "tiny-flux", dtype: str = "auto", device: str | None = None,
                 revision: str | None = None, clip: bool = True, annotator: str = "script",
                 campaign: str | None = None, store: str | None = None, seed_strategy: str = "random",
                 start_seed: int = 0, pool_size: int = 64, batch_size: int = 4, verifiers: tuple[str, ...] = (),
                 **generation):
        unknown = sorted(set(generation) - set(GENERATION))
        if unknown:
            raise UserError(f"{unknown[0]}: not a generation parameter; use {', '.join(GENERATION)}.", unknown[0])
        self.outputs = Path(outputs)
        self.annotator = self._annotator(annotator)
        self.service = Service(self.outputs, store, Access(local_only=True), device_list=[device] if device else None,
                               prefetch=False)
        definition = Campaign(name=campaign or "script", model=model, revision=revision, dtype=dtype, clip=clip,
                              prompts="(prompts given in the script)", min_view_ms=0, seed_strategy=seed_strategy,
                              start_seed=start_seed, pool_size=pool_size, batch_size=batch_size,
                              verifiers=tuple(verifiers), **generation)
        self.service.start(definition, load="always", prompt_set=PromptSet([], "script"))
        self.campaign = self.service.campaign.id
        self.params = self.service.runtime.params
        self._callers: dict[str, Caller] = {}
        self._executor: ThreadPoolExecutor | None = None

    @staticmethod
    def _annotator(name) -> str:
        if not isinstance(name, str) or not 1 <= len(display(name)) <= MAX_NAME:
            raise UserError(f"annotator: a name of 1..{MAX_NAME} characters, got {str(name)[:40]!r}.", "annotator")
        return display(name)

    def _caller(self, annotator: str | None) -> Caller:
        """The script's tab for one annotator (each annotator judges in a tab of their own)."""
        name = self._annotator(self.annotator if annotator is None else annotator)
        key = identity(name)
        if key not in self._callers:
            caller = Caller(f"script-{len(self._callers)}")
            self.service.join(caller, name, present=False)
            self._callers[key] = caller
        return self._callers[key]

    @property
    def store(self):
        return self.service.store

    def generate(self, prompt: str, seeds: list[int] | None = None, prompt_id: str | None = None) -> Batch:
        """Images of `prompt` for each of `seeds` (default: the campaign's seed strategy), saved, scored, with each
        noise's provenance."""
        return self.service.make_batch(self._caller(None), prompt, seeds, prompt_id=prompt_id).batch

    def submit(self, prompt: str, seeds: list[int] | None = None, prompt_id: str | None = None) -> Future:
        """`generate` on a background thread (started now, on first use); returns a Future of the Batch."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="goldennoise-facade")
        return self._executor.submit(self.generate, prompt, seeds, prompt_id)

    def judge(self, batch: Batch, golden: list[int], annotator: str | None = None,
              visible_ms: int | None = None, relabel: bool = False) -> schema.Judgement:
        """Record which of the batch's seeds are golden (the rest are bad); returns the record written.

        One annotator's answer to a batch counts once: judging it again is refused unless `relabel=True`,
        which replaces (supersedes) the earlier answer."""
        caller = self._caller(annotator)
        name = self.service.annotator_of(caller)
        chosen = [int(s) for s in golden] if isinstance(golden, (list, tuple)) else golden
        if isinstance(chosen, list) and set(chosen) - set(batch.seeds):
            raise UserError(f"golden: {sorted(set(chosen) - set(batch.seeds))} are not seeds of this batch.", "golden")
        earlier = self.service.store.live_judgements(self.campaign, name, batch.batch_id)
        if earlier and not relabel:
            raise UserError(f"batch {batch.batch_id}: {name} has already judged it (record {earlier[-1].record_id}); "
                            "pass relabel=True to replace that answer, or undo(record) to withdraw it.", "relabel")
        if earlier:
            screen = self.service.relabel(caller, earlier[-1].record_id)
        else:
            screen = self.service.offer(caller, batch.batch_id)
        return self.service.answer(caller, "batch", screen.batch.batch_id, golden=chosen,
                                   visible_ms=visible_ms).record

    def undo(self, record, annotator: str | None = None) -> schema.Retraction:
        """Withdraw one of your own answers (a retraction; the answer stays in the store, no longer counted).
        Undoing a relabel brings back the answer it replaced, as Undo does in the app."""
        return self.service.withdraw(self._caller(annotator), record.record_id)

    def table(self):
        """The live judgements as a pandas DataFrame, one row per judged seed (`research.dataset.sample_table`)."""
        return dataset.sample_table(self.service.store.live(self.campaign))

    def export(self, dest: str | Path, formats=("hub",), pool: bool = False) -> dict:
        """Write exports of this campaign (default: the Hugging Face dataset, `dest/hub`); see `research.export`."""
        return export.export(self.outputs, dest, formats, campaign=self.campaign, pool=pool,
                             store=self.service.store)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def __enter__(self) -> "Collector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        self.service.close_all()
