"""The record store: typed lines, validation on write and read, durability, honest failures."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading

import pytest

from goldennoise.errors import NotSaved
from goldennoise.store import schema
from goldennoise.store.live import history_rows, live
from goldennoise.store.records import RecordStore
from tests import factory

V1_LINE = {  # a line written by GoldenNoise 0.1 (schema 1), trimmed to its fields
    "record_id": "a" * 32, "created_at": "2026-11-24T19:20:06.347Z", "annotator": "ada",
    "prompt": {"text": "a cat", "id": "p-1", "index": 0, "source": "s.csv", "metadata": {"category": "animals"}},
    "model": {"id": "tiny-flux", "name": "tiny-flux", "revision": None, "dtype": "float32",
              "pipeline_class": "FluxPipeline", "device": "cpu", "placement": "cpu"},
    "parameters": {"num_inference_steps": 4, "guidance_scale": 0.0, "height": 64, "width": 64,
                   "max_sequence_length": 256, "scheduler": None, "runtime": {}},
    "seeds": [1, 2], "golden_seeds": [2], "bad_seeds": [1],
    "samples": [{"seed": s, "golden": s == 2, "clip_score": 30.0, "image_path": f"images/a/{s}.png",
                 "noise": {"generator": "cpu", "dtype": "float32", "shape": [1, 4, 8, 8], "packing": "flux-2x2",
                           "scale": 1.0, "pipeline_dtype": "float32", "sha256": "b" * 64}} for s in (1, 2)],
    "seed_strategy": {"name": "random"}, "clip_model": None, "timing": {}, "versions": {}, "session_id": "x",
    "kind": "judgement", "verdict": "some_golden", "supersedes": None, "retracts": None, "preference": None,
    "prefilter": None, "schema_version": 1}


def test_every_kind_round_trips(tmp_path):
    store = RecordStore(tmp_path)
    j = factory.judgement(0)
    written = [j, factory.retraction(j), factory.judgement(1, golden=())]
    for record in written:
        store.append(record)
    read = store.read()
    assert read.warnings == [] and read.records == written
    assert all(json.loads(line)["schema_version"] == 2 for line in store.path.read_text().splitlines())


@pytest.mark.parametrize("bad", [
    {"record_id": 5, "prompt": "not a dict", "seeds": "abc", "golden_seeds": [99]},  # the example
    {**V1_LINE, "schema_version": 2, "golden_seeds": [99], "bad_seeds": [1, 2]},  # golden not shown
    {**V1_LINE, "schema_version": 2, "seeds": [1.0, 2.0]},  # float seeds are not rounded into ints
    {**V1_LINE, "schema_version": 2, "prompt": None},
    {**V1_LINE, "schema_version": 2, "kind": "retraction", "retracts": {"x": 1}},
    {**V1_LINE, "schema_version": 2, "verdict": "all_golden"},  # verdict contradicts the seeds
])
def test_invalid_records_are_refused(bad):
    with pytest.raises(schema.SchemaError):
        schema.parse(bad)


def _with_fingerprint(draw) -> dict:
    line = json.loads(schema.RECORD.dump_json(factory.judgement(0)))
    for sample in line["samples"]:
        sample["noise"].update(latents_shape=[1, 4, 8, 8], latents_sha256="c" * 64,
                               fingerprint={"draw": draw, "mean": 0.0, "std": 1.0, "latents": [0.5, -0.25]})
    return line


@pytest.mark.parametrize("draw", [["0.1"], [True], "0.1", None, [[0.1]]])
def test_fingerprint_values_are_numbers(draw):
    schema.parse(_with_fingerprint([0.1]))  # the line itself is valid
    with pytest.raises(schema.SchemaError, match="fingerprint"):
        schema.parse(_with_fingerprint(draw))


def test_fingerprints_are_held_compactly_and_written_back_exactly(tmp_path):
    from array import array

    draw = [0.1, -1.2345678901234567, 3e-300, 2.0, 1e300]
    record = schema.parse(_with_fingerprint(draw))
    assert isinstance(record.samples[0].noise.fingerprint.draw, array)  # 8 bytes a value in memory
    store = RecordStore(tmp_path)
    store.append(record)
    back = json.loads(store.path.read_text())["samples"][0]["noise"]["fingerprint"]
    assert back["draw"] == draw and back["latents"] == [0.5, -0.25]
    assert RecordStore(tmp_path).read().records == [record]
    assert record.samples[0].noise.model_dump()["fingerprint"]["draw"] == draw


def test_schema_1_lines_are_upgraded_and_newer_ones_refused():
    record = schema.parse(V1_LINE)
    assert record.schema_version == 2 and record.prompt.metadata == {"category": "animals"}
    assert record.samples[0].noise.family is None  # unknown in schema 1; never guessed
    with pytest.raises(schema.SchemaError, match="newer GoldenNoise"):
        schema.parse({**V1_LINE, "schema_version": 3})


def test_bad_lines_are_skipped_with_their_line_number(tmp_path):
    store = RecordStore(tmp_path)
    good = factory.judgement(0)
    store.append(good)
    with open(store.path, "a") as handle:
        handle.write(json.dumps({**V1_LINE, "schema_version": 2, "prompt": None}) + "\n")  # valid JSON, wrong shape
        handle.write("{not json\n")
        handle.write(json.dumps({**V1_LINE, "schema_version": 9}) + "\n")
    store.append(factory.judgement(1))
    read = RecordStore(tmp_path).read()
    assert [r.prompt.id for r in read.records] == ["p0", "p1"]
    assert [w.split(" skipped")[0] for w in read.warnings] == ["records.jsonl line 2", "records.jsonl line 3",
                                                                "records.jsonl line 4"]
    assert "newer GoldenNoise" in read.warnings[2]
    assert history_rows(read.records)  # History still works


def test_reads_are_incremental_and_see_other_processes(tmp_path):
    store = RecordStore(tmp_path)
    store.append(factory.judgement(0))
    assert len(store.read().records) == 1
    code = ("import sys; sys.path.insert(0, sys.argv[2]); from goldennoise.store.records import RecordStore; "
            "from tests import factory; RecordStore(sys.argv[1]).append(factory.judgement(7))")
    subprocess.run([sys.executable, "-c", code, str(tmp_path), os.getcwd()], check=True)
    assert [r.prompt.id for r in store.read().records] == ["p0", "p7"]


def test_a_torn_last_line_is_not_glued_to_the_next(tmp_path):
    store = RecordStore(tmp_path)
    store.append(factory.judgement(0))
    with open(store.path, "a") as handle:
        handle.write('{"record_id": "torn')  # a writer killed mid-line
    assert len(store.read().records) == 1  # an unfinished line is left alone
    store.append(factory.judgement(1))
    read = store.read()
    assert [r.prompt.id for r in read.records] == ["p0", "p1"] and len(read.warnings) == 1


@pytest.mark.parametrize("code,words", [(errno.ENOSPC, "disk holding the records is full"),
                                        (errno.EROFS, "read-only disk"), (errno.EACCES, "permissions")])
def test_failed_writes_say_why_and_leave_no_half_line(tmp_path, monkeypatch, code, words):
    store = RecordStore(tmp_path)
    store.append(factory.judgement(0))
    before = store.path.read_bytes()
    real_write = os.write

    def failing(fd, data):
        real_write(fd, data[: len(data) // 2])  # half a line reaches the disk...
        raise OSError(code, os.strerror(code))  # ...then the disk refuses

    monkeypatch.setattr(os, "write", failing)
    with pytest.raises(NotSaved, match=words) as caught:
        store.append(factory.judgement(1))
    assert "Not saved" in str(caught.value) and "ticks are kept" in str(caught.value)
    assert str(tmp_path) not in str(caught.value)  # no server paths
    monkeypatch.undo()
    assert store.path.read_bytes() == before  # cut back: the file never keeps half a line
    store.append(factory.judgement(2))
    assert [r.prompt.id for r in store.read().records] == ["p0", "p2"]


def test_concurrent_writers_lose_nothing(tmp_path):
    store = RecordStore(tmp_path)
    threads = [threading.Thread(target=lambda k=k: [store.append(factory.judgement(k * 100 + i)) for i in range(20)])
               for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    read = RecordStore(tmp_path).read()
    assert len(read.records) == 160 and read.warnings == []


def test_only_your_own_lines_retract_or_supersede(tmp_path):
    a = factory.judgement(0, annotator="ada")
    hostile = factory.retraction(a, annotator="eve")  # a retraction of ada's answer, written by eve
    relabel_by_eve = factory.judgement(0, annotator="eve", supersedes=a.record_id)
    second = factory.judgement(0, annotator="bob", second_opinion_of=a.record_id)
    counted = live([a, hostile, relabel_by_eve, second])
    assert a in counted and relabel_by_eve in counted and second in counted
    assert live([a, factory.retraction(a)]) == []


def test_the_shipped_json_schema_is_current():
    shipped = json.loads(schema.SCHEMA_FILE.read_text())
    assert shipped == json.loads(json.dumps(schema.json_schema(), sort_keys=True)), \
        "regenerate: python -m goldennoise.store.schema > goldennoise/store/record.schema.json"


def test_importing_the_package_needs_no_fcntl(tmp_path):
    (tmp_path / "fcntl.py").write_text("raise ImportError('no fcntl here (Windows)')\n")
    code = ("import goldennoise, goldennoise.store.records as r; s = r.RecordStore(r'%s'); "
            "from tests import factory; s.append(factory.judgement(0)); print(len(s.read().records))" % (tmp_path / "o"))
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": f"{tmp_path}:{os.getcwd()}"},
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


@pytest.mark.parametrize("line", ['{"kind": []}', '{"kind": {}}', '{"kind":"judgement","prefilter":{"hidden":null}}',
                                  '{"kind":"judgement","prefilter":{"hidden":[1,2]}}', '{"a": ' + "1" * 5000 + "}"])
def test_lines_of_any_shape_are_skipped_not_fatal(tmp_path, line):
    store = RecordStore(tmp_path)
    store.append(factory.judgement(0))
    with open(store.path, "a") as handle:
        handle.write(line + "\n")
    store.append(factory.judgement(1))
    read = RecordStore(tmp_path).read()
    assert len(read.records) == 2 and len(read.warnings) == 1 and "line 2" in read.warnings[0]
