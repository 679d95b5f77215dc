"""The learned verifier: trained on a campaign's labels, held out by prompt, then used as a campaign's verifier and
pre-filter like any other (records name its checkpoint's hash; the analysis compares it with people)."""

from __future__ import annotations

import math

import pytest

from goldennoise import simulate
from goldennoise.errors import CampaignError, UserError
from goldennoise.generation import verifiers
from goldennoise.research import analysis, train
from goldennoise.store.campaign import Campaign
from goldennoise.store.records import RecordStore

pytestmark = pytest.mark.slow
BASE = dict(annotators=1, error=0.0, overlap=0.0, verifiers=(), seed_strategy="random")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("learned")
    simulate.simulate(root / "labelled", repeats=5, batch_size=6, **BASE)
    cards = {labels: train.train_verifier(root / "labelled", root / f"{labels}.safetensors", labels=labels, log=None)
             for labels in ("golden", "shuffled")}
    return root, cards


def test_training_reports_held_out_prompts_beside_clip(trained):
    _, cards = trained
    for card in cards.values():
        held = card["held_out"]
        assert held["images"] > 0 and held["prompts"] >= 1 and 0 <= held["auc"] <= 1
        assert math.isfinite(held["clip_auc"]) and card["training_images"] + held["images"] == card["images"]
    assert cards["golden"]["sha256"] != cards["shuffled"]["sha256"]


def test_it_scores_pre_filters_and_is_recorded_like_any_verifier(trained):
    root, cards = trained
    checkpoint = root / "golden.safetensors"
    scorer = verifiers.load("learned", source=str(checkpoint))
    assert scorer.info()["revision"] == cards["golden"]["sha256"]
    sim = simulate.simulate(root / "served", repeats=3, batch_size=4, candidates=8, prefilter="verifier:learned",
                            explore=1, name="served", **{**BASE, "verifiers": ("learned",)},
                            learned_checkpoint=str(checkpoint))
    assert sim.answers == 30
    record = next(RecordStore(root / "served").iter_data(kinds=("judgement",)))
    assert record["verifiers"]["learned"]["revision"] == cards["golden"]["sha256"]
    assert record["prefilter"]["method"] == "verifier:learned"
    assert all("learned" in s["scores"] for s in record["samples"])
    result = analysis.run(root / "served", with_selector=False)
    table = result["results"][0].parts["verifiers"]["table"]
    assert "learned" in set(table["verifier"])


def test_a_campaign_names_its_checkpoint_or_is_refused():
    with pytest.raises(CampaignError, match="learned_checkpoint"):
        Campaign(model="digits", verifiers=("learned",)).check()
    with pytest.raises(CampaignError, match="learned_checkpoint"):
        Campaign(model="digits", learned_checkpoint="v.safetensors").check()
    with pytest.raises(UserError, match="checkpoint"):
        verifiers.load("learned", source="/nonexistent/v.safetensors")
