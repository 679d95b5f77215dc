"""The seed selector on data made by the app's own loop: a lookup table must not pass for a noise signal.

Both datasets use the pool strategy (each seed judged under several prompts) and the
same design; only the annotators' rule differs. `lookup_golden` decides by seed
identity alone: remembering a seed predicts it on new prompts, but nothing about
the noise predicts an unseen seed. `planted_golden` decides by channel 0's mean.

The pool is 96 seeds, not planted.py's default 24: for seeds 0-23 at 64x64 the
noise's std happens to track `lookup_golden`'s table (r = -0.69, p = 2e-4; over 300
other table salts the same statistics call a feature in 6%), so on those 24 seeds
the noise does predict that table and an honest analysis says so. With 96 seeds the
coincidence is diluted (r = -0.18). The issue's exact setting (24 seeds, 40 prompts,
more features than seeds, so a model can memorise every seed) is reproduced with a
table under another salt: there, folds grouped by prompt only (the old evaluation)
score ~1.0 while unseen seeds do not.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from goldennoise.research import analysis
from tests import planted
from tests.planted import one_thread



DESIGN = {"strategy": "pool", "pool_size": 96, "prompts": 32, "batch_size": 6}


def another_lookup(seed: int, shape, rng) -> bool:
    """A random per-seed table like `planted.lookup_golden`, under another salt."""
    return int(hashlib.sha256(f"another table:{seed}".encode()).hexdigest(), 16) % 2 == 0


def _run(tmp_path_factory, name, rule, **design):
    tmp = tmp_path_factory.mktemp(name)
    with one_thread():  # tiny models: extra torch threads only spin when the machine is shared
        service = planted.make_dataset(tmp / "outputs", tmp, rule=rule, **(design or DESIGN))
    calls = []
    result = analysis.run(service.outputs, progress=lambda fraction, desc="": calls.append(fraction))
    service.close_all()
    return service.outputs, result, calls


@pytest.fixture(scope="module")
def lookup(tmp_path_factory):
    return _run(tmp_path_factory, "lookup", planted.lookup_golden)


@pytest.fixture(scope="module")
def memorisable(tmp_path_factory):
    return _run(tmp_path_factory, "memorisable", another_lookup, strategy="pool", pool_size=24, prompts=40)


@pytest.fixture(scope="module")
def planted_signal(tmp_path_factory):
    return _run(tmp_path_factory, "planted", planted.planted_golden)


def _row(result, question):
    table = result["selector_table"]
    return table[table["question"] == question].iloc[0]


def test_lookup_table_is_not_a_noise_signal_on_unseen_seeds(lookup):
    outputs, result, _ = lookup
    unseen = _row(result, "(a) unseen seeds")
    assert unseen["ci_low"] < 0.5 < unseen["ci_high"]
    assert float(unseen["p"]) >= 0.05
    assert "grid" in unseen["held_out"]  # seeds repeat across prompts: neither test seeds nor prompts trained on
    ranking = _row(result, "(b) within-prompt ranking")
    assert ranking["ci_low"] < 0 < ranking["ci_high"] and float(ranking["p"]) >= 0.05
    # The trap is there: the labels are seed identity, which memory finds on new prompts.
    memory = _row(result, "(c) new prompt, seen seed: remember the seed")
    assert memory["estimate"] > 0.9 and float(memory["p"]) < 0.05
    saved = json.loads(result["selector"].read_text())
    assert result["selector"].parent == outputs / "analysis" / "selectors"
    assert saved["recommended"] is False and saved["evaluation"]["rows"][0]["question"] == "(a) unseen seeds"
    assert any("not recommended" in line for line in result["summary"])


def test_issue_counter_example_memorised_seeds_do_not_pass_for_unseen_ones(memorisable):
    _, result, _ = memorisable
    seen = _row(result, "(c) new prompt, seen seed: selector")
    assert seen["estimate"] > 0.9  # the old evaluation: folds by prompt, the same 24 noises in train and test
    unseen = _row(result, "(a) unseen seeds")
    assert unseen["seeds"] == 24 and unseen["ci_low"] < 0.5 < unseen["ci_high"] and float(unseen["p"]) >= 0.05
    assert json.loads(result["selector"].read_text())["recommended"] is False
    html = result["report"].read_text()
    assert "Seeds repeat across prompts" in html and "Only 24 distinct noises" in html


def test_planted_noise_feature_is_recovered_on_unseen_seeds(planted_signal):
    _, result, calls = planted_signal
    unseen = _row(result, "(a) unseen seeds")
    assert unseen["ci_low"] > 0.65 and float(unseen["p"]) < 0.05
    assert unseen["seeds"] >= 80 and unseen["prompts"] == 32
    saved = json.loads(result["selector"].read_text())
    assert saved["recommended"] is True and saved["configuration"] in str(result["selector"])
    assert calls[0] == 0.0 and calls[-1] == 1.0


def test_permutation_nulls_are_centred_on_chance_and_shown(lookup, planted_signal):
    for _, result, _ in (lookup, planted_signal):
        control = _row(result, "control: features permuted")
        assert abs(control["estimate"] - 0.5) < 0.05 and control["ci_low"] < 0.5 < control["ci_high"]
        titles = [title for _, title in result["figures"]]
        assert any("permutation nulls" in t for t in titles)
        html = result["report"].read_text()
        assert "200 permutations" in html and "Claims corrected" not in html  # no pre-filter here


def test_saved_selector_scores_noises_like_the_prefilter_does(planted_signal):
    import numpy as np

    from goldennoise.generation.latents import initial_noise
    from goldennoise.generation.prefilter import SeedSelector

    _, result, _ = planted_signal
    selector = SeedSelector.load(result["selector"])
    shape = tuple(selector.noise_shape)
    noises = np.stack([initial_noise(s, shape).numpy() for s in range(1000, 1200)])
    scores = selector.score_noises(noises)
    channel0 = noises[:, 0, 0].mean(axis=(1, 2))
    assert np.corrcoef(scores, channel0)[0, 1] > 0.6  # it learned the planted feature, on seeds it never saw
    assert ((scores > 0) & (scores < 1)).all()
