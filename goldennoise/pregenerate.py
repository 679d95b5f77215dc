"""`goldennoise generate`: make a campaign's batches ahead of time, split over processes.

Run plainly for one process, or under an existing launcher for several GPUs or
machines (`accelerate launch -m goldennoise.cli generate ...`, or `torchrun`):
accelerate's `PartialState` splits the prompts between processes (diffusers'
distributed-inference recipe); each process turns the campaign into a running model
on its own device with `runtime_for` (the one way a campaign becomes a model) and
stores each finished batch in the store (a batch is stored only after all its images
exist, and the first stored batch of a prompt stays its batch). A rerun makes only
the batches that are missing, so a killed run resumes with no batch made twice and
none left out. Each process shows its own progress bar.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from goldennoise.annotation import runtime as runtimes
from goldennoise.annotation.batches import Batches
from goldennoise.errors import CampaignError
from goldennoise.generation import models, tiny
from goldennoise.ids import slug
from goldennoise.store.campaign import Campaign
from goldennoise.store.records import RecordStore

log = logging.getLogger(__name__)


def _earlier_versions(store: RecordStore, campaign: Campaign) -> list[str]:
    """Ids of other campaigns of the same name that already have batches."""
    prefix = slug(campaign.name, 30) + "-"
    return sorted(c for c in store.campaign_ids() if c.startswith(prefix) and c != campaign.id
                  and store.batch_count(c) > 0)


def main(campaign: Campaign, outputs, limit: int | None = None, allow_new_version: bool = False,
         store: str | None = None) -> int:
    import torch
    from accelerate import PartialState
    from tqdm import tqdm

    state = PartialState(cpu=not torch.cuda.is_available())  # CPU processes talk over gloo
    outputs = Path(outputs)
    records = RecordStore(outputs, store, import_legacy=state.is_main_process)
    if state.is_main_process:
        resolved, _ = runtimes.resolve(campaign, records, outputs)  # registers the campaign and its prompts once
        earlier = _earlier_versions(records, resolved)
        if earlier and not allow_new_version:
            raise CampaignError(f"campaign {resolved.name!r} changed since batches were made for {', '.join(earlier)}"
                                f": its new id is {resolved.id}, and batches of different definitions are never "
                                "mixed. Restore the file, or pass --allow-new-version to start the new version.",
                                "campaign")
        # Offline tiny models are built once, here: under torch.distributed, transformers saves weights from
        # rank 0 only, so a folder built by another rank would lack them.
        spec = models.resolve(campaign.model, campaign.revision)
        for name in (spec.source, spec.clip):
            if name in tiny.PIPELINES + (tiny.TINY_CLIP,):
                tiny.tiny_model_path(name)
    state.wait_for_everyone()
    device = str(state.device) if state.device.type != "mps" else "cpu"
    runtime = runtimes.runtime_for(campaign, records, outputs, load="always", device_list=[device])
    batches = Batches(runtime, records, outputs, prefetching=False)
    done = records.batch_prompt_ids(runtime.id)
    with state.split_between_processes(list(range(len(runtime.prompts)))) as mine:
        todo = [runtime.prompts.at(i) for i in mine]
        todo = [p for p in todo if p.id not in done][:limit]
        bar = tqdm(todo, desc=f"process {state.process_index}", position=state.process_index, unit="batch",
                   disable=os.environ.get("GOLDENNOISE_NO_BAR") == "1", file=sys.stderr)
        for prompt in bar:
            batches.ensure(prompt)
    state.wait_for_everyone()
    batches.close()
    runtime.close()
    if state.is_main_process:
        print(f"campaign {runtime.id}: {records.batch_count(runtime.id)} of {len(runtime.prompts)} batches in "
              f"{records.describe()}")
    return 0
