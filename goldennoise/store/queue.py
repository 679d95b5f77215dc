"""Which prompt each tab may take, kept in the database so that every app replica agrees.

Per (campaign, view, prompt) the database keeps the prompt's place, its capacity (one
annotator's judgement, or two for the `overlap` share chosen by a hash of the prompt
id), how many annotators judge it now and whether it is still open (`prompt_state`);
who has answered or skipped it (`done`); per annotator the counters of the progress
line (`progress`, `counts`); and which tab holds it (`leases`). All of it is derived
from the live records: `refresh` recomputes one prompt after a record was written (in
the same transaction), `rebuild` recomputes a whole campaign (after an import), and a
test checks that the two always agree.

A tab holds a prompt from the moment it is handed out: a lease that it renews while
open, released at once when it closes or reloads (or after `lease_seconds` of silence,
for API callers that just stop). One lease per prompt (the primary key), so no two tabs
of any replica hold one prompt. A live judgement takes the prompt's place for good; a
skip only keeps it from the annotator who skipped it. Pairwise views use their own
rows ("pairwise"), with no cap: everyone compares every prompt, one tab at a time.
"""

from __future__ import annotations

import functools
import hashlib
from collections import defaultdict

from sqlalchemy import and_, bindparam, case, delete, exists, func, select, update

from goldennoise.store.database import (analyze, counts, done, insert, is_postgresql, leases, per_dialect, progress,
                                        prompt_state, prompts)
from goldennoise.store.database import records as records_table

MODES = ("batch", "pairwise")
LEASE_SECONDS = 120.0
MAX_HELD = 4  # prompts one annotator may hold at once (over all their tabs and clients); more evicts the oldest
REVOKED_SECONDS = 10.0  # an evicted hold keeps its prompt from everyone this long: its tab renews every 4 s


@functools.lru_cache(maxsize=200_000)
def is_overlap(prompt_id: str, overlap: float) -> bool:
    """True for the `overlap` fraction of prompt ids (stable across runs and machines)."""
    digest = int.from_bytes(hashlib.sha256(prompt_id.encode()).digest()[:8], "big")
    return digest / 2**64 < overlap


def capacity(mode: str, prompt_id: str, overlap: float) -> int:
    if mode == "pairwise":
        return 2**31 - 1  # no cap: every annotator compares every prompt
    return 2 if is_overlap(prompt_id, overlap) else 1


def register(conn, campaign: str, rows: list[dict], overlap: float) -> None:
    """Put a campaign's prompt list (dicts: idx, prompt_id, text, source, metadata_sha256) and its queue in place.

    Rows of prompts already answered outside the list (made lazily by `refresh`) get their place."""
    for start in range(0, len(rows), 5000):
        chunk = rows[start:start + 5000]
        conn.execute(insert(prompts, conn).on_conflict_do_nothing(), [{"campaign": campaign, **r} for r in chunk])
        for mode in MODES:
            values = [{"campaign": campaign, "mode": mode, "prompt_id": r["prompt_id"], "idx": r["idx"],
                       "capacity": capacity(mode, r["prompt_id"], overlap), "judged": 0, "open": True} for r in chunk]
            stmt = insert(prompt_state, conn)
            conn.execute(stmt.on_conflict_do_update(index_elements=["campaign", "mode", "prompt_id"],
                                                    set_={"idx": stmt.excluded.idx}), values)
    rebuild(conn, campaign)


def is_registered(conn, campaign: str) -> bool:
    return conn.execute(select(prompts.c.idx).where(prompts.c.campaign == campaign).limit(1)).first() is not None


# Statements built once, executed with bound parameters (database.per_dialect says why): `cid` the campaign, `m` the
# view, `pid` the prompt, `who` the annotator, `sess` the tab, `now` the clock.
B = bindparam
ps = prompt_state
_STATE_KEY = and_(ps.c.campaign == B("cid"), ps.c.mode == B("m"), ps.c.prompt_id == B("pid"))
_DONE_KEY = and_(done.c.campaign == B("cid"), done.c.mode == B("m"), done.c.prompt_id == B("pid"))
_LEASE_KEY = and_(leases.c.campaign == B("cid"), leases.c.mode == B("m"), leases.c.prompt_id == B("pid"))
_LOCK = select(ps.c.mode).where(ps.c.campaign == B("cid"), ps.c.prompt_id == B("pid")).with_for_update()
_LIVE = select(records_table.c.annotator, records_table.c.kind, records_table.c.mode).where(
    records_table.c.campaign == B("cid"), records_table.c.prompt_id == B("pid"), records_table.c.live)
_STATE = select(ps.c.idx, ps.c.capacity, ps.c.judged, ps.c.open).where(_STATE_KEY)
_SET_STATE = update(ps).where(_STATE_KEY).values(judged=B("n"), open=B("is_open"))
_SET_JUDGED = update(ps).where(_STATE_KEY).values(judged=B("n"), open=B("n") < ps.c.capacity)  # rebuild's
_DONE = select(done.c.annotator, done.c.kind).where(_DONE_KEY)
_UNDONE = delete(done).where(_DONE_KEY, done.c.annotator == B("who"))
_COUNTS = select(counts.c.total, counts.c.full).where(counts.c.campaign == B("cid"), counts.c.mode == B("m"))
_PROGRESS = select(progress.c.judged, progress.c.skipped, progress.c.done_full).where(
    progress.c.campaign == B("cid"), progress.c.mode == B("m"), progress.c.annotator == B("who"))
_LIVE_HOLD = and_(leases.c.expires > B("now"), leases.c.revoked.is_(False))
_HOLDER = select(leases.c.session).where(_LEASE_KEY, _LIVE_HOLD)
_DROP_STALE = delete(leases).where(_LEASE_KEY, (leases.c.expires <= B("now")) | (
    (leases.c.session == B("sess")) & leases.c.revoked.is_(False)))
_DROP_ANY = delete(leases).where(_LEASE_KEY)
_OTHER_HOLDS = select(leases.c.campaign, leases.c.mode, leases.c.prompt_id).where(
    leases.c.annotator == B("who"), _LIVE_HOLD, leases.c.session != B("sess")).order_by(leases.c.taken)
_REVOKE = update(leases).where(_LEASE_KEY).values(revoked=True, expires=B("until"))
_RENEW = update(leases).where(leases.c.session == B("sess"), _LIVE_HOLD).values(expires=B("until"))
_HELD = select(leases.c.campaign, leases.c.mode, leases.c.prompt_id).where(leases.c.session == B("sess"), _LIVE_HOLD)
_RELEASE = delete(leases).where(_LEASE_KEY, leases.c.session == B("sess"), leases.c.revoked.is_(False)).returning(
    leases.c.prompt_id)
_RELEASE_SESSION = delete(leases).where(leases.c.session == B("sess"), leases.c.revoked.is_(False)).returning(
    leases.c.prompt_id)


def _open_for():
    """The condition "this prompt may be handed to tab `sess` of `who` now" (claiming nothing)."""
    mine = exists().where(done.c.campaign == B("cid"), done.c.mode == B("m"), done.c.prompt_id == ps.c.prompt_id,
                          done.c.annotator == B("who"))
    held = exists().where(leases.c.campaign == B("cid"), leases.c.mode == B("m"), leases.c.prompt_id == ps.c.prompt_id,
                          leases.c.expires > B("now"), (leases.c.session != B("sess")) | leases.c.revoked)
    return and_(ps.c.campaign == B("cid"), ps.c.mode == B("m"), ps.c.open, ps.c.idx.is_not(None), ~mine, ~held)


_CANDIDATES = tuple(select(ps.c.idx, ps.c.prompt_id).where(_open_for(), where).order_by(ps.c.idx).limit(B("n"))
                    for where in (ps.c.idx > B("after"), ps.c.idx <= B("after")))


@per_dialect
def _ensure_state(conn):
    return insert(prompt_state, conn).on_conflict_do_nothing()


@per_dialect
def _put_done(conn):
    stmt = insert(done, conn)
    return stmt.on_conflict_do_update(index_elements=["campaign", "mode", "prompt_id", "annotator"],
                                      set_={"kind": stmt.excluded.kind})


@per_dialect
def _add_counts(conn):
    stmt = insert(counts, conn)
    return stmt.on_conflict_do_update(index_elements=["campaign", "mode"],
                                      set_={"total": counts.c.total + stmt.excluded.total,
                                            "full": counts.c.full + stmt.excluded.full})


@per_dialect
def _add_progress(conn):
    stmt = insert(progress, conn)
    return stmt.on_conflict_do_update(index_elements=["campaign", "mode", "annotator"],
                                      set_={k: getattr(progress.c, k) + getattr(stmt.excluded, k)
                                            for k in ("judged", "skipped", "done_full")})


@per_dialect
def _take(conn):
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT that did nothing, which reads as "held"
    return insert(leases, conn).on_conflict_do_nothing().returning(leases.c.prompt_id)


def lock(conn, campaign: str, prompt_id: str, overlap: float) -> None:
    """Make sure the prompt's state rows exist and lock them until the transaction ends (PostgreSQL; SQLite's
    BEGIN IMMEDIATE already serialises writers)."""
    conn.execute(_ensure_state(conn), [{"campaign": campaign, "mode": mode, "prompt_id": prompt_id, "idx": None,
                                        "capacity": capacity(mode, prompt_id, overlap), "judged": 0, "open": True}
                                       for mode in MODES])
    if is_postgresql(conn):
        conn.execute(_LOCK, {"cid": campaign, "pid": prompt_id})


def _live_state(conn, campaign: str, prompt_id: str) -> dict[str, tuple[dict[str, str], int]]:
    """mode -> ({annotator: "judged" | "skipped"}, judged count) from the prompt's live answers."""
    rows = conn.execute(_LIVE, {"cid": campaign, "pid": prompt_id}).all()
    found = {mode: ({}, set(), 0) for mode in MODES}
    for who, kind, mode in rows:
        mode = mode or ("pairwise" if kind == "pairwise" else "batch")
        status, judged, answers = found[mode]
        if kind == "skip":
            status.setdefault(who, "skipped")
        else:
            status[who] = "judged"
            judged.add(who)
            answers += 1
        found[mode] = (status, judged, answers)
    # batch: annotators with a live judgement (capacity); pairwise: live answers (which pair comes next)
    return {mode: (status, len(judged) if mode == "batch" else answers)
            for mode, (status, judged, answers) in found.items()}


def refresh(conn, campaign: str, prompt_id: str, modes=MODES) -> None:
    """Recompute one prompt's queue state, `done` rows and the counters from its live answers (call `lock` first);
    `modes`: the views the written record can change (an answer: its own; a retraction: both)."""
    for mode, (status, judged) in _live_state(conn, campaign, prompt_id).items():
        if mode not in modes:
            continue
        key = {"cid": campaign, "m": mode, "pid": prompt_id}
        row = conn.execute(_STATE, key).one()
        was_open, is_open = row.open, judged < row.capacity
        listed = row.idx is not None
        old = dict(conn.execute(_DONE, key).all())
        if (row.judged, row.open) != (judged, is_open):
            conn.execute(_SET_STATE, {**key, "n": judged, "is_open": is_open})
        for who in set(old) - set(status):
            conn.execute(_UNDONE, {**key, "who": who})
        changed = [{"campaign": campaign, "mode": mode, "prompt_id": prompt_id, "annotator": who, "kind": kind}
                   for who, kind in status.items() if old.get(who) != kind]
        if changed:
            conn.execute(_put_done(conn), changed)
        if not listed:
            continue  # the progress line counts the campaign's own prompts only
        if was_open != is_open:
            _bump_counts(conn, campaign, mode, full=1 if was_open else -1)
        for who in set(old) | set(status):
            before, after = old.get(who), status.get(who)
            delta = {"judged": (after == "judged") - (before == "judged"),
                     "skipped": (after == "skipped") - (before == "skipped"),
                     "done_full": (after is not None and not is_open) - (before is not None and not was_open)}
            if any(delta.values()):
                _bump_progress(conn, campaign, mode, who, delta)


def _bump_counts(conn, campaign: str, mode: str, total: int = 0, full: int = 0) -> None:
    conn.execute(_add_counts(conn), {"campaign": campaign, "mode": mode, "total": total, "full": full})


def _bump_progress(conn, campaign: str, mode: str, who: str, delta: dict) -> None:
    conn.execute(_add_progress(conn), {"campaign": campaign, "mode": mode, "annotator": who, **delta})


def rebuild(conn, campaign: str) -> None:
    """Recompute a campaign's queue state, `done` rows and counters from scratch (after an import)."""
    r, ps = records_table, prompt_state
    analyze(conn, records_table, prompts, prompt_state)  # rows just imported or registered: plan with their count
    for table in (done, progress, counts):
        conn.execute(delete(table).where(table.c.campaign == campaign))
    mode = func.coalesce(r.c.mode, "batch")
    answered = func.max(case((r.c.kind == "skip", 0), else_=1))
    rows = conn.execute(select(mode, r.c.prompt_id, r.c.annotator, answered).where(
        r.c.campaign == campaign, r.c.live).group_by(mode, r.c.prompt_id, r.c.annotator)).all()
    values = [{"campaign": campaign, "mode": m, "prompt_id": p, "annotator": a, "kind": "judged" if j else "skipped"}
              for m, p, a, j in rows]
    for start in range(0, len(values), 5000):
        conn.execute(insert(done, conn).on_conflict_do_nothing(), values[start:start + 5000])
    conn.execute(update(ps).where(ps.c.campaign == campaign).values(judged=0, open=True))
    judged = defaultdict(int)
    for m, p, _, j in rows:
        if j and m == "batch":
            judged[(m, p)] += 1
    pair_answers = conn.execute(select(r.c.prompt_id, func.count()).where(
        r.c.campaign == campaign, r.c.live, r.c.kind == "pairwise").group_by(r.c.prompt_id)).all()
    for p, n in pair_answers:
        judged[("pairwise", p)] = n
    # one executemany per statement (not two round trips per prompt: 100k answers on PostgreSQL took minutes)
    found = [{"campaign": campaign, "mode": m, "prompt_id": p, "idx": None, "capacity": 1, "judged": 0, "open": True}
             for (m, p) in judged]
    counted = [{"cid": campaign, "m": m, "pid": p, "n": n} for (m, p), n in judged.items()]
    for start in range(0, len(found), 5000):
        conn.execute(_ensure_state(conn), found[start:start + 5000])
        conn.execute(_SET_JUDGED, counted[start:start + 5000])
    analyze(conn, done, prompt_state)
    listed = and_(ps.c.campaign == campaign, ps.c.idx.is_not(None))
    for m in MODES:
        total = conn.execute(select(func.count()).where(listed, ps.c.mode == m)).scalar_one()
        full = conn.execute(select(func.count()).where(listed, ps.c.mode == m, ps.c.open.is_(False))).scalar_one()
        _bump_counts(conn, campaign, m, total=total, full=full)
    joined = select(done.c.mode, done.c.annotator, done.c.kind, ps.c.open).join(
        ps, and_(ps.c.campaign == done.c.campaign, ps.c.mode == done.c.mode, ps.c.prompt_id == done.c.prompt_id)
    ).where(done.c.campaign == campaign, ps.c.idx.is_not(None))
    tally: dict[tuple, dict] = defaultdict(lambda: {"judged": 0, "skipped": 0, "done_full": 0})
    for m, who, kind, is_open in conn.execute(joined):
        entry = tally[(m, who)]
        entry[kind] += 1
        entry["done_full"] += not is_open
    for (m, who), delta in tally.items():
        _bump_progress(conn, campaign, m, who, delta)


def progress_of(conn, campaign: str, mode: str, who: str) -> dict:
    """This annotator's counts in a campaign: total, judged, skipped, remaining_for_you (ignoring leases)."""
    c = conn.execute(_COUNTS, {"cid": campaign, "m": mode}).first()
    p = conn.execute(_PROGRESS, {"cid": campaign, "m": mode, "who": who}).first()
    total, full = (c.total, c.full) if c else (0, 0)
    judged, skipped, done_full = (p.judged, p.skipped, p.done_full) if p else (0, 0, 0)
    return {"total": total, "judged": judged, "skipped": skipped,
            "remaining_for_you": total - judged - skipped - (full - done_full)}


def candidates(conn, campaign: str, mode: str, who: str, session: str, after: int, now: float, limit: int) -> list:
    """Up to `limit` prompts (idx, prompt_id) this tab could take, in list order after `after`, wrapping round."""
    found = []
    for stmt in _CANDIDATES:
        rows = conn.execute(stmt, {"cid": campaign, "m": mode, "who": who, "sess": session, "now": now,
                                   "after": after, "n": limit - len(found)}).all()
        found += [tuple(row) for row in rows]
        if len(found) >= limit:
            break
    return found


def take(conn, campaign: str, mode: str, prompt_id: str, who: str, session: str, now: float,
         lease_seconds: float = LEASE_SECONDS, force: bool = False) -> bool:
    """Hold the prompt for this tab; True if held now. `force`: whatever else holds it (an undo's own prompt).

    One annotator holds at most MAX_HELD prompts over all tabs: taking one more revokes their oldest other hold
    (that tab is told on its next renewal, and until then nobody is given the prompt)."""
    key = {"cid": campaign, "m": mode, "pid": prompt_id}
    conn.execute(_DROP_ANY if force else _DROP_STALE, {**key, "now": now, "sess": session})
    inserted = conn.execute(_take(conn), {"campaign": campaign, "mode": mode, "prompt_id": prompt_id,
                                          "session": session, "annotator": who, "expires": now + lease_seconds,
                                          "taken": now, "revoked": False}).first()
    if inserted is None:
        return False
    others = conn.execute(_OTHER_HOLDS, {"who": who, "now": now, "sess": session}).all()
    for row in others[:max(0, len(others) - MAX_HELD + 1)]:
        conn.execute(_REVOKE, {"cid": row.campaign, "m": row.mode, "pid": row.prompt_id,
                               "until": min(now + REVOKED_SECONDS, now + lease_seconds)})
    return True


def holder(conn, campaign: str, mode: str, prompt_id: str, now: float) -> str | None:
    """The session holding the prompt now (a revoked hold is nobody's), or None."""
    return conn.execute(_HOLDER, {"cid": campaign, "m": mode, "pid": prompt_id, "now": now}).scalar_one_or_none()


def renew(conn, session: str, now: float, lease_seconds: float = LEASE_SECONDS) -> set[tuple[str, str, str]]:
    """Extend this tab's leases; returns (campaign, mode, prompt_id) of every prompt it still holds (not the
    revoked ones, which it must give up)."""
    conn.execute(_RENEW, {"sess": session, "now": now, "until": now + lease_seconds})
    return {tuple(row) for row in conn.execute(_HELD, {"sess": session, "now": now})}


def release(conn, campaign: str, mode: str, prompt_id: str, session: str) -> int:
    return len(conn.execute(_RELEASE, {"cid": campaign, "m": mode, "pid": prompt_id, "sess": session}).all())


def release_session(conn, session: str) -> int:
    """A tab closed: free what it held (a revoked hold keeps its grace: the tab was not told)."""
    return len(conn.execute(_RELEASE_SESSION, {"sess": session}).all())


def state_of(conn, campaign: str, mode: str, prompt_id: str):
    """The prompt's row: idx, capacity, judged, open (or None)."""
    return conn.execute(_STATE, {"cid": campaign, "m": mode, "pid": prompt_id}).first()


def _batch_row(column):
    return select(column).where(ps.c.campaign == B("cid"), ps.c.mode == "batch", ps.c.prompt_id == B("pid")
                                ).scalar_subquery()


# `who` has a live answer naming batch `bid` in campaign `cid` (RecordStore.answered asks it alone)
ANSWERED = and_(records_table.c.batch_id == B("bid"), records_table.c.annotator == B("who"),
                records_table.c.campaign == B("cid"), records_table.c.live)
_FACTS = select(
    select(leases.c.session).where(_LEASE_KEY, _LIVE_HOLD).scalar_subquery().label("holder"),
    exists().where(ANSWERED).label("answered"),
    _batch_row(ps.c.judged).label("judged"), _batch_row(ps.c.capacity).label("capacity"),
    select(done.c.kind).where(done.c.campaign == B("cid"), done.c.mode == "batch", done.c.prompt_id == B("pid"),
                              done.c.annotator == B("who")).scalar_subquery().label("mine"))


def answer_facts(conn, campaign: str, mode: str, prompt_id: str, who: str, batch_id: str | None, now: float):
    """What the guard of an answer checks, in one query: the session holding the prompt in `mode` now (`holder`),
    whether `who` has a live answer naming `batch_id` (`answered`), the prompt's batch-view `judged` and `capacity`
    (None without a row), and `who`'s own kind of answer there (`mine`: "judged", "skipped" or None)."""
    return conn.execute(_FACTS, {"cid": campaign, "m": mode, "pid": prompt_id, "who": who, "bid": batch_id,
                                 "now": now}).one()
