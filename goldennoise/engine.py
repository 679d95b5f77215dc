"""The process-wide part: one loaded pipeline, one CLIP scorer, one generation lock.

Only what must be shared lives here. A batch is generated, scored and saved to
disk under the lock, so two requests never run the pipeline at once. Prefetching
(the next prompt's batch made while the annotator judges the current one) runs on
one background worker thread and takes the same lock; each session has at most
one prefetch in flight, keyed by what it was made for, so a batch made for other
settings or an older model is never shown. What comes back is plain data (`Batch`).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from goldennoise import generation, images, models, scoring
from goldennoise.gpu import gpu_task
from goldennoise.generation import GenerationParams
from goldennoise.records import utc_now

STREAM_AFTER_SECONDS = 2.0  # batches expected to take longer are generated and shown in chunks
STREAM_CHUNK_SECONDS = 1.0  # aim for a chunk about this often


@dataclass
class Batch:
    """One generated batch: everything a record needs about how it was made."""

    prompt: str
    seeds: list[int]
    image_paths: list[str]  # relative to the outputs folder, in seed order
    clip_scores: list[float] | None
    noise: list[dict]
    model: dict
    parameters: dict
    clip_model: dict | None
    generation_seconds: float
    scoring_seconds: float
    saving_seconds: float
    created_at: str
    prefetched: bool = False
    prefilter: dict | None = None  # set when more candidates were made than shown (see prefilter.py)

    def extended(self, more: "Batch") -> "Batch":
        """This batch followed by `more` (a later chunk of the same prompt and settings)."""
        return replace(
            self,
            seeds=self.seeds + more.seeds,
            image_paths=self.image_paths + more.image_paths,
            clip_scores=None if self.clip_scores is None else self.clip_scores + (more.clip_scores or []),
            noise=self.noise + more.noise,
            generation_seconds=self.generation_seconds + more.generation_seconds,
            scoring_seconds=self.scoring_seconds + more.scoring_seconds,
            saving_seconds=self.saving_seconds + more.saving_seconds,
            created_at=more.created_at,
        )


class Engine:
    """Holds the loaded model, CLIP scorer and prefetch worker for the whole process."""

    def __init__(self, outputs: str | Path, compile_denoiser: bool = False, placement: str = "auto"):
        self.outputs = Path(outputs)
        self.load_options = {"compile_denoiser": compile_denoiser, "placement": placement}  # fast paths, per process
        self.model: models.LoadedModel | None = None
        self.clip: scoring.ClipScorer | None = None
        self.seconds_per_image: float | None = None  # running estimate, for stream chunking
        self._lock = threading.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="goldennoise-prefetch")
        self._prefetch_lock = threading.Lock()
        self._prefetch: dict[str, tuple[tuple, Future]] = {}  # session_id -> (key, future)
        self._model_epoch = 0  # bumped on every model load: older prefetches are stale
        self._generate = gpu_task(generation.generate)  # spaces.GPU on ZeroGPU, plain elsewhere
        self.selector = None  # a trained SeedSelector, loaded on demand for pre-filtering

    def load(self, name: str) -> models.LoadedModel:
        """Load model `name` unless it is already loaded; frees the previous one first."""
        spec = models.resolve(name)
        with self._lock:
            if self.model is not None and self.model.spec == spec:
                return self.model
            self.discard_all_prefetched()
            self._model_epoch += 1
            self.seconds_per_image = None
            # Free the old weights first: two large models rarely fit on one GPU together.
            had_model, self.model = self.model is not None, None
            models.free_memory()
            try:
                self.model = models.load_model(name, **self.load_options)
            except models.ModelLoadError as error:
                if had_model:
                    raise models.ModelLoadError(f"{error} No model is loaded now: load one to go on.") from error
                raise
            return self.model

    def load_selector(self):
        """The seed selector trained by the analysis on this outputs folder (or a ValueError saying how to get one)."""
        from goldennoise.selector import SELECTOR_FILE, SeedSelector

        path = self.outputs / "analysis" / SELECTOR_FILE
        if not path.is_file():
            raise ValueError(f"No seed selector at {path}: run python -m goldennoise.analysis {self.outputs} first.")
        self.selector = SeedSelector.load(path)
        return self.selector

    def load_clip(self, name: str) -> scoring.ClipScorer:
        with self._lock:
            if self.clip is None or self.clip.model_id != name:
                self.clip = None
                self.clip = scoring.load_clip(name)
            return self.clip

    def generate_batch(self, model_name: str, prompt: str, seeds: list[int], params: GenerationParams,
                       use_clip: bool) -> Batch:
        """Generate, score and save one batch; raises ValueError / GenerationError for the UI.

        Only device work holds the lock (the pipeline, and CLIP when it scores on the
        GPU); PNG encoding and CPU scoring run after it, beside the next generation.
        """
        with self._lock:
            model = self.model
            if model is None or model.spec != models.resolve(model_name):
                raise generation.GenerationError(
                    f"Model {model_name!r} is not loaded (loaded: {model.spec.name if model else 'none'}); press Load in Settings."
                )
            tensors, generation_seconds = self._generate(model, prompt, seeds, params)
            per_image = generation_seconds / len(seeds)
            self.seconds_per_image = per_image if self.seconds_per_image is None else (
                0.7 * self.seconds_per_image + 0.3 * per_image)
            clip = self.clip if use_clip else None
            start = time.perf_counter()
            scores = None
            if clip is not None and clip.device == "cuda" and tensors.is_cuda:
                scores = scoring.clip_scores(clip, tensors, prompt)  # on the GPU, no PIL round-trip
            scoring_seconds = time.perf_counter() - start
            noise_blocks = generation.noise_blocks(model, seeds, params)
            tensors = tensors.cpu()
        start = time.perf_counter()
        pil_images = generation.to_pil(tensors)
        if clip is not None and scores is None:
            scores = scoring.clip_scores(clip, pil_images, prompt)  # on CPU the PIL path matches torchmetrics
        scoring_seconds += time.perf_counter() - start
        start = time.perf_counter()
        settings = {"model": model.model_id, "revision": model.revision, **params.to_dict()}
        paths = images.save_batch(self.outputs, prompt, seeds, pil_images, settings)
        saving_seconds = time.perf_counter() - start
        return Batch(
            prompt=prompt,
            seeds=list(seeds),
            image_paths=paths,
            clip_scores=scores,
            noise=noise_blocks,
            model=model.info(),
            parameters={**params.to_dict(), "runtime": model.runtime},
            clip_model=clip.info() if scores is not None else None,
            generation_seconds=generation_seconds,
            scoring_seconds=scoring_seconds,
            saving_seconds=saving_seconds,
            created_at=utc_now(),
        )

    def stream_chunk_size(self, batch_size: int) -> int:
        """How many seeds to generate per call so that images appear as they are ready."""
        if self.seconds_per_image is None or self.seconds_per_image * batch_size <= STREAM_AFTER_SECONDS:
            return batch_size
        return max(1, min(batch_size, int(STREAM_CHUNK_SECONDS / self.seconds_per_image)))

    # Prefetch: at most one batch in flight per session, made on the single worker thread.

    def prefetch(self, session_id: str, key: tuple, model_name: str, prompt: str, seeds: list[int],
                 params: GenerationParams, use_clip: bool) -> None:
        """Start making a batch in the background; it replaces this session's earlier prefetch."""
        with self._prefetch_lock:
            old = self._prefetch.pop(session_id, None)
            if old:
                old[1].cancel()
            future = self._worker.submit(self.generate_batch, model_name, prompt, seeds, params, use_clip)
            self._prefetch[session_id] = ((self._model_epoch, *key), future)

    def take_prefetched(self, session_id: str, key: tuple) -> Batch | None:
        """The batch prefetched for exactly `key`, waiting for it if still running; else None."""
        with self._prefetch_lock:
            entry = self._prefetch.pop(session_id, None)
        if entry is None:
            return None
        made_for, future = entry
        if made_for != (self._model_epoch, *key):
            future.cancel()
            return None
        try:
            return replace(future.result(), prefetched=True)
        except Exception:  # a failed prefetch is retried in the foreground, where the error is shown
            return None

    def discard_prefetched(self, session_id: str) -> None:
        with self._prefetch_lock:
            entry = self._prefetch.pop(session_id, None)
        if entry:
            entry[1].cancel()

    def close(self) -> None:
        """Cancel queued prefetches and wait for the one running, if any."""
        self.discard_all_prefetched()
        self._worker.shutdown(wait=True, cancel_futures=True)

    def discard_all_prefetched(self) -> None:
        with self._prefetch_lock:
            entries, self._prefetch = list(self._prefetch.values()), {}
        for _, future in entries:
            future.cancel()
