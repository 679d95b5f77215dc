"""Exports against outside oracles: `datasets.load_dataset`, NPNet's own loader logic, the re-made noises.

One outputs folder, made once by driving the app's real annotation loop, holds:
- campaign "hostile" (tiny-flux 64x64) whose prompt ids are an absolute path, `../`
  climbs and a 300-character id, with captions full of quotes, backslashes and
  unicode; two annotators; an undo (retraction), a relabel (supersession), a second
  opinion, and four pairwise answers (left, right, tie, both_bad);
- campaign "sd" (tiny-sd 64x64): another model at the *same* noise shape (1, 4, 8, 8);
- campaign "prefiltered" (tiny-flux): 6 candidates per prompt, 4 shown (hidden candidates).
"""

from __future__ import annotations

import ast
import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from goldennoise.annotation.service import Caller, Service
from goldennoise.errors import UserError
from goldennoise.generation.latents import initial_noise
from goldennoise.research import card, dataset, export
from goldennoise.research.verify import group_name
from goldennoise.store.campaign import Campaign
from goldennoise.store.records import RecordStore

HOSTILE_IDS = ["/etc/goldennoise-export-test", "../../escaped-by-export", "x" * 300, "..", "a/b\\c:d*e?",
               "<img src=x onerror=alert(1)>"]
CAPTIONS = ['a "quoted" fox', "a back\\slash and 'single' quotes", "ünïcödé 日本語 🦊 emoji",
            "a ''' triple and {'index': 9} dict", "tab\tand  spaces", "plain prompt"]
_BUILT: dict[str, Path] = {}


def label_all(service: Service, annotators=("ann", "bob")) -> dict:
    """Judge every prompt of the running campaign: golden = the first half of each batch's seeds."""
    callers = {name: Caller(f"tab-{name}") for name in annotators}
    screens = {name: service.join(caller, name) for name, caller in callers.items()}
    while any(s.state == "batch" for s in screens.values()):
        for name, screen in list(screens.items()):
            if screen.state == "batch":
                seeds = screen.batch.seeds
                screens[name] = service.answer(callers[name], "batch", screen.batch.batch_id,
                                               golden=seeds[: len(seeds) // 2]).screen
    return callers


def _campaign(tmp: Path, name: str, model: str, prompt_file: Path, **values) -> Campaign:
    return Campaign(name=name, model=model, height=64, width=64, num_inference_steps=2, prompts=str(prompt_file),
                    batch_size=4, seed_strategy="pool", start_seed=0, pool_size=12, min_view_ms=0, **values)


def build_corpus(root: Path) -> Path:
    """The outputs folder described in the module docstring (made once per test session)."""
    if "corpus" in _BUILT:
        return _BUILT["corpus"]
    outputs = root / "outputs"
    hostile = root / "hostile.csv"
    with open(hostile, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "prompt"])
        writer.writerows(zip(HOSTILE_IDS, CAPTIONS))
    service = Service(outputs, prefetch=False)
    try:
        service.start(_campaign(root, "hostile", "tiny-flux", hostile))
        tabs = label_all(service)
        ann, bob = tabs["ann"], tabs["bob"]
        first, second = [r for r in service.store.read().records if r.annotator == "ann"][:2]
        # ann undoes her last answer and answers again, relabels her first; bob re-judges her second.
        _, screen = service.undo(ann, "batch")
        service.answer(ann, "batch", screen.batch.batch_id, golden=screen.batch.seeds[:1])
        screen = service.relabel(ann, first.record_id)
        service.answer(ann, "batch", screen.batch.batch_id, golden=screen.batch.seeds[1:])
        screen = service.relabel(bob, second.record_id)
        service.answer(bob, "batch", screen.batch.batch_id, golden=screen.batch.seeds[:3])
        for winner in ("left", "right", "tie", "both_bad"):
            screen = service.show(ann, "pairwise")
            service.answer(ann, "pairwise", screen.batch.batch_id, winner=winner)
        three = root / "three.txt"
        three.write_text("a red fox\na lighthouse at dusk\na bowl of ramen\n", encoding="utf-8")
        service.start(_campaign(root, "sd", "tiny-sd", three))
        label_all(service, ("ann",))
        service.start(_campaign(root, "prefiltered", "tiny-flux", three, candidates=6, prefilter="clip", explore=1))
        label_all(service, ("bob",))
    finally:
        service.close_all()
    _BUILT["corpus"] = outputs
    return outputs


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    return build_corpus(tmp_path_factory.mktemp("export-corpus"))


@pytest.fixture(scope="session")
def exported(corpus, tmp_path_factory) -> dict:
    """Every format of the corpus, exported once."""
    return export.export(corpus, tmp_path_factory.mktemp("export-dest") / "exports", export.FORMATS)


def live_table(outputs: Path):
    return dataset.sample_table(RecordStore(outputs).read().records)


def load(hub: Path, config: str, cache: Path):
    import datasets

    return datasets.load_dataset(str(hub), config, split="train", cache_dir=str(cache))


def test_hub_configs_load_with_classlabel_and_stratified_split(exported, corpus, tmp_path):
    import datasets

    hub = exported["written"]["hub"]
    table = live_table(corpus)
    samples = sorted(c for c in os.listdir(hub / "data") if c.startswith("samples-"))
    assert len(samples) == 3 and len(exported["groups"]) == 3  # three campaigns, three configurations
    total = 0
    for config in samples:
        ds = load(hub, config, tmp_path)
        assert isinstance(ds.features["golden"], datasets.ClassLabel)
        assert ds.features["golden"].names == ["bad", "golden"]
        assert ds.features["seed"] == datasets.Value("int64")
        assert len(set(ds["configuration"])) == 1 and len(set(ds["campaign"])) == 1
        split = ds.train_test_split(test_size=0.5, stratify_by_column="golden", seed=0)
        assert split["train"].num_rows + split["test"].num_rows == len(ds)
        row = ds[0]
        assert row["image"].size == (64, 64)
        assert row["noise_shape"] == [1, 4, 8, 8] and row["family"] in ("flux1", "sd")
        assert json.loads(row["noise_provenance"])["sha256"] == row["noise_sha256"]
        expected = table[table["record_id"] == row["record_id"]]
        assert row["seed"] in set(expected["seed"]) and row["model_id"] == expected["model_id"].iloc[0]
        total += len(ds)
    assert total == len(table)


def test_only_live_answers_are_exported(exported, corpus, tmp_path):
    records = RecordStore(corpus).read().records
    retracted = {r.retracts for r in records if r.kind == "retraction"}
    superseded = {r.supersedes for r in records if getattr(r, "supersedes", None)}
    second = [r for r in records if getattr(r, "second_opinion_of", None)]
    assert retracted and superseded and second
    ids = set()
    for config in os.listdir(exported["written"]["hub"] / "data"):
        ids |= set(load(exported["written"]["hub"], config, tmp_path)["record_id"])
    assert not ids & (retracted | superseded)
    assert second[0].record_id in ids and second[0].second_opinion_of in ids  # both opinions count
    text = (exported["written"]["hub"] / "README.md").read_text(encoding="utf-8")
    assert "retracted: 1; superseded by a relabel: 1" in text and "(1 second opinions)" in text


def test_pairwise_config_has_pick_a_pic_layout(exported, tmp_path):
    hub = exported["written"]["hub"]
    [config] = [c for c in os.listdir(hub / "data") if c.startswith("pairwise-")]
    ds = load(hub, config, tmp_path)
    assert {"caption", "image_0", "image_1", "label_0", "label_1"} <= set(ds.column_names)
    labels = {row["winner"]: (row["label_0"], row["label_1"]) for row in ds}
    assert labels == {"left": (1.0, 0.0), "right": (0.0, 1.0), "tie": (0.5, 0.5), "both_bad": (0.0, 0.0)}
    assert ds[0]["image_0"].size == (64, 64) and ds[0]["caption"] in CAPTIONS
    assert ds.features["seed_0"].dtype == "int64"


def test_card_states_counts_and_how_to_remake(exported, corpus):
    text = (exported["written"]["hub"] / "README.md").read_text(encoding="utf-8")
    front = text.split("---\n")[1]
    assert "configs:" in front and "class_label" in front and "license:" in front and "task_categories" in front
    table = live_table(corpus)
    for group in exported["groups"]:
        rows = table[[group_name(c, k) == group for c, k in zip(table["campaign"],
                                                                             table["configuration"])]]
        golden = int(rows["golden"].sum())
        assert f"| `{group}` | {len(rows)} | {golden} | {len(rows) - golden} |" in text
    assert "pack_2x2" in text and "init_noise_sigma" in text and "human-preference pairs" in text
    judgements = table["record_id"].nunique()
    assert f"Live: {judgements} judgements (1 second opinions), 4 pairwise answers, 0 skips" in text
    for prompt_id in HOSTILE_IDS:  # prompts and their ids stay out of the card
        assert prompt_id not in text


def test_models_with_the_same_noise_shape_stay_apart_unless_pooled(corpus, exported, tmp_path):
    groups = exported["groups"]
    by_model = {}
    for group in groups:
        index = [json.loads(line) for line in open(exported["written"]["npz"] / group / "index.jsonl")]
        by_model.setdefault(index[0]["model_id"], set()).add(tuple(index[0]["noise_shape"]))
        assert len({r["model_id"] for r in index}) == 1
    assert by_model["tiny-flux"] == by_model["tiny-sd"] == {(1, 4, 8, 8)}
    pooled = export.export(corpus, tmp_path / "pooled", ["npz", "hub"], pool=True)
    assert pooled["groups"] == ["pooled"]
    arrays = np.load(tmp_path / "pooled" / "npz" / "pooled" / "noises.npz")
    assert len(arrays["seeds"]) == len(live_table(corpus))
    assert sorted(os.listdir(tmp_path / "pooled" / "hub" / "data")) == ["pairwise-pooled", "samples-pooled"]


def npnet_load(data_dir: Path, prompt_path: Path):
    """NPNet's `NoiseDataset(pick=True)` + `load_pick_prompt`, as written in its training code."""
    data_dict = {}
    with open(prompt_path, "r", encoding="utf-8") as file:
        for row in file.readlines():
            row = eval(row)  # noqa: S307 - exactly what NPNet does
            data_dict[row["index"]] = row["caption"]
    original, optimized, prompts = [], [], []
    for path in [os.path.join(data_dir, p) for p in os.listdir(data_dir)]:
        content = np.load(path)
        original.append(content["arr_0"].squeeze())
        optimized.append(content["arr_1"].squeeze())
        prompts.append(data_dict[content["arr_2"].item()])
    return original, optimized, prompts


def test_npnet_export_loads_with_npnet_loader(exported, corpus):
    table = live_table(corpus)
    golden = {(r, s): g for r, s, g in zip(table["record_id"], table["seed"], table["golden"])}
    sources = set()
    for group in exported["groups"]:
        folder = exported["written"]["npnet"] / group
        original, optimized, prompts = npnet_load(folder / "npz", folder / "prompts.txt")
        assert original and all(a.shape == (4, 8, 8) and a.dtype == np.float32 for a in original + optimized)
        index = {row["file"]: row for row in map(json.loads, open(folder / "index.jsonl", encoding="utf-8"))}
        assert len(index) == len(original)
        captions = {c["index"]: c["caption"] for c in map(ast.literal_eval, open(folder / "prompts.txt",
                                                                                    encoding="utf-8"))}
        for name, row in index.items():
            content = np.load(folder / name)
            assert content["arr_2"].item() == row["npnet_index"] == row["prompt_index"]  # the campaign's index
            assert captions[row["npnet_index"]] == table.loc[table["prompt_id"] == row["prompt_id"], "prompt"].iloc[0]
            assert row["prompt_index"] == table.loc[table["prompt_id"] == row["prompt_id"], "prompt_index"].iloc[0]
            np.testing.assert_array_equal(content["arr_0"], initial_noise(row["loser_seed"], (1, 4, 8, 8)).numpy())
            np.testing.assert_array_equal(content["arr_1"], initial_noise(row["winner_seed"], (1, 4, 8, 8)).numpy())
            if row["source"].startswith("judgement"):
                assert golden[(row["record_id"], row["winner_seed"])] and not golden[(row["record_id"],
                                                                                       row["loser_seed"])]
            assert {"model_id", "revision", "packing", "scale", "pipeline_dtype", "noise_shape"} <= set(row)
            sources.add(row["source"])
    assert sources == {"judgement: golden x bad", "pairwise: left won", "pairwise: right won"}
    assert "NOT" in export.__doc__ and "human-preference pairs" in card.NPNET_README


def test_npnet_numbers_are_the_campaign_index_unless_ambiguous():
    pairs = [{"prompt_id": "a", "prompt": "A", "prompt_index": 7}, {"prompt_id": "b", "prompt": "B", "prompt_index": 2},
             {"prompt_id": "a", "prompt": "A", "prompt_index": 7}]
    assert export.npnet_prompt_numbers(pairs) == {("a", "A"): 7, ("b", "B"): 2}
    pooled = pairs + [{"prompt_id": "c", "prompt": "C", "prompt_index": 2}]  # two campaigns' prompt 2
    assert export.npnet_prompt_numbers(pooled) == {("a", "A"): 0, ("b", "B"): 1, ("c", "C"): 2}


@pytest.mark.parametrize("caption", CAPTIONS + ["\\u2028 \u2028 line\u2029sep \x85 nel", "new\nline\rreturn",
                                               "lone \ud800 surrogate", '\\" escaped \\\\" ', "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \x00 nul"])
def test_prompt_lines_round_trip_through_eval(caption, tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text(export.prompt_line(7, caption) + "\n" + export.prompt_line(8, "next") + "\n",
                    encoding="utf-8", errors="strict")
    rows = [eval(row) for row in open(path, "r", encoding="utf-8").readlines()]  # noqa: S307 - NPNet's reader
    assert rows == [{"index": 7, "caption": caption}, {"index": 8, "caption": "next"}]


def test_npz_arrays_are_verified_noises_with_int64_seeds(exported, corpus):
    for group in exported["groups"]:
        arrays = np.load(exported["written"]["npz"] / group / "noises.npz")
        noises, golden, seeds = arrays["noises"], arrays["golden"], arrays["seeds"]
        assert noises.dtype == np.float32 and golden.dtype == bool and seeds.dtype == np.int64
        assert noises.shape == (len(seeds), 4, 8, 8)
        for noise, seed in zip(noises, seeds):
            np.testing.assert_array_equal(noise, initial_noise(int(seed), (1, 4, 8, 8)).numpy()[0])
        index = [json.loads(line) for line in open(exported["written"]["npz"] / group / "index.jsonl")]
        assert [r["seed"] for r in index] == seeds.tolist() and [r["golden"] for r in index] == golden.tolist()
        assert {"model_id", "revision", "packing", "scale", "pipeline_dtype", "noise_shape"} <= set(index[0])


def test_table_export_is_flat_with_int64_seeds(exported):
    import pandas as pd

    group = next(g for g in exported["groups"] if g.startswith("prefiltered"))
    folder = exported["written"]["table"] / group
    samples = pd.read_parquet(folder / "samples.parquet")
    assert samples["seed"].dtype == "int64"
    assert "noise" not in samples.columns and not any(isinstance(v, dict) for v in samples.iloc[0])
    assert {"family", "packing", "scale", "pipeline_dtype", "noise_shape", "noise_sha256", "model_id"} <= set(samples)
    assert samples["noise_shape"].iloc[0] == "1x4x8x8"
    candidates = pd.read_parquet(folder / "candidates.parquet")
    assert (candidates["slot"] == "hidden").sum() == 2 * 3 and candidates["seed"].dtype == "int64"
    assert len(pd.read_csv(folder / "samples.csv")) == len(samples)
    pairwise = pd.read_parquet(next(exported["written"]["table"].glob("hostile*")) / "pairwise.parquet")
    assert pairwise["left_seed"].dtype == "int64" and "left_noise_sha256" in pairwise


def test_the_table_written_a_few_rows_at_a_time_equals_the_table_written_at_once(corpus, exported, tmp_path,
                                                                                  monkeypatch):
    """The chunked writer (bounded memory at a million answers) against the whole table flattened and written by
    pandas at once: the same parquet frames and the same CSV text, for every group and kind."""
    import pandas as pd

    monkeypatch.setattr(export, "TABLE_CHUNK", 3)
    chunked = export.export(corpus, tmp_path / "chunked", formats="table")["written"]["table"]
    data = export.checked(corpus)
    compared = dictionaries = 0
    for name, group in data.groups().items():
        for kind, table in (("samples", group.samples), ("pairwise", group.pairs), ("candidates", group.candidates)):
            if table.empty:
                continue
            whole = export.flat(table, kind)
            read = pd.read_parquet(chunked / group.name / f"{kind}.parquet")
            def values(frame):  # the cells (a category column may come back as strings; missing is missing)
                return frame.astype(object).where(frame.notna(), None).to_dict("records")

            assert list(read.columns) == list(whole.columns) and values(read) == values(whole.reset_index(drop=True))
            assert all(read[c].dtype == whole[c].dtype for c in whole.columns if whole[c].dtype.kind in "iufb")
            once = export.spreadsheet_safe(whole).to_csv(index=False)
            assert (chunked / group.name / f"{kind}.csv").read_text() == once
            compared += len(table) > 3
            if table["record_id"].nunique() > 3:  # a chunk's text columns carry its own values, not the table's
                import pyarrow.parquet as pq

                first = pq.ParquetFile(chunked / group.name / f"{kind}.parquet").read_row_group(0)
                assert len(first.column("record_id").chunk(0).dictionary) <= 3
                dictionaries += 1
    assert compared >= 2 and dictionaries >= 1  # tables of several chunks


def test_hostile_prompt_ids_never_reach_a_file_name(exported, corpus):
    dest = exported["written"]["hub"].parent.resolve()
    assert exported["files"]
    for path in exported["files"]:
        resolved = Path(path).resolve()
        assert dest in resolved.parents
        assert all(len(part) <= 80 for part in resolved.relative_to(dest).parts)
        for fragment in ("goldennoise-export-test", "escaped-by-export", "xxxxxxxx", "onerror"):
            assert fragment not in str(resolved.relative_to(dest))
    assert not Path("/etc/goldennoise-export-test").exists()
    assert not (dest.parent.parent / "escaped-by-export").exists()
    ids = set(live_table(corpus)["prompt_id"])
    assert set(HOSTILE_IDS) <= ids  # the ids stay in the data


def test_export_replaces_earlier_output_and_refuses_bad_requests(corpus, tmp_path):
    export.export(corpus, tmp_path, ["hub"])
    export.export(corpus, tmp_path, ["hub"], pool=True)
    assert sorted(os.listdir(tmp_path / "hub" / "data")) == ["pairwise-pooled", "samples-pooled"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [export.MARKER, "hub"]  # no temporary folders left
    (tmp_path / "table").mkdir()
    (tmp_path / "table" / "mine.txt").write_text("a folder of the user's")
    with pytest.raises(UserError, match="did not export"):
        export.export(corpus, tmp_path, ["table"])
    assert (tmp_path / "table" / "mine.txt").exists()
    with pytest.raises(UserError, match="formats"):
        export.export(corpus, tmp_path, ["imagefolder"])
    with pytest.raises(UserError, match="campaign"):
        export.export(corpus, tmp_path, ["hub"], campaign="no-such-campaign")
    campaign = RecordStore(corpus).read().records[0].campaign
    one = export.export(corpus, tmp_path / "one", ["npz"], campaign=campaign)
    assert len(one["groups"]) == 1 and one["groups"][0].startswith("hostile-")


def test_card_keeps_user_strings_inert():
    hostile = "<img src=x onerror=alert(1)> [link](http://x) | `code` **bold**\n# heading"
    text = card.md(hostile)
    assert "<img" not in text and "](" not in text and "\n" not in text and "|" not in text.replace("\\|", "")
    lines = card._campaign_lines({"c1": {"name": hostile, "model": hostile}}, {"c1", "(none)"})
    assert not any("<img" in line or "](" in line for line in lines)
    assert sum(line.startswith("#") for line in lines) == 2  # only the two headings it writes


def test_unsafe_paths_are_refused(tmp_path):
    for part in ("..", "../x", "/etc", "a/b", "x" * 81, ""):
        with pytest.raises(ValueError):
            export.safe_path(tmp_path, part)
    assert export.safe_path(tmp_path, "ok-1", "2.npz") == (tmp_path / "ok-1" / "2.npz").resolve()


def copy_outputs(corpus: Path, target: Path, edit=lambda records: records) -> Path:
    """The corpus's records (passed through `edit`) as a records file imported into a fresh outputs folder."""
    from tests import factory

    return factory.rewrite(corpus, target, edit)


def test_text_cells_cannot_run_as_spreadsheet_formulas():
    import pandas as pd

    from goldennoise.research.export import spreadsheet_safe

    table = pd.DataFrame({"prompt": ['=HYPERLINK("http://evil/","x")', "+cmd|' /C calc'!A0", "a cat", "@SUM(1)"],
                          "seed": [1, 2, 3, 4]})
    safe = spreadsheet_safe(table)
    assert safe["prompt"].tolist() == ["'=HYPERLINK(\"http://evil/\",\"x\")", "'+cmd|' /C calc'!A0", "a cat",
                                       "'@SUM(1)"]
    assert safe["seed"].tolist() == [1, 2, 3, 4]


def _pandas_table(rows: list[dict]) -> pd.DataFrame:
    """The outside oracle: pandas' own inference over the rows, text columns made categorical, numbers float."""
    frame = pd.DataFrame(rows)
    for column in frame.columns:
        if column in dataset.CATEGORICAL:
            frame[column] = frame[column].astype("category")
        elif dataset._numeric(column):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def _same_table(made: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert len(made) > 0 and list(made.columns) == list(expected.columns)
    for column in made.columns:
        assert isinstance(made[column].dtype, pd.CategoricalDtype) == isinstance(
            expected[column].dtype, pd.CategoricalDtype), column
        assert pd.api.types.is_numeric_dtype(made[column].dtype) == pd.api.types.is_numeric_dtype(
            expected[column].dtype), column
    plain = {c: object for c in made.columns if isinstance(made[c].dtype, pd.CategoricalDtype)}
    pd.testing.assert_frame_equal(made.astype(plain), expected.astype(plain), check_dtype=False)


def test_tables_built_column_by_column_from_the_store_equal_pandas_on_the_same_rows(corpus):
    """The analysis and export read the store once, each row straight into typed columns, the fingerprints
    unpacked once per distinct noise; the result must be what pandas makes of the same rows from the records'
    own data (fingerprints unpacked), all at once."""
    made = dataset.tables(RecordStore(corpus))
    records = RecordStore(corpus).read().records
    for table, (kinds, rows_of) in zip(made, (dataset._sample_rows(dataset._Shared()),
                                              dataset._pair_rows(dataset._Shared()),
                                              dataset._candidate_rows(dataset._Shared()))):
        attrs = {}
        rows = [row for d in dataset.live_data(records) if d["kind"] in kinds for row in rows_of(d, attrs)]
        expected = _pandas_table(rows)
        if "seed" in expected:
            expected["seed"] = expected["seed"].astype("int64")
        _same_table(table, expected)
        assert {k: v for k, v in table.attrs.items() if k != "without_noise"} == attrs
    fingerprint = made[0]["noise"].iloc[0]["fingerprint"]
    assert isinstance(fingerprint["draw"], list) and isinstance(fingerprint["draw"][0], float)  # unpacked, once


def test_the_column_builder_infers_each_column_as_pandas_does(monkeypatch):
    """Columns that start with None, turn from whole numbers to floats, mix booleans with None, lack a key in some
    rows, or hold text in a number column: each as pandas infers it for the whole column."""
    rows = [{"a": None, "b": 1, "c": True, "prompt": "x", "clip_score": "oops", "d": 3, "noise": {"k": 1}},
            {"a": 5, "b": 2.5, "c": None, "prompt": None, "clip_score": 0.25, "d": 4, "noise": None},
            {"a": 6, "b": 3, "c": False, "prompt": "x", "d": 2**40, "score_late": 1.0, "e": "text"},
            {"a": None, "b": 4, "c": True, "prompt": "y", "clip_score": None, "d": 5, "noise": {"k": 1}, "e": 7}]
    builder = dataset._Builder()
    for row in rows:
        builder.add(row)
    made = builder.frame()
    _same_table(made, _pandas_table(rows))
    assert made["d"].dtype == np.int64 and made["b"].dtype == np.float64 and made["c"].dtype == object
    widened = []
    original = dataset._Column._widen
    monkeypatch.setattr(dataset._Column, "_widen", lambda self, kind: (widened.append(kind), original(self, kind)))
    mixed = dataset._Builder()
    for n in range(200):  # whole numbers and floats in turn, then text among them: each column widened once
        mixed.add({"x": n if n % 2 == 0 else n + 0.5, "y": "text" if n == 100 else n})
    assert sorted(widened) == ["float", "object"] and mixed.frame()["y"].tolist()[99:102] == [99, "text", 101]
    small = dataset._Builder()
    for n in (1, 2, 3):
        small.add({"position": n, "seed": n})
    assert small.frame().dtypes.astype(str).tolist() == ["int32", "int64"]  # positions narrowed, seeds 64-bit
