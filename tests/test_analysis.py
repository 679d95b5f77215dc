"""The research side on a dataset made by the app's own loop, with a planted noise signal."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from goldennoise import answers, dataset, export, noise, seeds, session
from goldennoise.analysis import __main__ as analysis_cli
from goldennoise.analysis import analyze, report
from goldennoise.engine import Engine
from goldennoise.records import RecordStore

ALL_FIGURES = {"golden_rates", "clip_scores", "effect_sizes", "noise_tsne", "noise_umap", "clusters", "clip_tsne",
               "seed_rates", "selector_roc"}


@pytest.fixture(scope="module")
def result(planted):
    return analyze(planted[0])


def test_every_figure_and_section_is_there(result, planted):
    assert set(result.figures) == ALL_FIGURES
    assert all(png.startswith(b"\x89PNG") for png in result.figures.values())
    html = report.render(result, "planted")
    for section in ("Dataset", "Does CLIP agree", "Golden vs bad noise", "Embeddings and clusters",
                    "Are some seeds good for every prompt?", "Seed selector", "Agreement between annotators"):
        assert section in html
    assert html.count("<img") == len(ALL_FIGURES)


def test_selector_recovers_the_planted_signal_and_the_control_stays_at_chance(result):
    table = result.selector_results.set_index(["model", "labels"])
    real = table.loc[("logistic regression", "real")]
    control = table.loc[("logistic regression", "shuffled within prompt (control)")]
    assert real["ci_low"] > 0.8  # held out, grouped by prompt
    assert control["ci_low"] < 0.5 < control["ci_high"] and abs(control["held_out_auc"] - 0.5) < 0.12
    assert real["prompts"] == 40


def test_noise_statistics_find_the_planted_feature(result):
    top = result.noise_stats.iloc[0]
    assert top["feature"] == "ch0_mean" and top["d_ci_low"] > 1.0


def test_summary_clip_seeds_and_agreement(result):
    overall = result.summary["overall"].iloc[0]
    assert overall["prompts_judged"] == 40 and overall["annotators"] == 2
    assert 0.15 < overall["golden_rate"] < 0.6
    assert result.clip["judgements_used"] > 10 and 0 <= result.clip["mean_within_prompt_auc"] <= 1
    assert result.seed_test["seeds"] == 24 and result.seed_test["p_value"] < 1e-6  # the rule favours some seeds
    pair = result.agreement.iloc[0]
    assert pair["shared_prompts"] >= 3 and pair["cohens_kappa"] > 0.5


def test_cli_writes_report_and_selector_used_by_prefiltering(planted, tiny_model, tiny_clip, tmp_path):
    outputs, _ = planted
    assert analysis_cli.main([str(outputs), "--no-clip-embeddings"]) == 0
    assert (outputs / "analysis" / "report.html").stat().st_size > 50_000
    engine = Engine(outputs)
    engine.model, engine.clip = tiny_model, tiny_clip
    try:
        state = session.new_session(dataset_prompts(), "sel")
        settings = planted_settings(candidates=8, prefilter="selector")
        session.apply_settings(engine, state, settings)
        batch = session.generate(engine, state)
        ranked = batch.prefilter["scores"]
        assert len(batch.seeds) == 4 and len(batch.prefilter["hidden"]) == 4
        assert [ranked[str(s)] for s in batch.seeds] == sorted((ranked[str(s)] for s in batch.seeds), reverse=True)
        assert min(ranked[str(s)] for s in batch.seeds) >= max(h["rank_score"] for h in batch.prefilter["hidden"])
        record = answers.submit(RecordStore(tmp_path), state, batch.seeds[:1])
        hidden = record.prefilter["hidden"][0]
        assert noise.remake_noise(hidden["seed"], hidden["noise"]).shape == (1, 4, 8, 8)
        assert set(record.seeds).isdisjoint(h["seed"] for h in record.prefilter["hidden"])
    finally:
        engine.close()


def dataset_prompts():
    from goldennoise.prompts import parse_prompts

    return parse_prompts(b"a new prompt\nanother one\n", "new.txt")


def planted_settings(**changes) -> session.Settings:
    settings = session.default_settings("tiny-flux")
    settings.height = settings.width = 64
    for key, value in changes.items():
        setattr(settings, key, value)
    return settings


def test_prefilter_by_clip_shows_the_best_and_records_the_hidden(engine, tmp_path):
    state = session.new_session(dataset_prompts(), "clipper")
    session.apply_settings(engine, state, planted_settings(candidates=6, batch_size=3, prefilter="clip"))
    batch = session.generate(engine, state)
    hidden_scores = [h["clip_score"] for h in batch.prefilter["hidden"]]
    assert batch.clip_scores == sorted(batch.clip_scores, reverse=True) and min(batch.clip_scores) >= max(hidden_scores)
    with pytest.raises(ValueError, match="candidates must be 0"):
        session.apply_settings(engine, state, planted_settings(candidates=3, batch_size=4))
    with pytest.raises(ValueError, match="needs CLIP scores"):
        session.apply_settings(engine, state, planted_settings(candidates=8, use_clip=False))


def test_exports_are_read_by_datasets_pandas_and_numpy(planted, tmp_path):
    datasets = pytest.importorskip("datasets")
    outputs, store = planted
    done = export.export(outputs, tmp_path / "exports")
    table = dataset.sample_table(store.read().records)
    loaded = datasets.load_dataset("imagefolder", data_dir=str(done["imagefolder"]), split="train")
    assert loaded.num_rows == len(table) and sum(loaded["golden"]) == int(table["golden"].sum())
    assert loaded[0]["image"].size == (64, 64)
    frame = pd.read_parquet(done["table"])
    assert len(frame) == len(table) and pd.read_csv(tmp_path / "exports" / "samples.csv").shape == frame.shape
    arrays = np.load(done["npz"])
    index = [json.loads(line) for line in (tmp_path / "exports" / "noises.index.jsonl").read_text().splitlines()]
    assert arrays["noises"].shape == (len(table), 4, 8, 8)
    for row in index[:: max(1, len(index) // 10)]:
        noise_row = torch.from_numpy(arrays["noises"][row["row"]][None])
        assert noise.noise_sha256(noise_row) == row["noise_sha256"]
        assert bool(arrays["golden"][row["row"]]) == row["golden"]
    pairs = np.load(done["pairs"])
    expected = sum(int(g.sum()) * int((~g).sum()) for _, g in table.groupby("record_id")["golden"])
    assert pairs["winner"].shape == pairs["loser"].shape == (expected, 4, 8, 8)


def test_packed_noises_match_what_the_pipeline_uses(planted, tiny_model):
    table = dataset.sample_table(planted[1].read().records).head(3)
    packed = dataset.load_noises(table, packed=True)
    pipe = tiny_model.pipe
    latents, _ = pipe.prepare_latents(3, 4, 64, 64, torch.float32, "cpu", [noise.generator(int(s)) for s in table["seed"]])
    assert np.array_equal(packed[:, 0], latents.numpy())


def test_pool_strategy_reuses_a_fixed_pool_reproducibly():
    draws = [seeds.draw_seeds("pool", 4, i, 100, 12) for i in range(30)]
    assert all(set(d) <= set(range(100, 112)) and len(set(d)) == 4 for d in draws)
    assert draws == [seeds.draw_seeds("pool", 4, i, 100, 12) for i in range(30)]
    assert len({tuple(d) for d in draws}) > 20
    with pytest.raises(ValueError, match="pool_size must lie"):
        seeds.draw_seeds("pool", 8, 0, 0, 4)


def test_analysis_refuses_an_empty_folder(tmp_path):
    with pytest.raises(ValueError, match="no judgements"):
        analyze(tmp_path)
    assert analysis_cli.main([str(tmp_path)]) == 2


def test_analysis_and_export_through_the_app(planted, tiny_model, tiny_clip, three_prompts):
    from gradio_client import Client

    from goldennoise import ui

    outputs, store = planted
    engine = Engine(outputs)
    engine.model, engine.clip = tiny_model, tiny_clip
    demo = ui.build_demo(engine, store, three_prompts, session.default_settings("tiny-flux"))
    _, url, _ = ui.launch(demo, outputs, prevent_thread_lock=True, quiet=True, server_name="127.0.0.1")
    try:
        client = Client(url, verbose=False)
        summary, figures, selector_table, report_path = client.predict(True, api_name="/analysis")
        assert summary.startswith("**40 prompts**") and "held-out AUC" in summary
        assert len(figures) == len(ALL_FIGURES) and report_path.endswith(".html")
        assert len(selector_table["data"]) == 4
        note, files = client.predict(["table", "npz"], api_name="/export")
        assert "table" in note and sorted(f.rsplit("/", 1)[-1] for f in files) == ["noises.npz", "samples.parquet"]
    finally:
        demo.close()
        engine.close()
