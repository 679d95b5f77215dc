"""Verifiers in a campaign: every image scored when it is made, the scores in the record (with the weights that made
them), a pre-filter by a verifier, score columns in the tables and the Hugging Face export, and a start refused
when a verifier's weights are missing."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pandas as pd
import pytest
from PIL import Image

from goldennoise.annotation.service import Caller, Service
from goldennoise.errors import CampaignError
from goldennoise.generation import verifiers
from goldennoise.research import dataset, export
from goldennoise.store.campaign import Campaign

A = Caller("tab-a")
SCORERS = ("tiny-pickscore", "tiny-hpsv2", "tiny-imagereward", "tiny-aesthetic")
NAMES = {"pickscore", "hpsv2", "imagereward", "aesthetic"}


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Campaign:
    folder = tmp_path_factory.mktemp("verified")
    prompts = folder / "p.txt"
    prompts.write_text("".join(f"prompt number {i}\n" for i in range(3)))
    return Campaign(name="scored", model="tiny-flux", height=64, width=64, prompts=str(prompts),
                    seed_strategy="sequential", start_seed=100, min_view_ms=0, batch_size=4, candidates=7,
                    explore=1, prefilter="verifier:pickscore", verifiers=SCORERS)


@pytest.fixture(scope="module")
def answered(tmp_path_factory, campaign):
    outputs = tmp_path_factory.mktemp("verified-out") / "outputs"
    service = Service(outputs, prefetch=False)
    service.start(campaign)
    screen = service.join(A, "ada")
    records = []
    while screen.state == "batch":
        done = service.answer(A, "batch", screen.batch.batch_id, golden=screen.batch.seeds[:1])
        records.append(done.record)
        screen = done.screen
    service.close_all()
    return outputs, records


def test_every_image_carries_each_verifiers_score_and_the_record_names_the_weights(answered):
    _, records = answered
    assert len(records) == 3
    for record in records:
        assert set(record.verifiers) == NAMES and record.verifiers["hpsv2"]["pixels"] == "pil"
        assert record.verifiers["pickscore"]["id"] == "tiny-pickscore" and record.verifiers["pickscore"]["revision"]
        for sample in [*record.samples, *record.prefilter.hidden]:
            assert set(sample.scores) == NAMES


@pytest.mark.parametrize("name", SCORERS)
def test_a_recorded_score_is_re_made_from_the_saved_png(answered, name):
    outputs, records = answered
    scorer = verifiers.load(name, device="cpu")
    record = records[0]
    images = [Image.open(outputs / s.image_path).convert("RGB") for s in record.samples]
    again = scorer.score(images, record.prompt.text)
    assert again == pytest.approx([s.scores[scorer.name] for s in record.samples], abs=1e-5)


def test_the_verifier_prefilter_shows_its_top_ranked_candidates(answered):
    _, records = answered
    for record in records:
        assert record.prefilter.method == "verifier:pickscore"
        for sample in [*record.samples, *record.prefilter.hidden]:
            assert sample.rank_score == sample.scores["pickscore"]
        ranked = [s.rank_score for s in record.samples if s.slot == "ranked"]
        assert len(ranked) == 3 and min(ranked) >= max(h.rank_score for h in record.prefilter.hidden)


def test_tables_and_the_hub_export_carry_the_score_columns(answered, tmp_path):
    outputs, records = answered
    table = dataset.sample_table(records)
    assert table["score_pickscore"].dtype == "float64" and table["score_pickscore"].notna().all()
    assert table.attrs["verifiers"]["pickscore"][0]["id"] == "tiny-pickscore"
    candidates = dataset.candidate_table(records)
    assert len(candidates) == 3 * 7 and candidates["score_aesthetic"].notna().all()
    export.export(outputs, tmp_path / "x", ("hub",))
    hub = tmp_path / "x" / "hub"
    frame = pd.concat(pd.read_parquet(p) for p in sorted((hub / "data").rglob("*.parquet")))
    assert str(frame["score_pickscore"].dtype) == "float32"
    recorded = {(r.record_id, s.seed): s.scores["pickscore"] for r in records for s in r.samples}
    for row in frame.itertuples():
        assert row.score_pickscore == pytest.approx(recorded[(row.record_id, row.seed)], rel=1e-6)
    card = (hub / "README.md").read_text()
    assert "`score_pickscore`: tiny-pickscore" in card and "offline stand-in" in card
    assert "score_aesthetic" in card.split("dataset_info")[1]  # the features in the front matter


def test_campaign_checks_name_verifiers_and_the_prefilter_needs_one_listed(campaign):
    with pytest.raises(CampaignError, match="scoring.verifiers: names verifiers among"):
        replace(campaign, verifiers=("pickscorer",)).check()
    with pytest.raises(CampaignError, match="names each verifier once"):
        replace(campaign, verifiers=("pickscore", "tiny-pickscore")).check()
    with pytest.raises(CampaignError, match="prefilter.method: must be clip, selector or verifier"):
        replace(campaign, prefilter="verifier:digits").check()
    with pytest.raises(CampaignError, match="CLIP is scored by annotation.clip"):
        replace(campaign, verifiers=("clip",), prefilter="clip").check()
    with pytest.raises(CampaignError, match="digits scores the digits model's images only"):
        replace(campaign, verifiers=("digits",), prefilter="clip").check()
    hashed = replace(campaign, prompts_sha256="0" * 64)
    assert replace(hashed, verifiers=(), prefilter="clip").id != replace(hashed, prefilter="clip").id


def test_the_digits_verifier_ranks_real_digits_of_the_asked_class_first():
    import numpy as np
    import torch

    from goldennoise.sandbox import data

    values, labels = data.real_digits()
    _, test = data.split()
    images = torch.as_tensor(values[test] / data.INK, dtype=torch.float32).reshape(-1, 1, 8, 8).repeat(1, 3, 1, 1)
    scores = np.array(verifiers.load("digits").score(images, "a handwritten 3"))
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(labels[test] == 3, scores) > 0.99
    with pytest.raises(ValueError, match="does not name a digit"):
        verifiers.load("digits").score(images[:2], "a red fox")


@pytest.mark.slow
def test_a_verifier_without_its_weights_stops_the_app_with_what_to_download(campaign, tmp_path):
    text = campaign.to_toml().replace(f"verifiers = {list(SCORERS)}".replace("'", '"'), 'verifiers = ["pickscore"]')
    text = text.replace('method = "verifier:pickscore"', 'method = "clip"')
    assert 'verifiers = ["pickscore"]' in text
    (tmp_path / "campaign.toml").write_text(text)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "goldennoise.cli", "app", "--campaign", "campaign.toml",
                           "--outputs", "outputs", "--port", "0"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode != 0
    assert "pickscore verifier could not load its weights" in done.stderr
    assert "hf download yuvalkirstain/PickScore_v1" in done.stderr and "Traceback" not in done.stderr
