"""The queue's rules on both backends: one tab per prompt, expiry, release, the per-annotator cap, and many
threads claiming at once. PostgreSQL runs here too (a local server, tests/pg.py): a rule that holds on SQLite's
single writer can break under PostgreSQL's concurrent transactions and its driver's row counts."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import select

from goldennoise.store import database, queue
from tests.pg import reset

PROMPTS = 40


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "postgresql":
        url = request.getfixturevalue("postgresql_url")
        reset(url)
        engine = database.connect(database.url_for(tmp_path, url))
    else:
        engine = database.connect(database.url_for(tmp_path, None))
    with database.writing(engine) as conn:
        queue.register(conn, "c", [{"idx": i, "prompt_id": f"p{i}", "text": f"prompt {i}", "source": "test",
                                    "metadata_sha256": None} for i in range(PROMPTS)], 0.0)
    yield engine
    engine.dispose()


def take(engine, prompt: str, who: str, session: str, now: float, seconds: float = 6.0) -> bool:
    with database.writing(engine) as conn:
        return queue.take(conn, "c", "batch", prompt, who, session, now, seconds)


def holder(engine, prompt: str, now: float):
    with database.reading(engine) as conn:
        return queue.holder(conn, "c", "batch", prompt, now)


def test_a_held_prompt_is_nobody_elses_until_released_or_expired(engine):
    assert take(engine, "p0", "bob", "tab-bob", 100.0)
    assert not take(engine, "p0", "dee", "tab-dee", 101.0)  # held: refused, not shared
    assert holder(engine, "p0", 101.0) == "tab-bob"
    assert take(engine, "p0", "bob", "tab-bob", 102.0)  # the holder's own tab takes it again
    with database.writing(engine) as conn:
        assert queue.release(conn, "c", "batch", "p0", "tab-dee") == 0  # not dee's to release
        assert queue.release(conn, "c", "batch", "p0", "tab-bob") == 1
    assert take(engine, "p0", "dee", "tab-dee", 103.0)
    assert not take(engine, "p0", "bob", "tab-bob", 108.0)
    assert take(engine, "p0", "bob", "tab-bob", 109.5)  # dee's 6 s ran out at 109
    with database.writing(engine) as conn:
        assert queue.release_session(conn, "tab-bob") == 1
    assert holder(engine, "p0", 110.0) is None


def test_a_fifth_hold_revokes_the_oldest_and_keeps_it_from_everyone_for_a_while(engine):
    for i in range(queue.MAX_HELD):
        assert take(engine, f"p{i}", "ada", f"tab-{i}", 100.0 + i, 60.0)
    assert take(engine, "p9", "ada", "tab-new", 110.0, 60.0)
    assert holder(engine, "p0", 110.0) is None  # revoked: no longer tab-0's to answer
    assert holder(engine, "p1", 110.0) == "tab-1"  # the others stay
    assert not take(engine, "p0", "bob", "tab-bob", 111.0)  # nor anyone else's until the tab was told
    with database.writing(engine) as conn:
        assert queue.renew(conn, "tab-0", 112.0, 60.0) == set()  # told: it holds nothing now
        assert queue.renew(conn, "tab-1", 112.0, 60.0) == {("c", "batch", "p1")}
    assert take(engine, "p0", "bob", "tab-bob", 110.0 + queue.REVOKED_SECONDS + 0.5)


@pytest.mark.parametrize("threads", [8])
def test_tabs_claiming_at_once_never_hold_one_prompt_together(engine, threads):
    claimed: dict[str, list[str]] = {}
    errors = []
    start = threading.Barrier(threads)

    def tab(n: int) -> None:
        mine = claimed.setdefault(f"tab-{n}", [])
        try:
            start.wait()
            for _ in range(3):  # as the service's _claim: the first candidate it can take, asking again if none
                taken = None
                while taken is None:
                    with database.writing(engine) as conn:
                        for _, pid in queue.candidates(conn, "c", "batch", f"who-{n}", f"tab-{n}", -1, 100.0, 8):
                            if pid not in mine and queue.take(conn, "c", "batch", pid, f"who-{n}", f"tab-{n}", 100.0,
                                                              60.0):
                                taken = pid
                                break
                mine.append(taken)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(repr(error))

    workers = [threading.Thread(target=tab, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    counts = Counter(pid for pids in claimed.values() for pid in pids)
    assert sum(counts.values()) == 3 * threads and max(counts.values()) == 1  # every claim a different prompt
    with database.reading(engine) as conn:
        rows = conn.execute(select(database.leases.c.prompt_id, database.leases.c.session)).all()
    assert sorted((pid, tab) for pid, tab in rows) == sorted((pid, tab) for tab, pids in claimed.items()
                                                             for pid in pids)


def test_postgresql_plans_a_registered_campaigns_prompt_lookups_on_the_primary_key(postgresql_url, tmp_path):
    """Rows registered in one transaction are counted before the queue is rebuilt: on a table the planner believes
    empty, the per-prompt update scanned the queue index (50k prompts took minutes to rebuild on PostgreSQL)."""
    reset(postgresql_url)
    engine = database.connect(database.url_for(tmp_path, postgresql_url))
    try:
        with database.writing(engine) as conn:  # one transaction: autovacuum cannot have counted these rows
            queue.register(conn, "c", [{"idx": i, "prompt_id": f"p{i}", "text": f"prompt {i}", "source": "test",
                                        "metadata_sha256": None} for i in range(5000)], 0.0)
            plan = "\n".join(conn.exec_driver_sql(
                "EXPLAIN UPDATE prompt_state SET judged = 1 WHERE campaign = 'c' AND mode = 'batch' "
                "AND prompt_id = 'p17'").scalars())
        assert "prompt_state_pkey" in plan, plan
    finally:
        engine.dispose()
