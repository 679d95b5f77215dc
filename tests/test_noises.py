"""Noise sources' small parts: which candidates get one, where made noises are kept, what a campaign accepts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from goldennoise.errors import CampaignError, NoiseMismatch
from goldennoise.generation import latents, models, pipeline
from goldennoise.generation.noises import NoiseStore, Source, assign, twins
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


def test_same_seed_twins_get_the_source_on_one_side_drawn_per_prompt():
    source = Source("redenoise", 0.5)
    rows = [assign(source, twins(list(range(10 * p, 10 * p + 3))), p, "same_seed") for p in range(40)]
    assert all(len(row) == 6 and sum(c is not None for c in row[i:i + 2]) == 1 for row in rows for i in (0, 2, 4))
    assert 0.35 < np.mean([row[1] is not None for row in rows for row in [row[0:2], row[2:4], row[4:6]]]) < 0.65
    assert assign(source, twins([0, 1, 2]), 0, "same_seed") == rows[0]
    with pytest.raises(ValueError, match="each seed twice"):
        assign(source, [1, 2, 3, 4], 0, "same_seed")


def test_a_same_seed_campaign_needs_a_source_a_batch_of_2_and_half_the_candidates_from_it():
    Campaign(noise_source="redenoise", noise_pairing="same_seed", batch_size=2, pool_size=64).check()
    for bad, match in ((dict(noise_source="seed"), "noise.pairing"), (dict(batch_size=4), "seeds.batch_size"),
                       (dict(noise_share=0.25), "noise.share"), (dict(noise_pairing="twins"), "noise.pairing")):
        with pytest.raises(CampaignError, match=match):
            Campaign(**{"noise_source": "redenoise", "noise_pairing": "same_seed", "batch_size": 2, **bad}).check()


def test_a_seed_twice_is_generated_from_its_draw_and_from_the_source_and_recorded_only_as_a_pair(tmp_path):
    """Generation takes a seed twice when its two candidates have different noises (never twice the same); a
    pairwise record or a skip may list it twice with two sources, a judgement never (its golden_seeds name seeds)."""
    from goldennoise.generation.images import save_batch
    from goldennoise.store import schema

    model = models.load_model("digits")
    params = GenerationParams(10, 0.75, 64, 64)
    made = pipeline.generate(model, "a handwritten 4", [5, 5], params, [None, {"name": "redenoise", "share": 0.5}])
    assert made.noise[0]["sha256"] == made.noise[1]["sha256"] and "source" in made.noise[1]
    assert not torch.equal(made.images[0], made.images[1])
    with pytest.raises(Exception, match="distinct"):
        pipeline.generate(model, "a handwritten 4", [5, 5], params)
    paths = save_batch(tmp_path, "b", "p", [5, 5, 6], [Image_new()] * 3, {})
    assert paths == ["b/5-0.png", "b/5-1.png", "b/6.png"]
    samples = [{"seed": 5, "noise": block} for block in made.noise]
    base = dict(record_id="a" * 32, created_at="now", annotator="ann", seeds=[5, 5], samples=samples,
                prompt={"text": "4", "id": "p", "index": 0, "source": "t"})
    schema.Pairwise(**base, preference={"left": 5, "right": 5, "winner": "right"})
    schema.Skip(**base)
    with pytest.raises(ValueError, match="distinct"):
        schema.Judgement(**base, golden_seeds=[5], bad_seeds=[], verdict="some_golden")
    with pytest.raises(ValueError, match="distinct"):
        schema.Pairwise(**{**base, "samples": [samples[0], samples[0]]},
                        preference={"left": 5, "right": 5, "winner": "right"})


def Image_new():
    from PIL import Image

    return Image.new("RGB", (8, 8))


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


def _pairs(wins_of_source: int, losses: int, ties: int = 0, both_bad: int = 0, same_seed: bool = False):
    import pandas as pd

    rows, n = [], 0
    for outcome, count in (("win", wins_of_source), ("loss", losses), ("tie", ties), ("both_bad", both_bad)):
        for _ in range(count):
            left_is_source = n % 2 == 0  # sides alternate, as a random order would put them
            winner = {"tie": "tie", "both_bad": "both_bad"}.get(outcome) or (
                "left" if (outcome == "win") == left_is_source else "right")
            rows.append({"prompt_id": f"p{n % 20}", "batch_id": f"b{n}", "record_id": f"r{n}", "winner": winner,
                         "left_noise_source": "redenoise" if left_is_source else "seed",
                         "right_noise_source": "seed" if left_is_source else "redenoise",
                         "left_seed": n, "right_seed": n if same_seed else n + 1000})
            n += 1
    return pd.DataFrame(rows)


def test_pairwise_answers_say_how_often_the_sourced_side_won_whichever_side_it_was_on():
    from goldennoise.research.analysis import sources

    (found,) = sources.pairwise(_pairs(45, 15, ties=10, both_bad=5), draws=300)
    assert found["answers"] == 70 and found["both_bad"] == 5
    assert abs(found["won"] - (45 + 5) / 70) < 1e-12 and found["ci_low"] > 0.5 and found["p"] < 0.01
    (null,) = sources.pairwise(_pairs(30, 30), draws=300)
    assert abs(null["won"] - 0.5) < 1e-12 and null["p"] > 0.3
    assert found["pairing"] == null["pairing"] == "different seeds"
    import pandas as pd

    twins = _pairs(20, 20, same_seed=True).assign(prompt_id=lambda f: f["prompt_id"] + "t")
    same, different = sorted(sources.pairwise(pd.concat([_pairs(45, 15), twins]), draws=300),
                             key=lambda row: row["pairing"] != "same seed")
    assert same["pairing"] == "same seed" and same["answers"] == 40 and abs(same["won"] - 0.5) < 1e-12
    assert different["answers"] == 60 and abs(different["won"] - 0.75) < 1e-12


def test_a_campaign_without_the_noise_settings_keeps_the_id_it_had_before_them():
    from dataclasses import replace

    campaign = replace(Campaign(name="stable", model="digits", guidance_scale=0.75, num_inference_steps=20,
                                height=256, width=256, verifiers=("digits",), guidelines="Golden: sharp."),
                       prompts_sha256="0" * 64)
    assert campaign.id == "stable-ae149c9370"  # what 370f4b1, before noise sources, computed for it
    assert replace(campaign, noise_source="redenoise", noise_share=0.5).id != campaign.id
    assert replace(campaign, noise_pairing="mixed").id == campaign.id
    mixed = replace(campaign, noise_source="redenoise", batch_size=2)
    assert replace(mixed, noise_pairing="same_seed").id != mixed.id


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
