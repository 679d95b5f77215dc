"""The process-wide part: one loaded pipeline, one CLIP scorer, one generation lock.

Only what must be shared lives here. A batch is generated, scored and saved to
disk under the lock, so two annotators never run the same pipeline at once; what
comes back is plain data (`Batch`) that a session keeps.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from goldennoise import generation, images, models, scoring
from goldennoise.generation import GenerationParams
from goldennoise.records import utc_now


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


class Engine:
    """Holds the loaded model and CLIP scorer for the whole process."""

    def __init__(self, outputs: str | Path):
        self.outputs = Path(outputs)
        self.model: models.LoadedModel | None = None
        self.clip: scoring.ClipScorer | None = None
        self._lock = threading.Lock()

    def load(self, name: str) -> models.LoadedModel:
        """Load model `name` unless it is already loaded; frees the previous one first."""
        spec = models.resolve(name)
        with self._lock:
            if self.model is not None and self.model.spec == spec:
                return self.model
            # Free the old weights first: two large models rarely fit on one GPU together.
            had_model, self.model = self.model is not None, None
            models.free_memory()
            try:
                self.model = models.load_model(name)
            except models.ModelLoadError as error:
                if had_model:
                    raise models.ModelLoadError(f"{error} No model is loaded now: load one to go on.") from error
                raise
            return self.model

    def load_clip(self, name: str) -> scoring.ClipScorer:
        with self._lock:
            if self.clip is None or self.clip.model_id != name:
                self.clip = None
                self.clip = scoring.load_clip(name)
            return self.clip

    def generate_batch(self, model_name: str, prompt: str, seeds: list[int], params: GenerationParams,
                       use_clip: bool) -> Batch:
        """Generate, score and save one batch; raises ValueError / GenerationError for the UI."""
        with self._lock:
            model = self.model
            if model is None or model.spec != models.resolve(model_name):
                raise generation.GenerationError(
                    f"Model {model_name!r} is not loaded (loaded: {model.spec.name if model else 'none'}); press Load in Settings."
                )
            pil_images, generation_seconds = generation.generate(model, prompt, seeds, params)
            start = time.perf_counter()
            scores = scoring.clip_scores(self.clip, pil_images, prompt) if use_clip and self.clip else None
            scoring_seconds = time.perf_counter() - start
            start = time.perf_counter()
            settings = {"model": model.model_id, "revision": model.revision, **params.to_dict()}
            paths = images.save_batch(self.outputs, prompt, seeds, pil_images, settings)
            saving_seconds = time.perf_counter() - start
            return Batch(
                prompt=prompt,
                seeds=list(seeds),
                image_paths=paths,
                clip_scores=scores,
                noise=generation.noise_blocks(model, seeds, params),
                model=model.info(),
                parameters=params.to_dict(),
                clip_model=self.clip.info() if scores is not None else None,
                generation_seconds=generation_seconds,
                scoring_seconds=scoring_seconds,
                saving_seconds=saving_seconds,
                created_at=utc_now(),
            )
