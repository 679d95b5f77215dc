"""The Python facade: the app's loop from a script, no Gradio, no background thread unless asked."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from goldennoise.errors import UserError
from goldennoise.facade import Collector
from goldennoise.generation.latents import initial_noise
from goldennoise.store.records import RecordStore
from goldennoise.store import schema

BIG = [2**62 + 1, 2**53 + 1, 3]  # beyond float precision and beyond uint32: int64 end to end


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    gn = Collector(tmp_path_factory.mktemp("facade") / "outputs", model="tiny-flux", height=64, width=64,
                   num_inference_steps=2, annotator="script")
    yield gn
    gn.close()


def ours() -> set:
    """Threads that keep a process alive or are named by GoldenNoise (tqdm's daemon monitor is not ours)."""
    return {t for t in threading.enumerate() if not t.daemon or t.name.startswith("goldennoise")}


def test_generate_judge_and_read_back_without_threads(collector):
    before = ours()
    batch = collector.generate("a red fox in the snow", seeds=BIG)
    record = collector.judge(batch, golden=[BIG[0]], visible_ms=1200)
    assert ours() == before
    assert batch.seeds == BIG and len(batch.image_paths) == 3 and len(batch.clip_scores) == 3
    assert record.campaign == collector.campaign and record.golden_seeds == [BIG[0]] and record.bad_seeds == BIG[1:]
    assert RecordStore(collector.outputs).read().records[-1].record_id == record.record_id
    table = collector.table()
    rows = table[table["record_id"] == record.record_id]
    assert rows["seed"].tolist() == BIG and rows["seed"].dtype == "int64"
    assert rows["golden"].tolist() == [True, False, False] and rows["visible_ms"].iloc[0] == 1200


def test_second_prompt_gets_the_next_index_and_exports_load(collector, tmp_path):
    import datasets

    first = collector.judge(collector.generate("a lighthouse at dusk", seeds=[5, 6]), golden=[6])
    again = collector.judge(collector.generate("a lighthouse at dusk", seeds=[7, 8]), golden=[])
    assert first.prompt.index == again.prompt.index == 1 and first.prompt.id == again.prompt.id
    result = collector.export(tmp_path, formats=["hub", "npz", "npnet", "table"])
    ds = datasets.load_dataset(str(result["written"]["hub"]), split="train", cache_dir=str(tmp_path / "cache"))
    assert isinstance(ds.features["golden"], datasets.ClassLabel)
    assert set(BIG) <= set(ds["seed"])  # int64 seeds survive the hub dataset exactly
    assert 1200 in ds["visible_ms"]
    arrays = np.load(next((tmp_path / "npz").glob("*/noises.npz")))
    assert arrays["seeds"].dtype == np.int64 and set(BIG) <= set(arrays["seeds"].tolist())
    big = arrays["seeds"].tolist().index(BIG[0])
    np.testing.assert_array_equal(arrays["noises"][big], initial_noise(BIG[0], (1, 4, 8, 8)).numpy()[0])


def test_a_batch_is_judged_once_relabelled_or_withdrawn(collector):
    batch = collector.generate("a windmill in fog", seeds=[21, 22, 23])
    first = collector.judge(batch, golden=[22])
    with pytest.raises(UserError, match="already judged it"):
        collector.judge(batch, golden=[21, 22])
    second = collector.judge(batch, golden=[21, 22], relabel=True)
    assert second.supersedes == first.record_id
    rows = collector.table()
    rows = rows[rows["prompt"] == "a windmill in fog"]
    assert sorted(rows["seed"]) == [21, 22, 23] and sorted(rows[rows["golden"]]["seed"]) == [21, 22]
    collector.undo(second)  # undoing the relabel: the answer it replaced counts again
    rows = collector.table()
    assert rows[rows["prompt"] == "a windmill in fog"]["record_id"].unique().tolist() == [first.record_id]
    with pytest.raises(UserError, match="not a live answer"):
        collector.undo(second)
    with pytest.raises(UserError, match="only its author"):
        collector.undo(collector.judge(batch, golden=[], annotator="someone else"))
    drawn = collector.generate("a windmill in fog")  # seeds=None: the campaign's seed strategy chooses them
    assert len(drawn.seeds) == 4 and collector.judge(drawn, golden=[]).seed_strategy["name"] == "random"


def test_submit_runs_in_the_background_only_when_asked(collector):
    future = collector.submit("a bowl of ramen", seeds=[11, 12])
    assert future.result(timeout=120).seeds == [11, 12]
    assert any(t.name.startswith("goldennoise-facade") for t in threading.enumerate())
    collector.close()
    assert not any(t.name.startswith("goldennoise-facade") for t in threading.enumerate())


def test_bad_inputs_are_refused_naming_the_field(collector):
    batch = collector.generate("a quiet pond", seeds=[1, 2])
    with pytest.raises(UserError, match="golden"):
        collector.judge(batch, golden=[99])
    with pytest.raises(UserError, match="annotator"):
        collector.judge(batch, golden=[], annotator="")
    with pytest.raises(UserError, match="seed"):
        collector.generate("a quiet pond", seeds=[1, 1])
    with pytest.raises(UserError, match="prompt"):
        collector.generate("   ", seeds=[1])
    with pytest.raises(UserError, match="steps"):
        Collector(collector.outputs, steps=4)


def test_a_script_and_the_app_write_records_of_the_same_form(tmp_path):
    """The same campaign judged from the script API and from the app's service: every field alike but ids, times,
    the tab's id and how long the batch was on screen (the image files of two batches differ by their folder)."""
    from goldennoise.annotation.service import Caller, Service
    from goldennoise.store.campaign import Campaign
    from goldennoise.store.prompts import PromptSet

    (tmp_path / "p.txt").write_text("a harbour at night\n")
    with Collector(tmp_path / "script", model="tiny-flux", height=64, width=64, num_inference_steps=2,
                   campaign="same", seed_strategy="sequential", start_seed=40) as gn:
        scripted = gn.judge(gn.generate("a harbour at night"), golden=[41], visible_ms=500)
    service = Service(tmp_path / "app", prefetch=False)
    service.start(Campaign(name="same", model="tiny-flux", height=64, width=64, num_inference_steps=2,
                           prompts="(prompts given in the script)", seed_strategy="sequential", start_seed=40,
                           min_view_ms=0), prompt_set=PromptSet([], "script"))
    admin = Caller("app-tab")
    service.join(admin, "script", present=False)
    screen = service.make_batch(admin, "a harbour at night")
    app = service.answer(admin, "batch", screen.batch.batch_id, golden=[41], visible_ms=500).record
    service.close_all()
    a, b = schema.dump(scripted), schema.dump(app)
    varying = {"record_id", "created_at", "session_id", "batch_id", "timing", "samples"}
    assert a.keys() == b.keys() and {k for k in a if a[k] != b[k]} <= varying, \
        {k for k in a if a[k] != b[k]} - varying
    for sa, sb in zip(a["samples"], b["samples"], strict=True):
        assert {k for k in sa if sa[k] != sb[k]} == {"image_path"}
    assert a["timing"].keys() == b["timing"].keys()


def test_the_facade_never_imports_gradio():
    import subprocess

    code = "import sys, goldennoise.facade, goldennoise.research.export; print('gradio' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
