"""The process-wide part of the app: one campaign, its workers, its batches, the store.

Owns what every tab shares, and nothing a request may change:
- the active campaign (resolved, written to `<outputs>/campaigns/<id>/`) and its prompt list;
- one `Worker` per device (each GPU its own pipeline; else the CPU), loaded at
  start-up in the calling (main) thread, handed out first come first served, one
  chunk at a time, foreground requests before prefetches;
- the campaign's batches: one per prompt, taken from the batch store (made ahead
  by `goldennoise generate`, or earlier in this app) or generated once and stored,
  so two annotators of an overlap prompt see the same images;
- the record store and the prompt assigner.
Only an administrator's `switch` replaces the campaign: it loads the new one
beside the old (a failure leaves the old one running), waits for in-flight
device work, swaps, and bumps `epoch`, which every tab notices on its next request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from goldennoise.annotation.assignment import Assigner
from goldennoise.errors import CampaignError, GenerationError, UserError
from goldennoise.generation import batch as batches
from goldennoise.generation import budget as budgets
from goldennoise.generation import gpu, models, prefilter, scoring, seeds
from goldennoise.generation.batch import Batch, Worker
from goldennoise.generation.batchstore import BatchStore
from goldennoise.generation.pipeline import GenerationParams, check_params, size_multiple
from goldennoise.ids import new_id
from goldennoise.store import campaign as campaigns
from goldennoise.store.campaign import Campaign
from goldennoise.store.live import in_campaign
from goldennoise.store.prompts import Prompt
from goldennoise.store.records import RecordStore

log = logging.getLogger(__name__)
CACHE_BATCHES = 4096  # finished batches kept in memory (the rest are re-read from the batch store)
PREFETCH_DELAY_CPU = 0.3  # seconds a prefetch waits on a CPU (see Engine.prefetch_delay)


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


@dataclass
class Active:
    """One loaded campaign."""

    campaign: Campaign  # resolved: every generation value filled in
    prompts: list[Prompt]
    params: GenerationParams
    workers: list[Worker]
    pool: Pool
    assigner: Assigner
    store: BatchStore
    epoch: int
    budget: budgets.Budget
    selector: prefilter.SeedSelector | None = None
    warnings: list[str] = field(default_factory=list)
    cache: OrderedDict = field(default_factory=OrderedDict)  # prompt id -> Future[Batch] (raw candidates)
    cache_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def id(self) -> str:
        return self.campaign.id

    def prompt(self, prompt_id: str) -> Prompt:
        for p in self.prompts:
            if p.id == prompt_id:
                return p
        raise UserError(f"prompt_id: {prompt_id[:40]!r} is not in campaign {self.id}.", "prompt_id")


def devices() -> list[str]:
    """One device per worker: every visible CUDA GPU, else the CPU."""
    if torch.cuda.is_available() and not gpu.zero_gpu():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cuda" if torch.cuda.is_available() else "cpu"]


class Engine:
    def __init__(self, outputs: str | Path, compile_denoiser: bool = False, placement: str = "auto",
                 prefetch: bool | None = None, device_list: list[str] | None = None):
        self.outputs = Path(outputs)
        self.records = RecordStore(self.outputs)
        self.load_options = {"compile_denoiser": compile_denoiser, "placement": placement}
        self.device_list = device_list
        # ZeroGPU grants a GPU only inside a user's request: no speculative work there.
        self.prefetching = (not gpu.zero_gpu()) if prefetch is None else prefetch
        self._active: Active | None = None
        self._epoch = 0
        self._switch_lock = threading.Lock()
        self._prefetcher = ThreadPoolExecutor(max_workers=2, thread_name_prefix="goldennoise-prefetch")
        self.generation_calls = 0  # device calls made by this engine (tests assert pre-generated = none)

    # Campaign lifecycle ------------------------------------------------------------------------

    @property
    def active(self) -> Active:
        if self._active is None:
            raise CampaignError("No campaign is running: start the app with a campaign.", "campaign")
        return self._active

    @property
    def epoch(self) -> int:
        return self._epoch

    def start(self, campaign: Campaign, load: str = "auto", progress=None) -> Active:
        """Load `campaign` (main thread at start-up) and make it the active one."""
        with self._switch_lock:
            self._active = self._load(campaign, load, progress)
            return self._active

    def switch(self, campaign: Campaign, load: str = "auto", progress=None) -> Active:
        """Replace the campaign (an administrator's act); the old one keeps running if this fails."""
        with self._switch_lock:
            new = self._load(campaign, load, progress)
            old = self._active
            if old is not None:
                with old.pool.all():  # in-flight device work finishes; nothing new starts on the old workers
                    self._active = new
                for worker in old.workers:
                    gpu.uninstall(worker.index)
                models.free_memory()
            else:
                self._active = new
            return new

    def _load(self, campaign: Campaign, load: str, progress) -> Active:
        campaign.check()
        prompt_set = campaigns.load_prompt_set(campaign)
        spec = models.resolve(campaign.model, campaign.revision)
        resolved = campaign.resolved(spec, prompt_set)
        params = GenerationParams(resolved.num_inference_steps, float(resolved.guidance_scale), resolved.height,
                                  resolved.width, resolved.max_sequence_length, resolved.scheduler)
        folder = campaigns.write(self.outputs, resolved, prompt_set)
        store = BatchStore(folder)
        complete = store.count() >= len(prompt_set.prompts)
        workers, warnings = [], []
        if load == "always" or (load == "auto" and not complete):
            workers = self._load_workers(resolved, params, progress, warnings)
        elif not complete:
            raise CampaignError(f"campaign {resolved.id}: {store.count()} of {len(prompt_set.prompts)} batches are "
                                "pre-generated and no model is loaded; run `goldennoise generate` first.", "campaign")
        self._epoch += 1
        assigner = Assigner(overlap=resolved.overlap)
        assigner.sync(in_campaign(self.records.read().records, resolved.id))
        device = workers[0].model.device if workers else "cpu"
        # On ZeroGPU every call is a GPU slot of its own: chunks only where memory requires, never by time.
        budget = budgets.Budget(device, time_slice=None if gpu.zero_gpu() else budgets.Budget.time_slice)
        active = Active(resolved, list(prompt_set.prompts), params, workers, Pool(workers), assigner, store,
                        self._epoch, budget, warnings=warnings)
        if resolved.candidates and resolved.prefilter == "selector":
            active.selector = self._selector(resolved, active)
        log.info("campaign %s: %d prompts, %d worker(s), %d batches pre-generated", resolved.id,
                 len(active.prompts), len(workers), store.count())
        return active

    def _load_workers(self, campaign: Campaign, params: GenerationParams, progress, warnings: list) -> list[Worker]:
        workers = []
        base = max((w.index for w in self._active.workers), default=-1) + 1 if self._active else 0
        for offset, device in enumerate(self.device_list or devices()):
            if progress:
                progress(offset / max(1, len(self.device_list or devices())), f"Loading {campaign.model} on {device}…")
            model = models.load_model(campaign.model, device=device, dtype=campaign.dtype,
                                      revision=campaign.revision, show_progress=progress is not None,
                                      **self.load_options)
            warnings += model.warnings
            if params.scheduler and params.scheduler not in models.compatible_schedulers(model.pipe):
                raise CampaignError(f"campaign scheduler: {params.scheduler!r} does not fit {model.spec.name}; "
                                    f"choose one of {', '.join(models.compatible_schedulers(model.pipe))}.",
                                    "generation.scheduler")
            check_params(params, size_multiple(model.pipe))
            clip = scoring.load_clip(model.spec.clip, device=device) if campaign.clip else None
            workers.append(Worker(base + offset, model, clip))
        return workers

    def _selector(self, campaign: Campaign, active: Active) -> prefilter.SeedSelector:
        if not active.workers:
            raise CampaignError("campaign prefilter.method: 'selector' re-ranks candidates with a loaded model.",
                                "prefilter.method")
        return prefilter.recommended_selector(self.outputs, active.workers[0].model, active.params)

    # Batches -----------------------------------------------------------------------------------

    def draw_seeds(self, active: Active, prompt: Prompt) -> list[int]:
        c = active.campaign
        count = max(c.batch_size, c.candidates)
        return seeds.draw_seeds(c.seed_strategy, count, prompt.index, c.start_seed, c.pool_size)

    def batch(self, prompt: Prompt, active: Active | None = None, background: bool = False) -> Batch:
        """The prompt's batch as shown (pre-filtered when the campaign says so); generated once per campaign."""
        active = active or self.active
        raw = self._raw(active, prompt, background).result()
        if active.campaign.candidates and len(raw.seeds) > active.campaign.batch_size:
            c = active.campaign
            return prefilter.choose(raw, c.batch_size, c.prefilter, active.selector, c.explore)
        return raw

    def prefetch(self, prompt: Prompt, active: Active | None = None) -> None:
        """Start making a prompt's batch in the background, unless it exists or is on its way."""
        active = active or self.active
        if self.prefetching and not active.store.path(prompt.id).exists():  # a stored batch is read in a moment
            self._raw(active, prompt, background=True)

    def _raw(self, active: Active, prompt: Prompt, background: bool) -> Future:
        """The future of a prompt's batch. A waiting request takes over a prefetch that has not started yet
        (it would otherwise queue behind other prefetches); whoever claims a future first fills it."""
        with active.cache_lock:
            future = active.cache.get(prompt.id)
            if future is not None and not (future.done() and future.exception() is not None):
                active.cache.move_to_end(prompt.id)
                if not background and future.gn_claim.acquire(blocking=False):
                    self._fill(active, prompt, future, False)
                return future
            future = Future()
            future.gn_claim = threading.Lock()
            active.cache[prompt.id] = future
            while len(active.cache) > CACHE_BATCHES:
                oldest, old = next(iter(active.cache.items()))
                if not old.done():
                    break
                del active.cache[oldest]
        if background:
            self._prefetcher.submit(self._claimed_fill, active, prompt, future, self.prefetch_delay(active))
        elif future.gn_claim.acquire(blocking=False):
            self._fill(active, prompt, future, False)
        return future

    def _claimed_fill(self, active: Active, prompt: Prompt, future: Future, delay: float) -> None:
        if delay:
            time.sleep(delay)
        if future.gn_claim.acquire(blocking=False):  # not taken over by a request meanwhile
            self._fill(active, prompt, future, True)

    @staticmethod
    def prefetch_delay(active: Active) -> float:
        """Seconds a prefetch waits before it starts: on a CPU it would compete for the cores with the reply
        just sent and the browser painting it, so it waits a moment (the annotator looks for longer anyway)."""
        return PREFETCH_DELAY_CPU if active.workers and active.workers[0].model.device == "cpu" else 0.0

    def _fill(self, active: Active, prompt: Prompt, future: Future, background: bool) -> None:
        try:
            batch = active.store.get(prompt.id)  # made ahead, or by an earlier run of the app
            if batch is None:
                if not active.workers:
                    raise CampaignError(f"prompt {prompt.index + 1} has no pre-generated batch and no model is "
                                        "loaded here.", "campaign")
                made = self._generate(active, prompt, self.draw_seeds(active, prompt), background)
                active.store.put(made)
                batch = active.store.get(prompt.id) or made  # another process may have stored its batch first
                if batch.batch_id == made.batch_id:
                    batch = replace(made, source="prefetched" if background else "live")
            future.set_result(batch)
        except BaseException as error:  # the waiting request shows it; a failed prefetch is retried in the foreground
            future.set_exception(error)

    def _generate(self, active: Active, prompt: Prompt, chosen: list[int], background: bool) -> Batch:
        """Generate in chunks sized by the budget, each on whichever worker is free."""
        p, batch_id, made = active.params, new_id(), None
        remaining = list(chosen)
        while remaining:
            with active.pool.take(background) as worker:
                size = active.budget.chunk_size(len(remaining), p.height, p.width, p.num_inference_steps)
                chunk, remaining = remaining[:size], remaining[size:]
                self.generation_calls += 1
                raw = batches.run_device(worker, prompt.text, chunk, p)
            active.budget.observe(len(chunk), p.height, p.width, p.num_inference_steps, raw["seconds"])
            try:
                part = batches.finish(worker, raw, self.outputs, prompt.text, prompt.id, chunk, p, active.id,
                                      batch_id, active.id)
            except OSError as error:
                raise GenerationError(f"The images could not be saved ({error.strerror or 'I/O error'}: the outputs "
                                      "disk is full or read-only); nothing was recorded. Tell the administrator.",
                                      "outputs") from None
            made = part if made is None else made.extended(part)
        return made

    def close(self) -> None:
        self._prefetcher.shutdown(wait=True, cancel_futures=True)


__all__ = ["Engine", "Active", "Pool", "GenerationError"]
