"""Noise sources' small parts: which candidates get one, where made noises are kept, what a campaign accepts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from goldennoise.errors import CampaignError, NoiseMismatch
from goldennoise.generation import latents, models, pipeline
from goldennoise.generation.noises import NoiseStore, Source, assign
from goldennoise.generation.pipeline import GenerationParams
from goldennoise.store.campaign import Campaign


def test_exactly_the_share_of_each_batch_at_positions_fixed_per_prompt():
    source = Source("redenoise", 0.5)
    chosen = [assign(source, list(range(100 * p, 100 * p + 6)), p) for p in range(40)]
    assert all(sum(c is not None for c in row) == 3 for row in chosen)
    assert all(c in (None, 0.5) for row in chosen for c in row)
    assert assign(source, list(range(6)), 0) == chosen[0]  # the same batch, the same choice
    assert len({tuple(c is None for c in row) for row in chosen}) > 5
    assert assign(Source("seed", 0.5), [1, 2, 3], 0) == [None] * 3


@pytest.mark.parametrize("share, batch", [(1.0, 4), (0.1, 4), (0.2, 2), (0.5, 1)])
def test_a_share_that_leaves_an_arm_empty_is_refused_by_name(share, batch):
    with pytest.raises(CampaignError, match="noise.share"):
        Campaign(noise_source="redenoise", noise_share=share, batch_size=batch, pool_size=64).check()
    Campaign(noise_source="seed", noise_share=share, batch_size=batch, pool_size=64).check()  # unused: fine


def test_a_noise_source_and_a_prefilter_or_a_stray_checkpoint_are_refused():
    with pytest.raises(CampaignError, match="pre-filter"):
        Campaign(noise_source="redenoise", candidates=8).check()
    with pytest.raises(CampaignError, match="noise.checkpoint"):
        Campaign(noise_source="model").check()
    with pytest.raises(CampaignError, match="noise.checkpoint"):
        Campaign(noise_source="redenoise", noise_checkpoint="x.safetensors").check()


def test_kept_noises_are_exact_bound_to_their_draw_and_refuse_a_bad_name_or_a_damaged_file(tmp_path):
    store = NoiseStore(tmp_path)
    noise = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    sha = store.put(noise, "a" * 64)
    assert np.array_equal(store.get(sha, "a" * 64), noise.numpy())
    with pytest.raises(NoiseMismatch, match="another seed"):
        store.get(sha, "b" * 64)
    with pytest.raises(NoiseMismatch, match="not the sha256"):
        store.get("../../../../etc/passwd")
    np.savez_compressed(store.path(sha), noise=noise.numpy() + 1, draw_sha256=np.array("a" * 64))
    with pytest.raises(NoiseMismatch, match="altered"):
        store.get(sha)
    assert store.put(noise, "a" * 64) == sha and np.array_equal(store.get(sha), noise.numpy())  # rewritten


def test_a_block_pointing_at_another_seeds_kept_noise_or_naming_an_unknown_source_fails(tmp_path):
    model = models.load_model("digits")
    made = pipeline.generate(model, "a handwritten 2", [1, 17], GenerationParams(10, 0.75, 64, 64),
                             [{"name": "redenoise", "share": 0.5}] * 2)
    store = NoiseStore(tmp_path)
    for block in made.noise:
        store.put(made.made[block["source_sha256"]], block["sha256"])
    one, other = made.noise
    assert latents.verify(1, one, store=store).status == "exact"
    stolen = {**one, "source_sha256": other["source_sha256"], "latents_sha256": other["latents_sha256"]}
    with pytest.raises(NoiseMismatch, match="another seed"):
        latents.verify(1, stolen, store=store)
    with pytest.raises(NoiseMismatch, match="not a noise source"):
        latents.verify(1, {**one, "source": {**one["source"], "name": "foo"}}, store=store)
    assert "embedded_guidance" not in one["source"]  # only a guidance-embedding model uses it


def _pairs(wins_of_source: int, losses: int, ties: int = 0, both_bad: int = 0):
    import pandas as pd

    rows, n = [], 0
    for outcome, count in (("win", wins_of_source), ("loss", losses), ("tie", ties), ("both_bad", both_bad)):
        for _ in range(count):
            left_is_source = n % 2 == 0  # sides alternate, as a random order would put them
            winner = {"tie": "tie", "both_bad": "both_bad"}.get(outcome) or (
                "left" if (outcome == "win") == left_is_source else "right")
            rows.append({"prompt_id": f"p{n % 20}", "batch_id": f"b{n}", "record_id": f"r{n}", "winner": winner,
                         "left_noise_source": "redenoise" if left_is_source else "seed",
                         "right_noise_source": "seed" if left_is_source else "redenoise"})
            n += 1
    return pd.DataFrame(rows)


def test_pairwise_answers_say_how_often_the_sourced_side_won_whichever_side_it_was_on():
    from goldennoise.research.analysis import sources

    (found,) = sources.pairwise(_pairs(45, 15, ties=10, both_bad=5), draws=300)
    assert found["answers"] == 70 and found["both_bad"] == 5
    assert abs(found["won"] - (45 + 5) / 70) < 1e-12 and found["ci_low"] > 0.5 and found["p"] < 0.01
    (null,) = sources.pairwise(_pairs(30, 30), draws=300)
    assert abs(null["won"] - 0.5) < 1e-12 and null["p"] > 0.3


def test_a_campaign_without_the_noise_settings_keeps_the_id_it_had_before_them():
    from dataclasses import replace

    campaign = replace(Campaign(name="stable", model="digits", guidance_scale=0.75, num_inference_steps=20,
                                height=256, width=256, verifiers=("digits",), guidelines="Golden: sharp."),
                       prompts_sha256="0" * 64)
    assert campaign.id == "stable-ae149c9370"  # what 370f4b1, before noise sources, computed for it
    assert replace(campaign, noise_source="redenoise", noise_share=0.5).id != campaign.id


def test_the_arms_permutation_p_is_calibrated_when_several_annotators_judge_each_batch():
    """Null: golden independent of the arm; every batch (3 of 6 sourced) judged identically by four annotators. Here
    0.04 of 80 replicates reject at 0.05; shuffling each judgement on its own (the audited version) rejects 0.20."""
    import pandas as pd

    from goldennoise.research.analysis import sources

    rng = np.random.default_rng(0)
    rejected = 0
    for _ in range(80):
        rows = []
        for b in range(30):
            arm = np.zeros(6, bool)
            arm[rng.choice(6, 3, replace=False)] = True
            golden = rng.random(6) < 0.5
            rows += [{"record_id": f"{b}{who}", "batch_id": f"b{b}", "prompt_id": f"p{b}", "position": p,
                      "golden": bool(golden[p]), "noise_source": "redenoise" if arm[p] else "seed",
                      "source_share": 0.5} for who in "abcd" for p in range(6)]
        rejected += sources.analyse(pd.DataFrame(rows), draws=20)["sources"][0]["p"] < 0.05
    assert rejected / 80 <= 0.1


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_sourced_candidate_verifies_in_either_dtype_and_within_tolerance_on_other_kernels(tmp_path, dtype):
    model = models.load_model("digits", dtype=dtype)
    made = pipeline.generate(model, "a handwritten 5", [3], GenerationParams(10, 0.75, 64, 64),
                             [{"name": "redenoise", "share": 0.5}])
    (block,) = made.noise
    store = NoiseStore(tmp_path)
    store.put(made.made[block["source_sha256"]], block["sha256"])
    assert block["pipeline_dtype"] == dtype and latents.verify(3, block, store=store).status == "exact"
    remade = latents.remake_latents(3, block, stage="passed", store=store)
    assert str(remade.dtype).endswith(dtype)
    assert torch.equal(remade, latents.to_passed(made.made[block["source_sha256"]], "pixel", getattr(torch, dtype)))
    # the seed's draw as another CPU's kernels give it (~1e-6 off): the fingerprint, not the hash
    other = latents.initial_noise(3, tuple(block["shape"])) + 1e-6
    assert latents.verify(3, block, other, store=store).status == "tolerance"
    with pytest.raises(NoiseMismatch):
        latents.verify(3, block, other + 1e-3, store=store)
