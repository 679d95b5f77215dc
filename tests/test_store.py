"""The record store: typed records, validation, compact exact storage, the live rules in the database, imports of
0.2's records.jsonl, durability and honest failures."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import event, select

from goldennoise.errors import NotSaved
from goldennoise.store import codec, schema
from goldennoise.store.database import done, progress, prompt_state
from goldennoise.store.live import live
from goldennoise.store.records import LEGACY_FILE, RecordStore
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


def line(record) -> str:
    return json.dumps(schema.dump(record)) + "\n"


def test_every_kind_round_trips(tmp_path):
    store = RecordStore(tmp_path)
    j = factory.judgement(0)
    written = [j, factory.retraction(j), factory.judgement(1, golden=()), factory.pairwise(2), factory.skip(3)]
    for record in written:
        store.append(record)
    read = RecordStore(tmp_path).read()
    assert read.warnings == [] and read.records == written
    assert all(r.schema_version == 3 for r in read.records)


@pytest.mark.parametrize("bad", [
    {"record_id": 5, "prompt": "not a dict", "seeds": "abc", "golden_seeds": [99]},
    {**V1_LINE, "schema_version": 2, "golden_seeds": [99], "bad_seeds": [1, 2]},  # golden not shown
    {**V1_LINE, "schema_version": 2, "seeds": [1.0, 2.0]},  # float seeds are not rounded into ints
    {**V1_LINE, "schema_version": 2, "prompt": None},
    {**V1_LINE, "schema_version": 2, "kind": "retraction", "retracts": {"x": 1}},
    {**V1_LINE, "schema_version": 2, "verdict": "all_golden"},  # verdict contradicts the seeds
])
def test_invalid_records_are_refused(bad):
    with pytest.raises(schema.SchemaError):
        schema.parse(bad)


@pytest.mark.parametrize("draw", [["0.1"], [True], "0.1", None, [[0.1]]])
def test_fingerprint_values_are_numbers(draw):
    schema.parse(factory.with_fingerprint([0.1]))  # the line itself is valid
    with pytest.raises(schema.SchemaError, match="fingerprint"):
        schema.parse(factory.with_fingerprint(draw))


def test_records_are_stored_exactly_and_in_a_third_of_the_space(tmp_path, tiny_model, params):
    from goldennoise.generation.pipeline import prepare

    _, _, _, blocks, _ = prepare(tiny_model, [11, 12, 13, 14], params)  # real provenance blocks of a real pipeline
    record = factory.judgement(0, noise=blocks)
    record_line = line(record).encode()
    blob = codec.encode_data(schema.dump(record))
    assert codec.decode_data(blob) == schema.dump(record)  # exact: every fingerprint value as written
    assert len(blob) < len(record_line) / 3, (len(blob), len(record_line))
    odd = schema.parse(factory.with_fingerprint([0.1, -1.2345678901234567, 3e-300, 2.0, 1e300]))  # not float32s
    assert codec.decode_data(codec.encode_data(schema.dump(odd))) == schema.dump(odd)
    store = RecordStore(tmp_path)
    store.append(odd)
    assert RecordStore(tmp_path).read().records == [odd]


def test_schema_1_and_2_lines_are_upgraded_and_newer_ones_refused():
    record = schema.parse(V1_LINE)
    assert record.schema_version == 3 and record.prompt.metadata == {"category": "animals"}
    assert record.samples[0].noise.family is None  # unknown in schema 1; never guessed
    two = json.loads(line(factory.judgement(0)))
    two["schema_version"] = 2
    assert schema.parse(two).schema_version == 3
    with pytest.raises(schema.SchemaError, match="newer GoldenNoise"):
        schema.parse({**V1_LINE, "schema_version": 4})


def test_a_records_file_of_0_2_is_imported_once_with_every_bad_line_named(tmp_path):
    first, second = factory.judgement(0), factory.judgement(1)
    lines = [line(first), json.dumps({**V1_LINE, "schema_version": 2, "prompt": None}) + "\n", "{not json\n",
             json.dumps({**V1_LINE, "schema_version": 9}) + "\n", line(first),  # an exact duplicate (a merged copy)
             line(second), line(factory.retraction(second)), '{"record_id": "torn']  # a writer killed mid-line
    (tmp_path / LEGACY_FILE).write_text("".join(lines))
    store = RecordStore(tmp_path)
    read = store.read()
    assert [r.record_id for r in read.records] == [first.record_id, second.record_id, read.records[2].record_id]
    assert [w.split(" skipped")[0] for w in read.warnings] == [f"{LEGACY_FILE} line {n}" for n in (2, 3, 4, 5, 8)]
    assert "newer GoldenNoise" in read.warnings[2] and "duplicate of record" in read.warnings[3]
    assert "first on line 1" in read.warnings[3]
    assert [r.record_id for r in store.live()] == [first.record_id]  # the import applies retractions
    assert RecordStore(tmp_path).count() == 3  # opened again: not imported twice
    result = subprocess.run([sys.executable, "-m", "goldennoise.cli", "migrate", str(tmp_path)], capture_output=True,
                            text=True)
    assert result.returncode == 0 and "imported before" in result.stdout


def test_migrate_reports_counts(tmp_path):
    (tmp_path / "old").mkdir()
    records = [factory.judgement(i) for i in range(5)]
    (tmp_path / "old" / "records.jsonl").write_text("".join(line(r) for r in records) + "garbage\n")
    result = subprocess.run([sys.executable, "-m", "goldennoise.cli", "migrate", str(tmp_path / "new"), "--file",
                             str(tmp_path / "old" / "records.jsonl")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "5 records imported, 1 lines skipped" in result.stdout and "line 6 skipped" in result.stderr


def test_only_your_own_lines_retract_or_supersede(tmp_path):
    a = factory.judgement(0, annotator="ada")
    hostile = factory.retraction(a, annotator="eve")  # a retraction of ada's answer, written by eve
    relabel_by_eve = factory.judgement(0, annotator="eve", supersedes=a.record_id)
    second = factory.judgement(0, annotator="bob", second_opinion_of=a.record_id)
    counted = live([a, hostile, relabel_by_eve, second])
    assert a in counted and relabel_by_eve in counted and second in counted
    assert live([a, factory.retraction(a)]) == []
    assert live([a, factory.retraction(a, annotator=" ADA ")]) == []  # one person however the name is typed
    store = RecordStore(tmp_path)
    for record in (a, hostile, relabel_by_eve, second):
        store.append(record)
    assert {r.record_id for r in store.live()} == {r.record_id for r in counted}


def _random_history(rng: random.Random, n: int) -> list:
    """Records as any mix of writers could leave them: judgements, relabels, second opinions, retractions, skips
    and pairwise answers by three annotators on four prompts (two batches each)."""
    made, out = [], []
    for _ in range(n):
        who = rng.choice(["ada", "Ada ", "bob", "cy"])
        prompt, batch = rng.randrange(4), rng.randrange(2)
        roll = rng.random()
        mine = [r for r in made if r.annotator.strip().lower() == who.strip().lower()]
        if roll < 0.15 and made:
            target = rng.choice(made)
            out.append(factory.retraction(target, annotator=who))
            continue
        extra = {}
        if roll < 0.35 and mine:
            target = rng.choice(mine)
            prompt, batch, extra = int(target.prompt.id[1:]), int(target.batch_id[-1]), {"supersedes": target.record_id}
        elif roll < 0.45 and made:
            target = rng.choice(made)
            prompt, batch, extra = int(target.prompt.id[1:]), int(target.batch_id[-1]), \
                {"second_opinion_of": target.record_id}
        kind = rng.choice(["judgement"] * 4 + ["skip", "pairwise"]) if not extra else "judgement"
        builder = {"judgement": factory.judgement, "skip": factory.skip, "pairwise": factory.pairwise}[kind]
        record = builder(prompt, annotator=who, batch_id=f"b{prompt}-{batch}", **extra)
        made.append(record)
        out.append(record)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_the_database_keeps_exactly_the_live_rules(tmp_path, seed):
    """Written one by one, the store's live flags and queue state equal the rules applied to the whole list, and a
    rebuild from scratch; imported from a file, the same."""
    history = _random_history(random.Random(seed), 60)
    store = RecordStore(tmp_path / "one")
    for i, record in enumerate(history):
        store.append(record)
        if i % 15 == 14:
            assert [r.record_id for r in store.live()] == [r.record_id for r in live(history[:i + 1])]
    expected = [r.record_id for r in live(history)]
    assert [r.record_id for r in store.live()] == expected
    incremental = _derived(store)
    from goldennoise.store import queue

    with store.queue(write=True) as conn:
        queue.rebuild(conn, "c-1")
    assert _derived(store) == incremental
    (tmp_path / "file").mkdir()
    (tmp_path / "file" / LEGACY_FILE).write_text("".join(line(r) for r in history))
    imported = RecordStore(tmp_path / "file")
    assert [r.record_id for r in imported.live()] == expected and _derived(imported) == incremental


def _derived(store) -> tuple:
    with store.queue() as conn:
        return tuple(sorted(map(tuple, conn.execute(select(t)).all())) for t in (done, prompt_state, progress))


def test_a_full_disk_is_said_and_nothing_is_half_written(tmp_path):
    store = RecordStore(tmp_path)
    store.append(factory.judgement(0))
    with store.queue() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
    store.engine.dispose()
    listener = lambda dbapi, _: dbapi.execute(f"PRAGMA max_page_count = {pages + 1}")  # noqa: E731
    event.listen(store.engine, "connect", listener)
    big = factory.judgement(1, clip=[1.0] * 4, noise=[factory.noise_block(s, fingerprint=8000) for s in range(4)])
    with pytest.raises(NotSaved, match="disk holding the records is full") as caught:
        store.append(big)
    assert "ticks are kept" in str(caught.value) and str(tmp_path) not in str(caught.value)
    event.remove(store.engine, "connect", listener)
    store.engine.dispose()
    assert RecordStore(tmp_path).count() == 1  # the transaction rolled back whole
    store.append(big)
    assert [r.prompt.id for r in RecordStore(tmp_path).read().records] == ["p0", "p1"]


def test_concurrent_writers_lose_nothing(tmp_path):
    store = RecordStore(tmp_path)
    threads = [threading.Thread(target=lambda k=k: [store.append(factory.judgement(k * 100 + i)) for i in range(15)])
               for k in range(6)]
    for t in threads:
        t.start()
    code = ("import sys; from goldennoise.store.records import RecordStore; from tests import factory; "
            "s = RecordStore(sys.argv[1]); [s.append(factory.judgement(5000 + i)) for i in range(30)]")
    others = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=os.getcwd()) for _ in range(2)]
    for t in threads:
        t.join()
    assert all(p.wait(timeout=120) == 0 for p in others)
    read = RecordStore(tmp_path).read()
    assert len(read.records) == 6 * 15 + 60 and read.warnings == []


WRITER = """
import sys
from goldennoise.store.records import RecordStore
from tests import factory
store = RecordStore(sys.argv[1], sys.argv[2] or None)
i = 0
while True:
    record = factory.judgement(i)
    store.append(record)
    print(record.record_id, flush=True)  # acknowledged: append returned
    i += 1
"""


def kill_nine(outputs, url: str | None, rounds: int = 4) -> tuple[set, list]:
    """Writers killed with SIGKILL mid-stream, `rounds` times; (acknowledged ids, ids in the store)."""
    acknowledged = set()
    for round_ in range(rounds):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(outputs), url or ""], cwd=os.getcwd(),
                                  stdout=subprocess.PIPE, text=True)
        time.sleep(1.5 + 0.3 * round_)
        writer.send_signal(signal.SIGKILL)
        out, _ = writer.communicate()
        acknowledged |= set(out.split())
    stored = [r.record_id for r in RecordStore(outputs, url).read().records]
    return acknowledged, stored


def test_acknowledged_answers_survive_kill_9(tmp_path):
    acknowledged, stored = kill_nine(tmp_path, None)
    assert acknowledged and acknowledged <= set(stored) and len(stored) == len(set(stored))
    store = RecordStore(tmp_path)
    with store.queue() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


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


@pytest.mark.parametrize("text", ['{"kind": []}', '{"kind": {}}', '{"kind":"judgement","prefilter":{"hidden":null}}',
                                  '{"kind":"judgement","prefilter":{"hidden":[1,2]}}', '{"a": ' + "1" * 5000 + "}"])
def test_lines_of_any_shape_are_skipped_not_fatal(tmp_path, text):
    (tmp_path / LEGACY_FILE).write_text(line(factory.judgement(0)) + text + "\n" + line(factory.judgement(1)))
    read = RecordStore(tmp_path).read()
    assert len(read.records) == 2 and len(read.warnings) == 1 and "line 2" in read.warnings[0]


def test_batches_round_trip_through_the_codec_unchanged():
    """The codec also stores batches (no samples): it adds nothing to what it is given."""
    batch = {"batch_id": "b", "prompt_id": "p", "seeds": [1], "noise": [{"fingerprint": {"draw": [0.5]}}]}
    assert codec.decode_data(codec.encode_data(batch)) == batch


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_answer_counts_equal_the_rules_applied_to_the_list_on_both_backends(tmp_path, request, backend):
    """recorded, retracted (by their own annotator only), superseded and live counts by kind, from the database,
    against the same counts taken from the list by `live` (the oracle the app's rules are tested against)."""
    from goldennoise.store.names import identity
    from tests.pg import reset

    url = None
    if backend == "postgresql":
        url = request.getfixturevalue("postgresql_url")
        reset(url)
    history = _random_history(random.Random(11), 120)
    store = RecordStore(tmp_path, url)
    for record in history:
        store.append(record)
    answers = [r for r in history if r.kind != "retraction"]
    by_id = {r.record_id: r for r in answers}
    undone = {t.retracts for t in history if t.kind == "retraction" and t.retracts in by_id
              and identity(by_id[t.retracts].annotator) == identity(t.annotator)}
    counted = live(history)
    kinds = {kind: sum(1 for r in counted if r.kind == kind) for kind in ("judgement", "pairwise", "skip")}
    got = store.answer_counts("c-1")
    assert got["recorded"] == len(answers) and got["retracted"] == len(undone) > 0
    assert {k: got[f"live_{k}"] for k in kinds} == kinds
    assert got["superseded"] == len(answers) - len(undone) - sum(kinds.values())
    assert got["second_opinions"] == sum(1 for r in counted if getattr(r, "second_opinion_of", None))
    store.close()


@pytest.mark.parametrize("seed", range(3))
def test_a_rebuild_on_postgresql_equals_the_state_kept_answer_by_answer(tmp_path, postgresql_url, seed):
    """queue.rebuild (after an import, or rows written straight into the store) in batched statements gives, on
    PostgreSQL too, the queue state, `done` rows and counters the answers left one by one."""
    from goldennoise.store import queue
    from tests.pg import reset

    reset(postgresql_url)
    store = RecordStore(tmp_path, postgresql_url)
    for record in _random_history(random.Random(seed), 60):
        store.append(record)
    incremental = _derived(store)
    with store.queue(write=True) as conn:
        queue.rebuild(conn, "c-1")
    assert _derived(store) == incremental
    store.close()


def test_writers_of_one_process_queue_for_sqlite_in_turn_not_in_its_busy_handler(tmp_path):
    """A second writer of this process waits on a lock and takes its connection once the first has committed.
    Without it, it began at once and slept in SQLite's busy handler in growing steps: 34 ms past the first's
    commit after a 300 ms wait, here."""
    from goldennoise.store import database

    engine = database.connect(database.url_for(tmp_path, None))
    with engine.connect(), engine.connect():  # two pooled connections, as a running app has
        pass
    events, inside = [], threading.Event()
    event.listen(engine.pool, "checkout", lambda *a: events.append(("checkout", threading.current_thread().name)))
    event.listen(engine, "commit", lambda conn: events.append(("commit", threading.current_thread().name)))

    def first():
        with database.writing(engine):
            inside.set()
            time.sleep(0.3)

    def second():
        inside.wait()
        with database.writing(engine):
            pass

    threads = [threading.Thread(target=first, name="first"), threading.Thread(target=second, name="second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()
    assert events == [("checkout", "first"), ("commit", "first"), ("checkout", "second"), ("commit", "second")], events
