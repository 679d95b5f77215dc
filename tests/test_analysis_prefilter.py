"""Pre-filtering with exploration, made by the app's own loop, and the analysis undoing its selection.

The app shows 6 of 12 candidates: the 5 with the highest CLIP score and 1 drawn from
the other 7 (propensity 1/7), and records the hidden ones. To know the unfiltered
truth we give every candidate, shown or hidden, a label from a known rule correlated
with its CLIP score, and compare what the shown rows say with and without weights.
The app draws these seeds at random, so the dataset differs on every run; the
assertions hold with a wide margin (checked on 8 datasets: rate error 0.17 naive vs
0.02-0.04 weighted; CLIP AUC error 0.04-0.055 naive vs 0.02 corrected).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from goldennoise.research import analysis, dataset
from goldennoise.research.analysis import stats
from goldennoise.research.analysis.inference import weighted_mean
from goldennoise.store.records import RecordStore
from tests import planted
from tests.planted import one_thread




@pytest.fixture(scope="module")
def prefiltered(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prefilter")
    with one_thread():  # tiny models: extra torch threads only spin when the machine is shared
        # sequential seeds: the same data every run ("random" drew new seeds each time, and the IPW test's margin
        # moved with them: one CI run in many failed it)
        service = planted.make_dataset(tmp / "outputs", tmp, strategy="sequential", prompts=40, batch_size=6,
                                       candidates=12, prefilter="clip", explore=1)
    service.close_all()
    return service.outputs


def test_exploration_slots_and_propensities_are_recorded(prefiltered):
    candidates = dataset.candidate_table(RecordStore(prefiltered).read().records)
    assert candidates["record_id"].nunique() >= 40
    for _, judgement in candidates.groupby("record_id"):
        slots = judgement["slot"].value_counts().to_dict()
        assert slots == {"ranked": 5, "explore": 1, "hidden": 6}
        ranked = judgement[judgement["slot"] == "ranked"]
        rest = judgement[judgement["slot"] != "ranked"]
        assert (ranked["propensity"] == 1.0).all() and np.allclose(rest["propensity"], 1 / 7)
        assert ranked["clip_score"].min() >= rest["clip_score"].max()  # ranked = top by CLIP
        assert judgement["propensity"].sum() == pytest.approx(6)  # expected number shown
        assert judgement["shown"].sum() == 6 and judgement.loc[judgement["shown"], "slot"].ne("hidden").all()


def _simulate(candidates: pd.DataFrame, rng) -> pd.DataFrame:
    """Every candidate labelled by a known rule: golden when its CLIP z-score plus noise is high."""
    z = (candidates["clip_score"] - candidates["clip_score"].mean()) / candidates["clip_score"].std()
    return candidates.assign(golden=(z + rng.normal(0, 1.0, len(z)) > 0.3).to_numpy(),
                             weight=1.0 / candidates["propensity"])


def test_inverse_propensity_weights_bring_rates_and_clip_agreement_toward_the_unfiltered_truth(prefiltered):
    candidates = dataset.candidate_table(RecordStore(prefiltered).read().records).reset_index(drop=True)
    rng = np.random.default_rng(0)
    errors = {"rate naive": [], "rate weighted": [], "auc naive": [], "auc weighted": [], "auc all candidates": []}
    for _ in range(50):
        every = _simulate(candidates, rng)
        shown = every[every["shown"]]
        truth_rate = every["golden"].mean()
        truth_auc = stats.clip_agreement(every.assign(weight=1.0))["auc"]  # nothing filtered
        corrected = stats.clip_agreement(shown, candidates=every.assign(golden=every["golden"].where(every["shown"])))
        errors["rate naive"].append(shown["golden"].mean() - truth_rate)
        errors["rate weighted"].append(weighted_mean(shown["golden"], shown["weight"]) - truth_rate)
        errors["auc naive"].append(corrected["naive_auc"] - truth_auc)
        errors["auc weighted"].append(corrected["auc"] - truth_auc)
        errors["auc all candidates"].append(corrected["all_candidates"]["auc"] - truth_auc)
    error = {k: float(np.mean(np.abs(v))) for k, v in errors.items()}
    assert np.mean(errors["rate naive"]) > 0.1  # showing CLIP's top 5 inflates the golden rate ...
    assert error["rate weighted"] < error["rate naive"] / 3  # ... and 1/propensity undoes it
    assert np.mean(errors["auc naive"]) < -0.02  # CLIP agreement among the top looks worse than it is ...
    assert error["auc all candidates"] < error["auc naive"] * 0.7  # ... the corrected figure is close to the truth
    # The pair-weighted AUC covers only pairs that can be seen together (with one exploration slot, never two
    # low-ranked candidates), so its error depends on how CLIP orders those: -0.04..+0.05 over 9 datasets. The
    # report shows it as what it is, beside the figure over all candidates; no claim about it is tested here.


def test_report_says_which_claims_were_corrected(prefiltered):
    with warnings.catch_warnings(record=True) as caught:  # and no numeric warning on the way (an overflow was)
        warnings.simplefilter("always")
        result = analysis.run(prefiltered, with_selector=True)
    numeric = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert numeric == []
    html = result["report"].read_text()
    assert "Claims corrected for pre-filtering" in html and "1/propensity" in html
    assert "by exploration" in html and "ranked by CLIP score" in html
    assert any("naive rate among shown seeds" in line for line in result["summary"])
    unseen = result["selector_table"].iloc[0]
    assert unseen["question"] == "(a) unseen seeds" and "prompts, and so seeds" in unseen["held_out"]


def test_a_pre_filter_does_not_make_a_useless_selector_look_like_a_ranking_gain():
    """CLIP's top 5 of 12 shown plus 1 exploration slot; golden follows CLIP; the noise features carry nothing.

    (b) compares the selector's top pick with a random pick among the same shown seeds: a
    pre-filter enriches both sides alike, so the gain and its null centre on 0 (weighting
    only the random side by 1/propensity gave +0.20 here, excluding 0 in 19 of 20 datasets)."""
    import numpy as np

    from goldennoise.research import selector

    rng = np.random.default_rng(3)
    features, seed, prompt, judgement, y, w = [], [], [], [], [], []
    for j in range(80):
        clip = rng.normal(size=12)
        golden = (clip + rng.normal(size=12) > 0.3).astype(int)
        order = np.argsort(-clip)
        top, rest = order[:5], order[5:]
        for c in [*top, rng.choice(rest)]:
            features.append(rng.normal(size=30))
            seed.append(len(seed))
            prompt.append(j // 2)
            judgement.append(j)
            y.append(golden[c])
            w.append(1.0 if c in top else len(rest))
    rows = selector.Rows(np.array(features), np.array(seed), np.array(prompt), np.array(judgement), np.array(y),
                         np.array(w, dtype=float))
    assert np.mean(y) > 0.55  # the shown seeds are enriched: the pre-filter works
    evaluation = selector.evaluate(rows, permutations=100, draws=300, seed=0)
    gain = evaluation.table[evaluation.table["question"] == "(b) within-prompt ranking"].iloc[0]
    assert gain["ci_low"] < 0 < gain["ci_high"]
    assert abs(np.mean(evaluation.nulls["ranking_gain"]["null"])) < 0.05
    assert not evaluation.recommended
