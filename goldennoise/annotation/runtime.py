"""A campaign as a running model: `runtime_for(campaign)` is the one place where that happens.

The app at start-up, an administrator's switch (Settings, `/init_model`,
`/switch_campaign`), `goldennoise generate` and the script API (`Collector`) all call
it. It checks the campaign, reads its prompt list (or finds it already registered in
the store for the same file content), resolves the model's defaults, registers the
campaign and its queue in the store, loads one worker per device (pipeline and CLIP)
unless every batch is already made, checks the parameters against the loaded
pipeline, and loads the seed selector a selector pre-filter needs. What comes back
belongs together and is never rebuilt by hand elsewhere.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict, deque
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from goldennoise.errors import CampaignError
from goldennoise.generation import budget as budgets
from goldennoise.generation import batch as generation
from goldennoise.generation import gpu, models, scoring, verifiers
from goldennoise.generation.batch import Worker
from goldennoise.generation.pipeline import GenerationParams, check_params, size_multiple
from goldennoise.generation.prefilter import SeedSelector
from goldennoise.store import campaign as campaigns
from goldennoise.store.campaign import Campaign, verifier_of
from goldennoise.store.configuration import configuration, configuration_id, selector_path
from goldennoise.store.database import prompts as table
from goldennoise.store.prompts import Prompt, PromptSet
from goldennoise.store.records import RecordStore, definition_key, file_sha256

log = logging.getLogger(__name__)


class Pool:
    """Workers handed out one at a time, in arrival order, foreground before background."""

    def __init__(self, workers: list[Worker]):
        self.free = list(workers)
        self.size = len(workers)
        self._cond = threading.Condition()
        self._waiting = (deque(), deque())  # foreground, background tickets

    @contextmanager
    def take(self, background: bool = False):
        ticket = object()
        queue = self._waiting[background]
        with self._cond:
            queue.append(ticket)
            while not (self.free and queue[0] is ticket and (not background or not self._waiting[0])):
                self._cond.wait()
            queue.popleft()
            worker = self.free.pop()
            self._cond.notify_all()
        try:
            yield worker
        finally:
            with self._cond:
                self.free.append(worker)
                self._cond.notify_all()

    @contextmanager
    def all(self):
        """Every worker at once: in-flight device work has finished and no new work starts."""
        taken = []
        try:
            for _ in range(self.size):
                cm = self.take()
                taken.append((cm, cm.__enter__()))
            yield
        finally:
            for cm, _ in reversed(taken):
                cm.__exit__(None, None, None)


class Prompts:
    """A campaign's prompt list, read from the store by place or id (a million prompts are not held in memory)."""

    CACHED = 4096  # prompts kept after a lookup (a row never changes once written: its place and text are fixed)

    def __init__(self, store: RecordStore, campaign_id: str, source: str):
        self.store, self.campaign_id, self.source = store, campaign_id, source
        self.count = store.listed_count(campaign_id)  # the list's own prompts (not those made on request)
        self._cache: OrderedDict[tuple, Prompt] = OrderedDict()
        self._lock = threading.Lock()

    def _make(self, row) -> Prompt:
        return Prompt(row.text, row.prompt_id, row.idx, row.source)

    BLOCK = 64  # prompts read together on a miss by place: the queue hands them out in list order

    def _lookup(self, key: tuple, where) -> Prompt | None:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        rows = self.store.prompt_rows(self.campaign_id, where)
        found = None
        with self._lock:
            for row in rows:
                prompt = self._make(row)
                self._cache[("idx", prompt.index)] = self._cache[("id", prompt.id)] = prompt
                if key in (("idx", prompt.index), ("id", prompt.id)):
                    found = prompt
            while len(self._cache) > 2 * self.CACHED:
                self._cache.popitem(last=False)
        return found

    def at(self, index: int) -> Prompt:
        prompt = self._lookup(("idx", index), table.c.idx.between(index, index + self.BLOCK - 1))
        if prompt is None:
            raise CampaignError(f"prompt {index}: not in campaign {self.campaign_id}.", "prompt")
        return prompt

    def by_id(self, prompt_id: str) -> Prompt | None:
        return self._lookup(("id", prompt_id), table.c.prompt_id == prompt_id)

    def __len__(self) -> int:
        return self.count


@dataclass
class Runtime:
    """One campaign, running: resolved campaign, prompts, parameters, workers, budget, selector."""

    campaign: Campaign  # resolved: every generation value filled in
    prompts: Prompts
    params: GenerationParams
    workers: list[Worker]
    pool: Pool
    budget: budgets.Budget
    selector: SeedSelector | None = None
    warnings: list[str] = field(default_factory=list)
    folder: Path | None = None

    @property
    def id(self) -> str:
        return self.campaign.id

    def close(self) -> None:
        """Take the workers out of `gpu.run`'s table and let their memory go (after the last batch)."""
        for worker in self.workers:
            worker.uninstall()
        self.workers = []
        models.free_memory()


def devices() -> list[str]:
    """One device per worker: every visible CUDA GPU, else the CPU."""
    if torch.cuda.is_available() and not gpu.zero_gpu():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cuda" if torch.cuda.is_available() else "cpu"]


def params_of(campaign: Campaign) -> GenerationParams:
    """The generation parameters of a resolved campaign."""
    return GenerationParams(campaign.num_inference_steps, float(campaign.guidance_scale), campaign.height,
                            campaign.width, campaign.max_sequence_length, campaign.scheduler)


def resolve(campaign: Campaign, store: RecordStore, outputs: Path, prompt_set: PromptSet | None = None
            ) -> tuple[Campaign, Prompts]:
    """The campaign resolved and registered in the store with its prompts (read from the file only when the store
    does not know this file's content for this definition yet). `prompt_set` replaces the file (the script API)."""
    campaign.check()
    spec = models.resolve(campaign.model, campaign.revision)
    defaults = {name: getattr(spec, name) for name in campaigns.GENERATION[:-1] if getattr(campaign, name) is None}
    source = None
    if prompt_set is None:
        if not Path(campaign.prompts).is_file():
            raise CampaignError(f"campaign prompts.file: {Path(campaign.prompts).name!r} does not exist.",
                                "prompts.file")
        source = file_sha256(campaign.prompts)
        known = store.campaign_for_source(definition_key(asdict(replace(campaign, **defaults))), source)
        if known is not None:
            definition = store.definition(known)
            resolved = replace(campaign, **defaults, prompts_sha256=definition["prompts_sha256"]).check()
            if resolved.id == known:
                campaigns.write(outputs, resolved, None)
                return resolved, Prompts(store, resolved.id, Path(campaign.prompts).name)
        prompt_set = campaigns.load_prompt_set(campaign)
    models.check_prompts(spec, [p.text for p in prompt_set.prompts])
    resolved = campaign.resolved(spec, campaigns.prompts_sha256(prompt_set), len(prompt_set.prompts))
    folder = campaigns.write(outputs, resolved, prompt_set)
    rows = [{"idx": p.index, "prompt_id": p.id, "text": p.text, "source": p.source,
             "metadata_sha256": p.metadata_sha256} for p in prompt_set.prompts]
    store.register_campaign(resolved.id, {"id": resolved.id, **resolved.definition()}, rows, source)
    _import_batch_files(store, resolved.id, folder)
    return resolved, Prompts(store, resolved.id, prompt_set.source)


def _import_batch_files(store: RecordStore, campaign_id: str, folder: Path) -> None:
    """Batches 0.2 kept as files under the campaign's folder go into the store (once: the first stored stays)."""
    import json

    files = sorted((folder / "batches").glob("*.json")) if (folder / "batches").is_dir() else []
    if files and store.batch_count(campaign_id) < len(files):
        for path in files:
            try:
                store.put_batch(campaign_id, json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError):
                log.warning("batch file %s unreadable: skipped", path.name)


def runtime_for(campaign: Campaign, store: RecordStore, outputs: str | Path, load: str = "auto",
                device_list: list[str] | None = None, load_options: dict | None = None, progress=None,
                prompt_set: PromptSet | None = None, max_batch_seconds: float | None = None) -> Runtime:
    """The running form of `campaign`: checked, resolved, registered, loaded. Raises UserError naming the field.

    `load`: "auto" (a model only when some batch is not made yet), "always" or "never"."""
    outputs = Path(outputs)
    resolved, prompts = resolve(campaign, store, outputs, prompt_set)
    params = params_of(resolved)
    complete = prompts.count > 0 and store.batch_count(resolved.id) >= prompts.count
    workers, warnings = [], []
    if load == "always" or (load == "auto" and not complete):
        workers = load_workers(resolved, params, device_list, load_options or {}, progress, warnings)
    elif not complete and load == "never":
        raise CampaignError(f"campaign {resolved.id}: {store.batch_count(resolved.id)} of {prompts.count} batches "
                            "are pre-generated and no model is loaded; run `goldennoise generate` first.", "campaign")
    if workers and resolved.noise_source == "redenoise":
        from goldennoise.generation import redenoise  # lazy: only campaigns with a noise source

        name = type(workers[0].model.pipe).__name__
        if name in redenoise.REFUSED:
            raise CampaignError(f"campaign noise.source: redenoise does not handle {redenoise.REFUSED[name]} yet "
                                f"({name}); use noise.source = \"seed\" with this model.", "noise.source")
    if workers and resolved.noise_source == "model":
        from goldennoise.generation import noise_model  # lazy: only campaigns with a noise model

        _, info = noise_model.load(resolved.noise_checkpoint)
        name = type(workers[0].model.pipe).__name__
        if info["pipeline_class"] != name:
            raise CampaignError(f"campaign noise.checkpoint: trained for a {info['pipeline_class']}, this campaign's "
                                f"model is a {name}.", "noise.checkpoint")
    placeholder = models.placeholder_warning(models.resolve(resolved.model, resolved.revision))
    if placeholder:
        warnings.insert(0, placeholder)
    device = workers[0].model.device if workers else "cpu"
    # On ZeroGPU every call is a GPU slot of its own: chunks only where memory requires, never by time.
    budget = budgets.Budget(device, time_slice=None if gpu.zero_gpu() else budgets.Budget.time_slice)
    runtime = Runtime(resolved, prompts, params, workers, Pool(workers), budget, warnings=warnings,
                      folder=campaigns.folder(outputs, resolved.id))
    if resolved.candidates and resolved.prefilter == "selector":
        runtime.selector = recommended_selector(outputs, runtime)
    if workers and max_batch_seconds:
        calibrate(runtime, max_batch_seconds)
    log.info("campaign %s: %d prompts, %d worker(s), %d batches made", resolved.id, prompts.count, len(workers),
             store.batch_count(resolved.id))
    return runtime


CALIBRATE_ABOVE = 16.0  # megapixel-steps of a prompt's batch above which its time is measured at load


def calibrate(runtime: Runtime, limit: float) -> None:
    """For a heavy campaign, time one image at one step of its size, then refuse it at load if a batch would take
    over `limit` seconds (rather than let the first annotator wait minutes)."""
    c, p = runtime.campaign, runtime.params
    count = max(c.batch_size, c.candidates)
    if count * p.height * p.width / 1e6 * p.num_inference_steps <= CALIBRATE_ABOVE:
        return
    with runtime.pool.take() as worker:
        probe = generation.run_device(worker, "calibration", [0], replace(p, num_inference_steps=1))
    runtime.budget.observe(1, p.height, p.width, 1, probe["seconds"])
    runtime.budget.check(count, p.height, p.width, p.num_inference_steps, limit, "campaign seeds.batch_size")


def load_workers(campaign: Campaign, params: GenerationParams, device_list, load_options: dict, progress,
                 warnings: list) -> list[Worker]:
    workers, run = [], uuid.uuid4().hex[:8]
    targets = device_list or devices()
    try:
        for offset, device in enumerate(targets):
            if progress:
                progress(offset / max(1, len(targets)), f"Loading {campaign.model} on {device}…")
            model = models.load_model(campaign.model, device=device, dtype=campaign.dtype, revision=campaign.revision,
                                      show_progress=progress is not None, **load_options)
            warnings += model.warnings
            if params.scheduler and params.scheduler not in models.compatible_schedulers(model.pipe):
                raise CampaignError(f"campaign generation.scheduler: {params.scheduler!r} does not fit "
                                    f"{model.spec.name}; choose one of "
                                    f"{', '.join(models.compatible_schedulers(model.pipe))}.", "generation.scheduler")
            check_params(params, size_multiple(model.pipe))
            clip = scoring.load_clip(model.spec.clip, device=device) if campaign.clip else None
            if progress and campaign.verifiers:
                progress(offset / max(1, len(targets)), f"Loading {', '.join(campaign.verifiers)} on {device}…")
            # A verifier without its weights stops the start (ModelLoadError says which files and what fixes it).
            scorers = {verifier_of(name): verifiers.load(name, device=device, source=campaign.learned_checkpoint
                                                         if name == "learned" else None)
                       for name in campaign.verifiers}
            workers.append(Worker(f"{run}-{offset}", model, clip, scorers).install())
    except BaseException:
        for worker in workers:
            worker.uninstall()
        raise
    return workers


def recommended_selector(outputs: Path, runtime: Runtime) -> SeedSelector:
    """The seed selector saved for this model and these generation parameters, if the analysis recommended it;
    else CampaignError (the app at start and `goldennoise generate` before making any batch)."""
    if not runtime.workers:
        raise CampaignError("campaign prefilter.method: 'selector' re-ranks candidates with a loaded model.",
                            "prefilter.method")
    config = configuration_id(configuration(runtime.workers[0].model.info(), runtime.params.to_dict()))
    path = selector_path(outputs, config)
    if not path.is_file():
        raise CampaignError("campaign prefilter.method: 'selector' needs a seed selector trained on this model and "
                            "these parameters; run `goldennoise analyze` on this outputs folder first, or pre-filter "
                            "by clip.", "prefilter.method")
    selector = SeedSelector.load(path)
    if not selector.recommended:
        raise CampaignError("campaign prefilter.method: the seed selector trained on this configuration was not "
                            "significantly above chance on unseen seeds or within prompts (see the analysis "
                            "report); pre-filter by clip until it is.", "prefilter.method")
    return selector
