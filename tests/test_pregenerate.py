"""Pre-generation under torchrun (2 CPU processes over gloo): killed half-way, resumed, served without a model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from goldennoise.annotation.batches import from_data
from goldennoise.annotation.service import Caller, Service
from goldennoise.errors import CampaignError
from goldennoise.generation.latents import verify
from goldennoise.store import campaign as campaigns
from goldennoise.store.records import RecordStore

pytestmark = pytest.mark.slow
CAMPAIGN = """name = "pregen"
[model]
id = "tiny-flux"
[generation]
height = 64
width = 64
[prompts]
file = "prompts.txt"
[seeds]
strategy = "random"
batch_size = 4
[annotation]
overlap = 0.5
min_view_ms = 0
"""


def generate(tmp: Path, wait: bool = True, extra=()) -> subprocess.Popen:
    torchrun = Path(sys.executable).with_name("torchrun")
    return subprocess.Popen(
        [str(torchrun), "--nproc_per_node", "2", "-m", "goldennoise.cli", "generate", "--campaign",
         str(tmp / "campaign.toml"), "--outputs", str(tmp / "out"), *extra],
        cwd=tmp, env={**os.environ, "GOLDENNOISE_NO_BAR": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True)


def test_generate_is_resumable_and_the_app_serves_it_without_a_model(tmp_path):
    (tmp_path / "prompts.txt").write_text("".join(f"pre-generated prompt {i}\n" for i in range(40)))
    (tmp_path / "campaign.toml").write_text(CAMPAIGN)
    campaign = campaigns.load(tmp_path / "campaign.toml")
    run = generate(tmp_path)
    store, made = None, 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # kill the whole run half-way
        if (tmp_path / "out" / "goldennoise.db").exists():
            store = store or RecordStore(tmp_path / "out", import_legacy=False)
            ids = store.campaign_ids()
            made = store.batch_count(ids[0]) if ids else 0
            if made >= 12:
                break
        assert run.poll() is None, run.stdout.read()
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    campaign_id = store.campaign_ids()[0]
    made_before = store.batch_count(campaign_id)
    assert 12 <= made_before < 40, made_before
    resumed = generate(tmp_path)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    ids = store.batch_prompt_ids(campaign_id)
    assert len(ids) == 40  # every prompt exactly once (one batch per prompt, the first stored), none missing
    for prompt_id in ids:
        batch = from_data(store.batch(campaign_id, prompt_id))
        assert all((tmp_path / "out" / p).is_file() for p in batch.image_paths)
        for seed, block in zip(batch.seeds, batch.noise):
            verify(seed, block)

    # The app on the same campaign, with no model at all: 4 annotators label everything.
    service = Service(tmp_path / "out")
    runtime = service.start(campaign)
    assert runtime.workers == []  # complete: nothing loaded
    callers = {n: Caller(n) for n in ("a", "b", "c", "d")}
    screens = {n: service.join(c, n) for n, c in callers.items()}
    while any(s.state == "batch" for s in screens.values()):
        for name, screen in list(screens.items()):
            if screen.state == "batch":
                assert screen.batch.source == "pregenerated"
                screens[name] = service.answer(callers[name], "batch", screen.batch.batch_id, golden=[]).screen
    assert service.batches.generation_calls == 0
    judged = [r for r in service.store.live() if r.kind == "judgement"]
    overlap = [r for r in judged if sum(x.prompt.id == r.prompt.id for x in judged) == 2]
    assert len({r.prompt.id for r in judged}) == 40 and overlap  # overlap prompts shown twice, same batch
    pairs = {}
    for r in overlap:
        pairs.setdefault(r.prompt.id, set()).add(r.batch_id)
    assert all(len(b) == 1 for b in pairs.values())
    service.close_all()


def test_a_changed_campaign_is_not_mixed_with_earlier_batches(tmp_path):
    (tmp_path / "prompts.txt").write_text("one\ntwo\n")
    (tmp_path / "campaign.toml").write_text(CAMPAIGN)
    from goldennoise import pregenerate

    pregenerate.main(campaigns.load(tmp_path / "campaign.toml"), tmp_path / "out")
    (tmp_path / "campaign.toml").write_text(CAMPAIGN.replace("height = 64", "height = 128"))
    with pytest.raises(CampaignError, match="changed since batches were made"):
        pregenerate.main(campaigns.load(tmp_path / "campaign.toml"), tmp_path / "out")


def test_a_campaign_the_app_would_refuse_is_refused_before_any_batch(tmp_path):
    """Pre-filtering by a seed selector that the analysis did not recommend (here: none trained at all)."""
    (tmp_path / "prompts.txt").write_text("one\ntwo\n")
    (tmp_path / "campaign.toml").write_text(CAMPAIGN + '[prefilter]\ncandidates = 6\nmethod = "selector"\n')
    from goldennoise import pregenerate

    with pytest.raises(CampaignError, match="prefilter.method"):
        pregenerate.main(campaigns.load(tmp_path / "campaign.toml"), tmp_path / "out")
    store = RecordStore(tmp_path / "out")
    assert len(store.campaign_ids()) == 1 and store.batch_count(store.campaign_ids()[0]) == 0
