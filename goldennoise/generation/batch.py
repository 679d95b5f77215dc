"""One generated batch as plain data, and the function that makes it.

`make_batch` generates, scores and saves a prompt's images for given seeds on a
`Worker` (one loaded pipeline, its CLIP and the campaign's verifiers on one
device). It keeps no state of its own: whoever owns the workers decides which
one runs which chunk.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace

from goldennoise.generation import gpu, images, latents, noises, scoring
from goldennoise.generation.models import LoadedModel
from goldennoise.generation.pipeline import GenerationParams
from goldennoise.ids import new_id, utc_now


@dataclass(frozen=True)
class Batch:
    """One prompt's generated images: everything a record needs about how they were made."""

    batch_id: str
    prompt: str
    prompt_id: str
    seeds: list[int]
    image_paths: list[str]  # relative to the outputs folder, in seed order
    clip_scores: list[float] | None
    noise: list[dict]  # provenance block per seed (latents.provenance)
    model: dict
    parameters: dict
    clip_model: dict | None
    generation_seconds: float
    scoring_seconds: float
    saving_seconds: float
    created_at: str
    campaign: str | None = None
    source: str = "live"  # "live", "prefetched", "pregenerated" or "record"
    prefilter: dict | None = None  # set when more candidates were made than shown (see prefilter.py)
    slots: list[dict] = field(default_factory=list)  # per shown seed: {"slot", "propensity"} when pre-filtered
    scores: dict[str, list[float]] = field(default_factory=dict)  # verifier name -> its score per seed
    verifier_models: dict[str, dict] = field(default_factory=dict)  # verifier name -> what scored (Verifier.info)

    def extended(self, more: "Batch") -> "Batch":
        """This batch followed by `more` (a later chunk of the same prompt and settings)."""
        return replace(
            self, seeds=self.seeds + more.seeds, image_paths=self.image_paths + more.image_paths,
            clip_scores=None if self.clip_scores is None else self.clip_scores + (more.clip_scores or []),
            scores={name: values + more.scores[name] for name, values in self.scores.items()},
            noise=self.noise + more.noise, generation_seconds=self.generation_seconds + more.generation_seconds,
            scoring_seconds=self.scoring_seconds + more.scoring_seconds,
            saving_seconds=self.saving_seconds + more.saving_seconds, created_at=more.created_at)

    def select(self, indices: list[int], **changes) -> "Batch":
        """The batch of the seeds at `indices` (in that order), every per-seed field picked alike."""
        def pick(values):
            return None if values is None else [values[i] for i in indices]

        picked = dict(seeds=pick(self.seeds), image_paths=pick(self.image_paths), clip_scores=pick(self.clip_scores),
                      noise=pick(self.noise), scores={name: pick(values) for name, values in self.scores.items()},
                      slots=pick(self.slots) if self.slots else [])
        return replace(self, **{**picked, **changes})


@dataclass
class Worker:
    """One loaded pipeline (its CLIP, its verifiers) on one device, with the lock that serialises its device work.

    `key` names it for `gpu.run` (which finds the models by key, so that on ZeroGPU only the key is pickled);
    whoever makes a worker installs it there (`install`) and takes it out when done (`uninstall`)."""

    key: str
    model: LoadedModel
    clip: scoring.ClipScorer | None
    verifiers: dict = field(default_factory=dict)  # verifier name ("pickscore") -> loaded Verifier
    lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self) -> "Worker":
        gpu.install(self.key, self.model, self.clip, self.verifiers)
        return self

    def uninstall(self) -> None:
        gpu.uninstall(self.key)


def run_device(worker: Worker, prompt: str, seeds: list[int], params: GenerationParams,
               sources: list[dict | None] | None = None) -> dict:
    """The device part of a batch (the caller holds the worker): CPU images, noise blocks, made noises, scores,
    seconds. `sources`: per seed None or a noise source (see `noises`)."""
    return gpu.run(worker.key, prompt, [int(s) for s in seeds], params.to_dict(),
                   list(sources) if sources and any(sources) else None)


def finish(worker: Worker, made: dict, outputs, prompt: str, prompt_id: str, seeds: list[int],
           params: GenerationParams, group: str, batch_id: str, campaign: str | None = None) -> Batch:
    """The CPU part: CLIP scores (when not scored on the device), PNG files, made noises kept, the Batch record."""
    from PIL import Image

    start = time.perf_counter()
    store = noises.NoiseStore(outputs)
    draws = {block["source_sha256"]: block["sha256"] for block in made["noise"] if block.get("source_sha256")}
    for sha, noise in (made.get("made") or {}).items():
        if store.put(noise, draws[sha]) != sha:  # the device's hash of the tensor and ours of its bytes must agree
            raise RuntimeError(f"a made noise does not hash to its record's {sha[:12]}…; nothing was recorded.")
    pil_images = [Image.fromarray(array) for array in made["images"]]
    scores = made["scores"]
    if worker.clip is not None and scores is None:
        scores = scoring.clip_scores(worker.clip, pil_images, prompt)  # on CPU the PIL path matches torchmetrics
    verified = dict(made.get("verifier_scores") or {})
    for name, verifier in worker.verifiers.items():
        if name not in verified:  # a CPU verifier: the PIL images, preprocessed as published
            verified[name] = verifier.score(pil_images, prompt)
    scoring_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model = worker.model
    folder = images.batch_folder(group, prompt, prompt_id, batch_id)
    settings = {"model": model.model_id, "revision": model.revision, **params.to_dict()}
    paths = images.save_batch(outputs, folder, prompt, seeds, pil_images, settings)
    return Batch(
        batch_id=batch_id, prompt=prompt, prompt_id=prompt_id, seeds=[int(s) for s in seeds], image_paths=paths,
        clip_scores=scores, noise=made["noise"], model=model.info(),
        parameters={**params.to_dict(), "runtime": {**model.runtime, **latents.machine()}},
        clip_model=worker.clip.info() if scores is not None else None, generation_seconds=made["seconds"],
        scoring_seconds=scoring_seconds + made.get("verifier_seconds", 0.0),
        saving_seconds=time.perf_counter() - start, created_at=utc_now(), campaign=campaign,
        scores={name: verified[name] for name in worker.verifiers},
        verifier_models={name: {**v.info(), "pixels": "tensor" if name in (made.get("verifier_scores") or {})
                                else "pil"} for name, v in worker.verifiers.items()})


def make_batch(worker: Worker, outputs, prompt: str, prompt_id: str, seeds: list[int], params: GenerationParams,
               group: str, batch_id: str | None = None, campaign: str | None = None,
               sources: list[dict | None] | None = None) -> Batch:
    """Generate, score and save one batch; only the device work holds `worker.lock`."""
    with worker.lock:
        made = run_device(worker, prompt, seeds, params, sources)
    return finish(worker, made, outputs, prompt, prompt_id, seeds, params, group, batch_id or new_id(), campaign)
