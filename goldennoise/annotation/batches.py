"""A campaign's batches: one per prompt, made once (here, or ahead by `goldennoise generate`) and kept in the store.

Every annotator of an overlap prompt sees the same batch; a batch made ahead on GPU
machines is shown on a machine without one. The workers are handed out first come,
first served, one chunk at a time (chunks sized by free memory and a time slice),
foreground requests before prefetches. A waiting request takes over a prefetch that
has not started yet; whoever claims a prompt's future first fills it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from goldennoise.annotation.runtime import Runtime
from goldennoise.errors import CampaignError, GenerationError
from goldennoise.generation import batch as generation
from goldennoise.generation import noises, prefilter, seeds
from goldennoise.generation.batch import Batch
from goldennoise.generation.pipeline import GenerationParams
from goldennoise.ids import new_id
from goldennoise.store.prompts import Prompt
from goldennoise.store.records import RecordStore

log = logging.getLogger(__name__)
CACHE_BATCHES = 4096  # finished batches kept in memory (the rest are re-read from the store)
PREFETCH_DELAY_CPU = 0.3  # seconds a prefetch waits on a CPU (see Batches.prefetch_delay)


def to_data(batch: Batch) -> dict:
    return dataclasses.asdict(batch)


def from_data(data: dict, source: str = "pregenerated") -> Batch:
    return Batch(**{**data, "source": source})


class Batches:
    """The batches of one running campaign."""

    def __init__(self, runtime: Runtime, store: RecordStore, outputs: Path, prefetching: bool = True):
        self.runtime, self.store, self.outputs, self.prefetching = runtime, store, Path(outputs), prefetching
        self.cache: OrderedDict[str, Future] = OrderedDict()  # prompt id -> Future[Batch] (raw candidates)
        self._lock = threading.Lock()
        self._prefetcher = ThreadPoolExecutor(max_workers=2, thread_name_prefix="goldennoise-prefetch")
        self.generation_calls = 0  # device calls (tests assert that pre-generated batches need none)
        self.made: OrderedDict[str, tuple] = OrderedDict()  # batch id -> (prompt, batch, origin) made on request

    def draw_seeds(self, prompt: Prompt, whole: bool = False) -> list[int]:
        """The prompt's distinct seeds by the campaign's strategy (half a batch when each seed is shown twice, unless
        `whole`: a batch of distinct seeds, as an administrator's Workbench batch of a same-seed campaign)."""
        c = self.runtime.campaign
        count = max(c.batch_size, c.candidates) // (2 if self.twinned and not whole else 1)
        return seeds.draw_seeds(c.seed_strategy, count, prompt.index, c.start_seed, c.pool_size)

    @property
    def twinned(self) -> bool:
        """Each seed shown twice, from its draw and from the noise source (`[noise] pairing = "same_seed"`)."""
        return self.runtime.campaign.noise_pairing == "same_seed"

    def candidates(self, prompt: Prompt) -> list[int]:
        """The seeds of the prompt's batch, in order: the drawn seeds, each twice side by side when twinned."""
        drawn = self.draw_seeds(prompt)
        return noises.twins(drawn) if self.twinned else drawn

    def shown(self, prompt: Prompt, background: bool = False) -> Batch:
        """The prompt's batch as shown (pre-filtered when the campaign says so)."""
        raw = self._future(prompt, background).result()
        c = self.runtime.campaign
        if c.candidates and len(raw.seeds) > c.batch_size:
            return prefilter.choose(raw, c.batch_size, c.prefilter, self.runtime.selector, c.explore)
        return raw

    def ensure(self, prompt: Prompt) -> bool:
        """Make and store the prompt's batch unless the store has one; True if it was made here (`generate`)."""
        if self.store.has_batch(self.runtime.id, prompt.id):
            return False
        made = self._generate(prompt, self.candidates(prompt), self.runtime.params, background=False)
        self.store.put_batch(self.runtime.id, to_data(made))
        return True

    def prefetch(self, prompt: Prompt) -> None:
        """Have a prompt's batch ready in the background (read from the store, or made), unless it is on its way.
        Whether the store has it is asked there too, not here: this runs on the answer's reply path."""
        if self.prefetching and prompt.id not in self.cache:
            self._future(prompt, background=True)

    def explicit(self, prompt: Prompt, chosen: list[int], params: GenerationParams, origin: str,
                 twins: bool = False) -> Batch:
        """A batch of given seeds and parameters (an administrator's or a script's), made now, never stored as the
        prompt's batch (kept a while, so that other tabs of this process may be offered it). Its candidates start
        from their seeds' draws, or with `twins` (a same-seed campaign's pair) each seed twice, one from the source."""
        if twins:
            made = self._generate(prompt, noises.twins(chosen), params, background=False)
        else:
            made = self._generate(prompt, chosen, params, background=False, plain=True)
        with self._lock:
            self.made[made.batch_id] = (prompt, made, origin)
            while len(self.made) > CACHE_BATCHES:
                self.made.popitem(last=False)
        return made

    def _future(self, prompt: Prompt, background: bool) -> Future:
        with self._lock:
            future = self.cache.get(prompt.id)
            if future is not None and not (future.done() and future.exception() is not None):
                self.cache.move_to_end(prompt.id)
                if not background and future.gn_claim.acquire(blocking=False):
                    self._fill(prompt, future, False)
                return future
            future = Future()
            future.gn_claim = threading.Lock()
            self.cache[prompt.id] = future
            while len(self.cache) > CACHE_BATCHES:
                oldest, old = next(iter(self.cache.items()))
                if not old.done():
                    break
                del self.cache[oldest]
        if background:
            self._prefetcher.submit(self._claimed_fill, prompt, future, self.prefetch_delay())
        elif future.gn_claim.acquire(blocking=False):
            self._fill(prompt, future, False)
        return future

    def _claimed_fill(self, prompt: Prompt, future: Future, delay: float) -> None:
        if delay:
            time.sleep(delay)
        if future.gn_claim.acquire(blocking=False):  # not taken over by a request meanwhile
            self._fill(prompt, future, True)

    def prefetch_delay(self) -> float:
        """Seconds a prefetch waits before it starts: on a CPU it would compete for the cores with the reply just
        sent and the browser painting it, so it waits a moment (the annotator looks for longer anyway)."""
        workers = self.runtime.workers
        return PREFETCH_DELAY_CPU if workers and workers[0].model.device == "cpu" else 0.0

    def _fill(self, prompt: Prompt, future: Future, background: bool) -> None:
        try:
            stored = self.store.batch(self.runtime.id, prompt.id)  # made ahead, or earlier by this or another app
            if stored is None:
                if not self.runtime.workers:
                    raise CampaignError(f"prompt {prompt.index + 1} has no pre-generated batch and no model is "
                                        "loaded here.", "campaign")
                made = self._generate(prompt, self.candidates(prompt), self.runtime.params, background)
                self.store.put_batch(self.runtime.id, to_data(made))
                stored = self.store.batch(self.runtime.id, prompt.id)  # another replica may have stored one first
                batch = from_data(stored) if stored is not None else made
                if batch.batch_id == made.batch_id:
                    batch = replace(made, source="prefetched" if background else "live")
            else:
                batch = from_data(stored)
            future.set_result(batch)
        except BaseException as error:  # the waiting request shows it; a failed prefetch is retried in the foreground
            future.set_exception(error)

    def sources(self, prompt: Prompt, chosen: list[int]) -> list[dict | None]:
        """Per candidate: None (its seed's draw) or the campaign's noise source with its probability (`noises`)."""
        c = self.runtime.campaign
        source = noises.Source(c.noise_source, c.noise_share, c.noise_guidance_scale, c.noise_inversion_guidance_scale,
                               c.noise_checkpoint)
        return [None if p is None else {**source.to_dict(), "share": p}
                for p in noises.assign(source, chosen, prompt.index, c.noise_pairing)]

    def _generate(self, prompt: Prompt, chosen: list[int], params: GenerationParams, background: bool,
                  plain: bool = False) -> Batch:
        """Generate in chunks sized by the budget, each on whichever worker is free. `plain`: every candidate from
        its seed's draw (explicit seeds), whatever the campaign's noise source."""
        runtime, batch_id, made = self.runtime, new_id(), None
        if not runtime.workers:
            raise CampaignError("No model is loaded in this app (every batch was made ahead); nothing can be "
                                "generated here.", "campaign")
        remaining = list(chosen)
        sources = [None] * len(chosen) if plain else self.sources(prompt, chosen)
        while remaining:
            with runtime.pool.take(background) as worker:
                size = runtime.budget.chunk_size(len(remaining), params.height, params.width,
                                                 params.num_inference_steps)
                if self.twinned and not plain:  # a seed's two images in one chunk (their files are named apart)
                    size = max(2, size - size % 2)
                chunk, remaining = remaining[:size], remaining[size:]
                chunk_sources, sources = sources[:size], sources[size:]
                self.generation_calls += 1
                raw = generation.run_device(worker, prompt.text, chunk, params, chunk_sources)
            runtime.budget.observe(len(chunk), params.height, params.width, params.num_inference_steps, raw["seconds"])
            try:
                part = generation.finish(worker, raw, self.outputs, prompt.text, prompt.id, chunk, params, runtime.id,
                                         batch_id, runtime.id)
            except OSError as error:
                raise GenerationError(f"The images could not be saved ({error.strerror or 'I/O error'}: the outputs "
                                      "disk is full or read-only); nothing was recorded. Tell the administrator.",
                                      "outputs") from None
            made = part if made is None else made.extended(part)
        return made

    def close(self) -> None:
        self._prefetcher.shutdown(wait=True, cancel_futures=True)
