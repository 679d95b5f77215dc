"""The whole noise loop on the digits sandbox, against the judge's known truth: a re-denoise campaign answered by
simulated annotators -> `goldennoise train` (the pairs people marked golden) -> the checkpoint served in a new
campaign on seeds never used in training -> the analysis. It must find a gain for the learned noise over plain
seeds at the same guidance, and none when the checkpoint is the identity (a fresh, untrained network)."""

from __future__ import annotations

import pytest

from goldennoise import simulate
from goldennoise.generation import noise_model
from goldennoise.research import analysis, train

pytestmark = pytest.mark.slow
BASE = dict(annotators=1, error=0.0, batch_size=6, overlap=0.0, verifiers=(), seed_strategy="random")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("loop")
    first = simulate.simulate(root / "collected", repeats=10, noise_source="redenoise", noise_share=0.5, **BASE)
    card = train.train(root / "collected", root / "noise-model.safetensors", log=None)
    return root, first, card


def served(root, checkpoint, name):
    sim = simulate.simulate(root / name, repeats=8, noise_source="model", noise_share=0.5, noise_checkpoint=str(checkpoint),
                            start_seed=10**9, name=name, **BASE)
    found = analysis.run(root / name, with_selector=False)["results"][0].parts["sources"]["sources"][0]
    return sim, found


def test_the_trained_network_beats_the_identity_on_prompts_and_seeds_it_never_saw(trained):
    _, _, card = trained
    held = card["held_out"]
    assert card["labels"] == "golden" and card["pairs"]["training"] >= 100
    assert held["network_error"] < 0.2 * held["identity_error"] and held["change_cosine"] > 0.8


def test_served_it_gives_golden_noises_more_often_than_plain_seeds_on_new_seeds(trained):
    root, first, _ = trained
    sim, found = served(root, root / "noise-model.safetensors", "served")
    assert not {t[0] for t in first.truth} & {t[0] for t in sim.truth}  # seeds never used in training
    truth = sim.source_rates()
    assert truth["model"][0] > truth["seed"][0]  # the judge agrees
    assert found["source"] == "model" and found["ci_low"] > 0 and found["p"] < 0.05


def test_an_identity_checkpoint_in_the_same_loop_finds_nothing(trained):
    root, _, _ = trained
    identity = root / "identity.safetensors"
    noise_model.save(noise_model.NoiseNet(1, 128), identity, "DigitsPipeline", {"note": "untrained: the identity"})
    _, found = served(root, identity, "identity")
    assert not (found["ci_low"] > 0 and found["p"] < 0.05)
