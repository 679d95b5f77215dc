"""`goldennoise generate`: make a campaign's batches ahead of time, split over processes.

Run plainly for one process, or under an existing launcher for several GPUs or
machines (`accelerate launch -m goldennoise.cli generate ...`, or `torchrun`):
accelerate's `PartialState` splits the prompts between processes (diffusers'
distributed-inference recipe), each process loads the pipeline on its own device
and writes each finished batch into the campaign's batch store (see
generation/batchstore.py: a batch file appears atomically once its images exist).
A rerun makes only the batches that are missing, so a killed run resumes with no
batch made twice and none left out. Each process shows its own progress bar.
"""

from __future__ import annotations

import logging
import os
import sys

from goldennoise.errors import CampaignError
from goldennoise.generation import models, prefilter, scoring, seeds, tiny
from goldennoise.generation.batch import Worker, make_batch
from goldennoise.generation.batchstore import BatchStore
from goldennoise.generation.pipeline import GenerationParams, check_params, size_multiple
from goldennoise.ids import slug
from goldennoise.store import campaign as campaigns

log = logging.getLogger(__name__)


def _earlier_versions(outputs, campaign) -> list[str]:
    """Ids of other campaigns of the same name that already have batches."""
    prefix = slug(campaign.name, 30) + "-"
    root = campaigns.folder(outputs, "x").parent
    return sorted(p.name for p in root.glob(prefix + "*")
                  if p.name != campaign.id and BatchStore(p).count() > 0) if root.is_dir() else []


def main(campaign, outputs, limit: int | None = None, allow_new_version: bool = False) -> int:
    import torch
    from accelerate import PartialState
    from tqdm import tqdm

    state = PartialState(cpu=not torch.cuda.is_available())  # CPU processes talk over gloo
    prompt_set = campaigns.load_prompt_set(campaign)
    spec = models.resolve(campaign.model, campaign.revision)
    resolved = campaign.resolved(spec, prompt_set)
    earlier = _earlier_versions(outputs, resolved)
    if earlier and not allow_new_version:
        raise CampaignError(f"campaign {resolved.name!r} changed since batches were made for {', '.join(earlier)}: "
                            f"its new id is {resolved.id}, and batches of different definitions are never mixed. "
                            "Restore the file, or pass --allow-new-version to start the new version.", "campaign")
    folder = campaigns.folder(outputs, resolved.id)
    if state.is_main_process:
        campaigns.write(outputs, resolved, prompt_set)
        # Offline tiny models are built once, here: under torch.distributed, transformers saves weights from
        # rank 0 only, so a folder built by another rank would lack them.
        for name in (spec.source, spec.clip):
            if name in tiny.PIPELINES + (tiny.TINY_CLIP,):
                tiny.tiny_model_path(name)
    state.wait_for_everyone()
    store = BatchStore(folder)
    done = set(store.prompt_ids())
    params = GenerationParams(resolved.num_inference_steps, float(resolved.guidance_scale), resolved.height,
                              resolved.width, resolved.max_sequence_length, resolved.scheduler)
    with state.split_between_processes(list(prompt_set.prompts)) as mine:
        todo = [p for p in mine if p.id not in done][:limit]
        device = str(state.device) if state.device.type != "mps" else "cpu"
        model = models.load_model(resolved.model, device=device, dtype=resolved.dtype, revision=resolved.revision)
        check_params(params, size_multiple(model.pipe))
        if resolved.candidates and resolved.prefilter == "selector":  # the app would refuse to serve them
            prefilter.recommended_selector(outputs, model, params)
        clip = scoring.load_clip(model.spec.clip, device=device) if resolved.clip else None
        worker = Worker(state.process_index, model, clip)
        count = max(resolved.batch_size, resolved.candidates)
        bar = tqdm(todo, desc=f"process {state.process_index}", position=state.process_index, unit="batch",
                   disable=os.environ.get("GOLDENNOISE_NO_BAR") == "1", file=sys.stderr)
        for prompt in bar:
            chosen = seeds.draw_seeds(resolved.seed_strategy, count, prompt.index, resolved.start_seed,
                                      resolved.pool_size)
            store.put(make_batch(worker, outputs, prompt.text, prompt.id, chosen, params, resolved.id,
                                 campaign=resolved.id))
    state.wait_for_everyone()
    if state.is_main_process:
        print(f"campaign {resolved.id}: {store.count()} of {len(prompt_set.prompts)} batches in {folder}")
    return 0
