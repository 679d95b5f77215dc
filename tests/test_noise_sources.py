"""A campaign whose batches mix re-denoised noises with plain seeds, on the digits sandbox with a known truth.

Simulated annotators (the judge, no errors) answer through the annotation service; the
records must name each candidate's source and kept noise, `verify` must pass every noise
and reject an altered kept file, plain candidates must be recorded exactly as in a
seed-only campaign, and the analysis must find the gain the judge knows is there, and
none when re-denoise is replaced by the identity.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import torch
import pytest

from goldennoise import simulate
from goldennoise.generation import models, pipeline
from goldennoise.generation import redenoise as rd
from goldennoise.generation.noises import NoiseStore
from goldennoise.generation.pipeline import GenerationParams
from goldennoise.research import analysis
from goldennoise.research import verify as verifying
from goldennoise.store.records import RecordStore

pytestmark = pytest.mark.slow
SETTINGS = dict(annotators=1, error=0.0, repeats=8, batch_size=6, overlap=0.0, noise_source="redenoise",
                noise_share=0.5, verifiers=("digits",))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    outputs = tmp_path_factory.mktemp("mixed")
    sim = simulate.simulate(outputs, **SETTINGS)
    return outputs, sim, analysis.run(outputs, with_selector=False)


def judgements(outputs):
    return [d for d in RecordStore(outputs).iter_data(kinds=("judgement",))]


def test_records_name_each_candidates_source_and_plain_ones_are_recorded_as_before(mixed):
    outputs, sim, _ = mixed
    records = judgements(outputs)
    assert len(records) == 80
    store = NoiseStore(outputs)
    seed_only = pipeline.generate(models.load_model("digits"), "a handwritten 1", [5], GenerationParams(10, 0.75, 256, 256))
    plain_keys = set(seed_only.noise[0])
    for record in records:
        blocks = [s["noise"] for s in record["samples"]]
        sourced = [b for b in blocks if "source" in b]
        assert len(sourced) == 3  # round(0.5 x 6), at positions drawn per prompt
        for block in sourced:
            assert block["source"]["name"] == "redenoise" and block["source"]["share"] == 0.5
            assert block["source"]["guidance_scale"] == 4.0 and block["source"]["inversion_guidance_scale"] == 1.0
            assert store.path(block["source_sha256"]).exists()
        for block in blocks:
            if "source" not in block:
                assert set(block) == plain_keys
    positions = {tuple(i for i, s in enumerate(r["samples"]) if "source" in s["noise"]) for r in records}
    assert len(positions) > 5  # not always the same slots


def test_verify_passes_every_noise_and_rejects_an_altered_kept_one(mixed, tmp_path):
    outputs, _, _ = mixed
    checked = verifying.check_outputs(outputs)
    counts = next(iter(checked["counts"].values()))
    assert counts["exact"] == 480 and not checked["mismatches"]
    copy = tmp_path / "copy"
    shutil.copytree(outputs, copy)
    record = judgements(copy)[0]
    block = next(s["noise"] for s in record["samples"] if "source" in s["noise"])
    path = NoiseStore(copy).path(block["source_sha256"])
    with np.load(path) as data:
        noise = data["noise"].copy()
    noise[0, 0, 0, 0] += 1e-4
    np.savez_compressed(path, noise=noise)
    checked = verifying.check_outputs(copy)
    # kept once by content: every record whose candidate started from that noise (same seed and digit) is named
    sharing = {r["record_id"] for r in judgements(copy)
               if any(s["noise"].get("source_sha256") == block["source_sha256"] for s in r["samples"])}
    assert record["record_id"] in sharing
    assert {m["record_id"] for m in checked["mismatches"]} == sharing
    assert all("altered" in m["reason"] for m in checked["mismatches"])
    path.unlink()
    assert "not under" in verifying.check_outputs(copy)["mismatches"][0]["reason"]


def test_the_analysis_finds_the_gain_the_judge_knows_and_keeps_seed_figures_to_plain_candidates(mixed):
    outputs, sim, result = mixed
    truth = sim.source_rates()
    assert truth["redenoise"][0] > truth["seed"][0] + 0.05
    group = result["results"][0]
    found = group.parts["sources"]["sources"][0]
    assert found["source"] == "redenoise" and found["candidates"] == 240 and found["plain_candidates"] == 240
    assert found["difference"] > 0 and found["ci_low"] > 0 and found["p"] < 0.05
    assert abs(found["rate"] - truth["redenoise"][0]) < 1e-9  # no annotator error: recorded = the judge's truth
    assert group.parts["rates"]["overall"]["rows"] == 240  # the seeds' analyses: plain candidates only
    assert any("noise source redenoise" in line and "people preferred it" in line for line in result["summary"])
    report = result["report"].read_text(encoding="utf-8")
    assert "<h2>Noise sources</h2>" in report and "first-step guidance boost" in report


def test_the_npz_export_carries_the_noise_each_candidate_started_from(mixed, tmp_path):
    from goldennoise.generation import latents
    from goldennoise.research import export

    outputs, _, _ = mixed
    export.export(outputs, tmp_path / "out", formats="npz")
    folder = next((tmp_path / "out" / "npz").iterdir())
    with np.load(folder / "noises.npz") as data:
        noises, seeds = data["noises"], data["seeds"]
    index = [json.loads(line) for line in (folder / "index.jsonl").read_text().splitlines()]
    assert len(index) == 480 and {row["noise_source"] for row in index} == {"seed", "redenoise"}
    store = NoiseStore(outputs)
    for row in index[:24]:
        expected = (latents.initial_noise(int(seeds[row["row"]]), (1, 1, 8, 8)).numpy() if row["noise_source"] == "seed"
                    else store.get(row["source_sha256"]))
        assert np.array_equal(noises[row["row"]], expected[0])


def test_with_the_identity_in_place_of_redenoise_the_analysis_finds_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(rd, "redenoise", lambda pipe, noises, prompt, params, *rest: noises.float().clone())
    sim = simulate.simulate(tmp_path, **SETTINGS)
    found = analysis.run(tmp_path, with_selector=False)["results"][0].parts["sources"]["sources"][0]
    assert abs(sim.source_rates()["redenoise"][0] - sim.source_rates()["seed"][0]) < 0.05
    assert not (found["p"] < 0.05 and found["ci_low"] > 0)


def test_the_npnet_export_writes_npnets_own_pairs_filtered_by_people(mixed, tmp_path):
    from goldennoise.generation import latents
    from goldennoise.research import export
    from tests.test_export import npnet_load

    outputs, sim, _ = mixed
    export.export(outputs, tmp_path / "out", formats="npnet")
    root = tmp_path / "out" / "npnet"
    (passed,) = [p for p in root.iterdir() if p.name.endswith("-redenoise")]
    (every,) = [p for p in root.iterdir() if p.name.endswith("-redenoise-all")]
    golden = sum(1 for t in sim.truth if t[5] == "redenoise" and t[4])
    original, optimized, prompts = npnet_load(passed / "npz", passed / "prompts.txt")
    assert len(original) == golden and len(npnet_load(every / "npz", every / "prompts.txt")[0]) == 240
    index = {row["file"]: row for row in map(json.loads, open(passed / "index.jsonl", encoding="utf-8"))}
    store = NoiseStore(outputs)
    for name, row in list(index.items())[:20]:
        content = np.load(passed / name)
        assert row["golden"] and row["method"]["name"] == "redenoise"
        np.testing.assert_array_equal(content["arr_0"], latents.initial_noise(row["seed"], (1, 1, 8, 8)).numpy())
        np.testing.assert_array_equal(content["arr_1"], store.get(row["source_sha256"]))
        assert not np.array_equal(content["arr_0"], content["arr_1"])
    text = (passed / "README.md").read_text()
    assert f"{golden} marked golden" in text and "The filter was human" in text



def test_pairwise_answers_in_a_campaign_with_a_noise_source_compare_the_arms_side_by_side(tmp_path):
    """Batches of 2, share 0.5: the Pairwise view shows one re-denoised and one plain candidate, unannounced; the
    judge picks the image it finds more recognisable; the analysis reports how often the sourced side won and keeps
    those answers out of the seeds' pairwise analysis."""
    from PIL import Image

    from goldennoise.annotation.access import Access
    from goldennoise.annotation.service import Caller, Service
    from goldennoise.sandbox import judge
    from goldennoise.sandbox.prompts import digit_of
    from goldennoise.store.campaign import Campaign

    prompts = tmp_path / "p.txt"
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    prompts.write_text("".join(f"{form}\n" for d in range(10)
                               for form in (f"a handwritten {d}", f"the digit {d}", names[d])))
    service = Service(tmp_path / "out", None, Access(local_only=True), prefetch=False)
    try:
        service.start(Campaign(name="pairs", model="digits", prompts=str(prompts), batch_size=2, min_view_ms=0,
                               num_inference_steps=10, noise_source="redenoise", noise_share=0.5, seed_strategy="random"))
        caller = Caller("pairs-tab")
        service.join(caller, "sim", present=False)
        screen = service.show(caller, "pairwise")
        while screen.state == "batch":
            images = [Image.open(tmp_path / "out" / path) for path in screen.batch.image_paths]
            p = judge.p_requested(images, digit_of(screen.prompt.text))
            winner = "left" if p[0] > p[1] else "right" if p[1] > p[0] else "tie"
            screen = service.answer(caller, "pairwise", screen.batch.batch_id, winner=winner).screen
    finally:
        service.close_all()
    result = analysis.run(tmp_path / "out", with_selector=False)
    (found,) = result["results"][0].parts["sources_pairwise"]
    assert found["source"] == "redenoise" and found["answers"] + found["both_bad"] == 30
    assert found["won"] > 0.5
    assert any("had a candidate from a noise source" in c for c in result["results"][0].caveats)


def _twin_campaign(outputs, answer, tmp_path, batch_size=2):
    """A same-seed campaign on the digits (each seed's x_T and x'_T side by side in Pairwise), answered by
    `answer(p_left, p_right, rng) -> winner` from the judge's probabilities of the asked digit; the screens seen."""
    from PIL import Image

    from goldennoise.annotation.access import Access
    from goldennoise.annotation.service import Caller, Service
    from goldennoise.sandbox import judge
    from goldennoise.sandbox.prompts import digit_of
    from goldennoise.store.campaign import Campaign

    prompts = tmp_path / "twins.txt"
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    prompts.write_text("".join(f"{form}\n" for d in range(10)
                               for form in (f"a handwritten {d}", f"the digit {d}", names[d])))
    service = Service(outputs, None, Access(local_only=True), prefetch=False)
    rng, seen = np.random.default_rng(7), []
    try:
        service.start(Campaign(name="twins", model="digits", prompts=str(prompts), batch_size=batch_size,
                               min_view_ms=0, num_inference_steps=10, noise_source="redenoise",
                               noise_pairing="same_seed", seed_strategy="random", verifiers=("digits",)))
        caller = Caller("twins-tab")
        service.join(caller, "sim", present=False)
        workbench = service.show(caller, "batch")
        screen = service.show(caller, "pairwise")
        while screen.state == "batch":
            seen.append(screen.batch)
            images = [Image.open(outputs / path) for path in screen.batch.image_paths]
            p = judge.p_requested(images, digit_of(screen.prompt.text))
            screen = service.answer(caller, "pairwise", screen.batch.batch_id, winner=answer(*p, rng)).screen
    finally:
        service.close_all()
    return workbench, seen


def _by_the_judge(left, right, rng):
    return "left" if left > right else "right" if right > left else "tie"


def test_same_seed_pairs_show_one_seeds_two_noises_and_people_prefer_x_prime_as_the_judge_does(tmp_path):
    """`[noise] pairing = "same_seed"`: every pair is one seed's draw x_T and its re-denoised x'_T, sides at random,
    file names that do not tell; the Workbench says to answer in Pairwise; the analysis reports how often x'_T won
    (same seed) with its verifiers' agreement; the export writes NPNet's dataset filtered by the preference, loadable
    by NPNet's loader; `train` reads the same pairs. Controls: a coin-flipping annotator, and the identity in place of
    re-denoise (two equal images), find nothing and pass no pair."""
    from goldennoise.generation import latents
    from goldennoise.research import export, train
    from tests.test_export import npnet_load

    outputs = tmp_path / "out"
    workbench, seen = _twin_campaign(outputs, _by_the_judge, tmp_path)
    assert workbench.state == "idle" and "Pairwise" in workbench.notice
    assert len(seen) == 30 and all(b.seeds[0] == b.seeds[1] for b in seen)
    sourced_left = [bool(b.noise[0].get("source")) for b in seen]
    assert all(bool(b.noise[0].get("source")) != bool(b.noise[1].get("source")) for b in seen)
    assert 5 <= sum(sourced_left) <= 25  # the source's side drawn at random
    assert all(b.noise[0]["sha256"] == b.noise[1]["sha256"] for b in seen)  # one draw, x_T, under both
    assert all(p.rsplit("/", 1)[1] == f"{b.seeds[0]}-{i}.png" for b in seen for i, p in enumerate(b.image_paths))

    result = analysis.run(outputs, with_selector=False)["results"][0]
    (found,) = result.parts["sources_pairwise"]
    assert found["pairing"] == "same seed" and found["answers"] + found["both_bad"] == 30
    assert found["won"] > 0.7 and found["p"] < 0.05 and found["ci_low"] > 0.5
    assert found["digits agrees"] > 0.9 and "clip agrees" in found  # the judge's own verifier agrees
    per_prompt = result.parts["sources_pairwise_per_prompt"]["redenoise, same seed"]
    assert len(per_prompt) == 30 and per_prompt["answers"].sum() == 30 and per_prompt["won"].isin([0, 0.5, 1]).all()
    design = dict(result.design)  # the report's opening table counts the answers analysed
    assert design["Campaign"].startswith("twins-") and design["Pairwise answers"].startswith("30")

    export.export(outputs, tmp_path / "exp", formats="npnet")
    root = tmp_path / "exp" / "npnet"
    (passed,) = [p for p in root.iterdir() if p.name.endswith("-redenoise-compared")]
    (every,) = [p for p in root.iterdir() if p.name.endswith("-redenoise-compared-all")]
    original, optimized, prompts = npnet_load(passed / "npz", passed / "prompts.txt")
    index = [json.loads(line) for line in open(passed / "index.jsonl", encoding="utf-8")]
    assert len(original) == len(index) == sum(row["preferred"] for row in map(
        json.loads, open(every / "index.jsonl", encoding="utf-8")))
    assert len(original) >= 0.7 * 30
    assert len(npnet_load(every / "npz", every / "prompts.txt")[0]) == 30
    store = NoiseStore(outputs)
    for row in index[:10]:
        content = np.load(passed / row["file"])
        assert row["winner"] == "redenoise" and row["method"]["name"] == "redenoise"
        np.testing.assert_array_equal(content["arr_0"], latents.initial_noise(row["seed"], (1, 1, 8, 8)).numpy())
        np.testing.assert_array_equal(content["arr_1"], store.get(row["source_sha256"]))
    assert "side by side" in (passed / "README.md").read_text()
    # the preference-pair folder leaves them out (they are NPNet's own pairs, above), and says so
    plain = [p for p in root.iterdir() if p.is_dir() and not p.name.endswith(("-compared", "-compared-all"))]
    assert all(not list((p / "npz").glob("*.npz")) for p in plain if (p / "npz").exists())
    export.export(outputs, tmp_path / "hub", formats="hub")
    import pandas as pd

    (parquet,) = (tmp_path / "hub" / "hub").rglob("pairwise-*/*.parquet")
    hub = pd.read_parquet(parquet, columns=["seed_0", "seed_1", "noise_source", "noise_source_0", "noise_source_1"])
    assert (hub["seed_0"] == hub["seed_1"]).all() and set(hub["noise_source"]) <= {"redenoise vs seed",
                                                                                   "seed vs redenoise"}
    assert (hub["noise_source"] == hub["noise_source_0"] + " vs " + hub["noise_source_1"]).all()
    data = train.pairs(outputs)
    assert len(data["golden"]) == 30 and int(data["golden"].sum()) == len(original)

    coin = tmp_path / "coin"
    _twin_campaign(coin, lambda left, right, rng: ("left", "right")[int(rng.integers(2))], tmp_path)
    (null,) = analysis.run(coin, with_selector=False)["results"][0].parts["sources_pairwise"]
    assert not (null["p"] < 0.05 and null["ci_low"] > 0.5)


def test_a_same_seed_campaign_refuses_the_workbench_by_api_and_an_administrators_pair_is_one_seed_twice(tmp_path):
    from goldennoise.annotation.access import Access
    from goldennoise.annotation.service import Caller, Service
    from goldennoise.errors import UserError
    from goldennoise.store.campaign import Campaign

    prompts = tmp_path / "p.txt"
    prompts.write_text("".join(f"a handwritten {d}\n" for d in range(10)))
    service = Service(tmp_path / "out", None, Access(local_only=True), prefetch=False)
    try:
        service.start(Campaign(name="twins", model="digits", prompts=str(prompts), batch_size=2, min_view_ms=0,
                               num_inference_steps=4, noise_source="redenoise", noise_pairing="same_seed"))
        caller = Caller("api-client")
        with pytest.raises(UserError, match="Pairwise"):
            service.next_prompt(caller, "batch", annotator="bot")
        assert service.next_prompt(caller, "pairwise", annotator="bot").state == "held"
        queued = service.make_batch(caller, mode="pairwise").batch
        made = service.make_batch(caller, prompt="a handwritten 3", mode="pairwise").batch
        for batch in (queued, made):
            assert batch.seeds[0] == batch.seeds[1] and len(batch.seeds) == 2
            assert sorted(bool(b.get("source")) for b in batch.noise) == [False, True]
        with pytest.raises(UserError, match="a pair is two seeds"):
            service.make_batch(caller, prompt="a handwritten 3", seeds=[1], mode="pairwise")
        bench = service.make_batch(caller, prompt="a handwritten 3", mode="batch").batch  # plain, distinct seeds
        assert len(set(bench.seeds)) == 2 and not any(b.get("source") for b in bench.noise)
        service.answer(caller, "pairwise", made.batch_id, winner="right")
        service.answer(caller, "batch", bench.batch_id, golden=[bench.seeds[0]])
    finally:
        service.close_all()
    kinds = [r["kind"] for r in RecordStore(tmp_path / "out").iter_data()]
    assert kinds == ["pairwise", "judgement"]


def test_same_seed_pairs_with_the_identity_for_redenoise_are_two_equal_images_and_pass_nothing(tmp_path, monkeypatch):
    from goldennoise.research import export

    monkeypatch.setattr(rd, "redenoise", lambda pipe, noises, prompt, params, *rest: noises.float().clone())
    outputs = tmp_path / "out"
    _, seen = _twin_campaign(outputs, _by_the_judge, tmp_path)
    assert all(np.array_equal(np.asarray(Image_open(outputs / b.image_paths[0])),
                              np.asarray(Image_open(outputs / b.image_paths[1]))) for b in seen[:5])
    (found,) = analysis.run(outputs, with_selector=False)["results"][0].parts["sources_pairwise"]
    assert found["won"] == 0.5 and found["p"] > 0.5  # every answer a tie
    export.export(outputs, tmp_path / "exp", formats="npnet")
    names = [p.name for p in (tmp_path / "exp" / "npnet").iterdir()]
    assert any(n.endswith("-redenoise-compared-all") for n in names)
    assert not any(n.endswith("-redenoise-compared") for n in names)


def Image_open(path):
    from PIL import Image

    return Image.open(path).convert("L")


def test_the_noise_model_trains_the_same_under_torchrun_on_two_processes(mixed, tmp_path):
    """`goldennoise train` under torchrun (2 CPU processes over gloo, as `accelerate launch` runs it on GPUs): each
    process takes half of the pairs and the gradients are averaged, so the checkpoint is the one-process one up to
    the order of float sums; one file is written, its card says two processes."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from safetensors.torch import load_file

    from goldennoise.generation import noise_model
    from goldennoise.research import train

    outputs, _, _ = mixed
    one = train.train(outputs, tmp_path / "one.safetensors", epochs=120, log=None)
    torchrun = Path(sys.executable).with_name("torchrun")
    run = subprocess.run([str(torchrun), "--nproc_per_node", "2", "-m", "goldennoise.cli", "train", str(outputs),
                          "--out", str(tmp_path / "two.safetensors"), "--epochs", "120"],
                         cwd=tmp_path, env={**os.environ, "GOLDENNOISE_NO_BAR": "1"}, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert run.stdout.count("noise model written") == 1
    card = noise_model.load(tmp_path / "two.safetensors")[1]["card"]
    assert card["processes"] == 2 and one["processes"] == 1 and card["pairs"] == one["pairs"]
    a, b = load_file(str(tmp_path / "one.safetensors")), load_file(str(tmp_path / "two.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)
    held_one, held_two = one["held_out"], card["held_out"]
    assert abs(held_one["network_error"] - held_two["network_error"]) < 0.05 * held_one["network_error"]
