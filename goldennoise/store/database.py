"""The database behind the store: SQLite in the outputs folder by default, PostgreSQL for several app replicas.

    sqlite:///<outputs>/goldennoise.db            (the default: nothing to run; WAL, fsync on every commit)
    postgresql://user:pass@host:5432/goldennoise  (--store URL or GOLDENNOISE_STORE; psycopg 3)

One set of tables (SQLAlchemy Core), one code path for both. What each holds:
- `records`: every record, append-only: a few indexed columns (who, which prompt and
  batch, live or not) and the record itself compactly encoded (`codec`). `live` is the
  only column ever updated: it says whether the answer counts now (`live.py`'s rules).
- derived state, kept in step with `records` in the same transaction (`queue.py`):
  `prompt_state` (per campaign, view and prompt: order, capacity, judgements, open),
  `done` (who answered or skipped which prompt), `progress` and `counts` (counters for the
  progress line), `leases` (which tab holds which prompt, until when).
- `prompts` (a campaign's prompt list), `batches` (a campaign's batch per prompt), `campaigns`
  (definitions), `state` (the active campaign, for every replica), `imports` (records.jsonl
  files imported once).

Writes are transactions: on SQLite `BEGIN IMMEDIATE` (one writer at a time, readers never
blocked under WAL); on PostgreSQL the prompt's state row is locked (`SELECT … FOR UPDATE`)
before anything that depends on it, and unique indexes make two replicas unable to hold one
prompt twice or record two live judgements of one batch by one annotator.
"""

from __future__ import annotations

import functools
import os
import threading
import weakref
from contextlib import contextmanager, nullcontext
from pathlib import Path

from sqlalchemy import (BigInteger, Boolean, Column, Float, Index, Integer, LargeBinary, MetaData, String, Table, Text,
                        create_engine, event, text)
from sqlalchemy.engine import Engine

from goldennoise.errors import UserError

DB_FILE = "goldennoise.db"
STORE_ENV = "GOLDENNOISE_STORE"
SQLITE_BUSY_MS = 30_000
_WRITERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # engine -> this process's SQLite writer lock

metadata = MetaData()
Id = BigInteger().with_variant(Integer, "sqlite")  # SQLite's rowid alias must be INTEGER

records = Table(
    "records", metadata,
    Column("seq", Id, primary_key=True, autoincrement=True),  # file order: the order records were written
    Column("record_id", String(32), nullable=False, unique=True),
    Column("kind", String(12), nullable=False),
    Column("campaign", String(300), nullable=False),  # "" for records made without a campaign
    Column("annotator", String(200), nullable=False),  # identity (names.identity), not the display form
    Column("prompt_id", String(1024), nullable=False),
    Column("prompt_text", Text, nullable=False),
    Column("mode", String(10)),  # "batch" or "pairwise" for answers, None for retractions
    Column("batch_id", String(300)),
    Column("session_id", String(300)),
    Column("retracts", String(32)),
    Column("supersedes", String(32)),
    Column("second_opinion_of", String(32)),
    Column("grp", String(64), nullable=False),  # the records whose live status depends on each other
    Column("created_at", String(40), nullable=False),
    Column("live", Boolean, nullable=False),
    Column("body", LargeBinary, nullable=False),
)
Index("records_prompt", records.c.campaign, records.c.prompt_id)
Index("records_grp", records.c.grp)
Index("records_who", records.c.annotator, records.c.campaign, records.c.live, records.c.seq)
Index("records_tab", records.c.campaign, records.c.annotator, records.c.session_id, records.c.mode, records.c.seq)
Index("records_batch", records.c.batch_id, records.c.annotator)
Index("records_campaign_seq", records.c.campaign, records.c.seq)
# Two live judgements of one batch by one annotator cannot both be written, by any replica.
Index("records_one_judgement", records.c.campaign, records.c.annotator, records.c.batch_id, unique=True,
      sqlite_where=text("live AND kind = 'judgement' AND batch_id IS NOT NULL"),
      postgresql_where=text("live AND kind = 'judgement' AND batch_id IS NOT NULL"))

prompts = Table(
    "prompts", metadata,
    Column("campaign", String(300), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("prompt_id", String(1024), nullable=False),
    Column("text", Text, nullable=False),
    Column("source", String(300), nullable=False),
    Column("metadata_sha256", String(64)),
)
Index("prompts_id", prompts.c.campaign, prompts.c.prompt_id, unique=True)

prompt_state = Table(
    "prompt_state", metadata,
    Column("campaign", String(300), primary_key=True),
    Column("mode", String(10), primary_key=True),
    Column("prompt_id", String(1024), primary_key=True),
    Column("idx", Integer),  # place in the campaign's list; None: a prompt answered outside it
    Column("capacity", Integer, nullable=False),  # judgements it takes (1, or 2 for overlap); pairwise: no cap
    Column("judged", Integer, nullable=False),  # annotators with a live judgement (pairwise: live answers)
    Column("open", Boolean, nullable=False),
)
Index("prompt_state_queue", prompt_state.c.campaign, prompt_state.c.mode, prompt_state.c.open, prompt_state.c.idx)

done = Table(
    "done", metadata,
    Column("campaign", String(300), primary_key=True),
    Column("mode", String(10), primary_key=True),
    Column("prompt_id", String(1024), primary_key=True),
    Column("annotator", String(200), primary_key=True),
    Column("kind", String(10), nullable=False),  # "judged" or "skipped"
)

progress = Table(
    "progress", metadata,
    Column("campaign", String(300), primary_key=True),
    Column("mode", String(10), primary_key=True),
    Column("annotator", String(200), primary_key=True),
    Column("judged", Integer, nullable=False),
    Column("skipped", Integer, nullable=False),
    Column("done_full", Integer, nullable=False),  # prompts done by this annotator that are full
)

counts = Table(
    "counts", metadata,
    Column("campaign", String(300), primary_key=True),
    Column("mode", String(10), primary_key=True),
    Column("total", Integer, nullable=False),
    Column("full", Integer, nullable=False),
)

leases = Table(
    "leases", metadata,
    Column("campaign", String(300), primary_key=True),
    Column("mode", String(10), primary_key=True),
    Column("prompt_id", String(1024), primary_key=True),
    Column("session", String(64), nullable=False),
    Column("annotator", String(200), nullable=False),
    Column("expires", Float, nullable=False),
    Column("taken", Float, nullable=False),
    # Dropped for the annotator's newer tab: no longer this tab's to answer, but kept from everyone until the tab
    # has been told (its next renewal), so one person never sees one prompt in two tabs.
    Column("revoked", Boolean, nullable=False, default=False),
)
Index("leases_session", leases.c.session)
Index("leases_annotator", leases.c.annotator, leases.c.expires)

batches = Table(
    "batches", metadata,
    Column("campaign", String(300), primary_key=True),
    Column("prompt_id", String(1024), primary_key=True),
    Column("batch_id", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False),
)

campaigns = Table(
    "campaigns", metadata,
    Column("id", String(300), primary_key=True),
    Column("definition", Text, nullable=False),
    Column("prompts_source", String(64)),  # sha256 of the prompt file's bytes it was read from
    Column("prompt_count", Integer),
)
Index("campaigns_source", campaigns.c.prompts_source)

state = Table(
    "state", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

imports = Table(
    "imports", metadata,
    Column("source", String(64), primary_key=True),  # sha256 of the imported file's bytes
    Column("name", String(300), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("imported", Integer, nullable=False),
    Column("skipped", Integer, nullable=False),
    Column("warnings", Text, nullable=False),  # JSON list: each skipped line, with its number and why
    Column("at", String(40), nullable=False),
)


def url_for(outputs: str | Path, store: str | None = None) -> str:
    """The database URL: `store` (or $GOLDENNOISE_STORE) if given, else SQLite in the outputs folder."""
    store = store or os.environ.get(STORE_ENV) or ""
    if not store:
        return f"sqlite:///{Path(outputs).resolve() / DB_FILE}"
    if store.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + store.split("://", 1)[1]
    if store.startswith(("postgresql+psycopg://", "sqlite:///")):
        return store
    raise UserError(f"store: {store.split('://')[0][:20]!r} is not a store this version knows; use "
                    "postgresql://user:password@host/database, or leave it empty for SQLite in the outputs folder.",
                    "store")


def describe(url: str) -> str:
    """The URL without its password, for logs and messages."""
    if url.startswith("sqlite"):
        return "SQLite " + Path(url.split("///", 1)[1]).name
    head, _, tail = url.partition("://")
    who, _, where = tail.rpartition("@")
    return f"PostgreSQL {where}" if who else f"PostgreSQL {tail}"


def connect(url: str) -> Engine:
    """An engine on `url` with the tables created; SQLite in WAL mode with a full fsync on commit."""
    if url.startswith("sqlite"):
        Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_MS / 1000},
                               pool_size=8, max_overflow=8)

        @event.listens_for(engine, "connect")
        def _sqlite(dbapi, _record):
            dbapi.isolation_level = None  # the driver's own BEGINs off: we say when a transaction begins, and how
            cursor = dbapi.cursor()
            # the wait first: switching to WAL needs a lock another process (a torchrun rank, a replica) may hold
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged answer survives a crash of the machine
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")
    else:
        try:
            engine = create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True)
        except ImportError:
            raise UserError("store: PostgreSQL needs psycopg; install it with `pip install goldennoise[postgresql]`.",
                            "store") from None
    with writing(engine) as conn:  # one writer at a time: processes opening the store together do not collide
        metadata.create_all(conn)
    return engine


def _writer_lock(engine: Engine):
    """SQLite takes one writer at a time. A writer that finds the database locked sleeps in SQLite's busy handler
    in growing steps (1, 2, 5, 10 ms ...), so two answers arriving together used to cost the second one up to 8 ms
    of sleep beyond the first one's transaction. Writers of this process queue on a lock instead and start the
    moment the first commits; other processes still meet SQLite's own wait. PostgreSQL: none (row locks)."""
    if engine.dialect.name != "sqlite":
        return nullcontext()
    lock = _WRITERS.get(engine)
    return lock if lock is not None else _WRITERS.setdefault(engine, threading.RLock())


@contextmanager
def writing(engine: Engine):
    """A write transaction (SQLite: BEGIN IMMEDIATE, so two writers queue instead of failing to upgrade)."""
    with _writer_lock(engine), engine.connect() as conn:
        conn.info["write"] = True
        try:
            with conn.begin():
                yield conn
        finally:
            conn.info.pop("write", None)


@contextmanager
def reading(engine: Engine):
    with engine.connect() as conn:
        with conn.begin():
            yield conn


def is_postgresql(conn_or_engine) -> bool:
    return conn_or_engine.dialect.name == "postgresql"


def analyze(conn, *tables) -> None:
    """Refresh PostgreSQL's planner statistics after many rows landed in one transaction (its autovacuum comes
    later). Without them a fresh table looks empty and the planner takes the queue index for a prompt's
    primary-key lookup: rebuilding the queue of 50k prompts then ran for minutes, one row scan per update,
    instead of seconds. SQLite's planner needs no statistics for these lookups."""
    if is_postgresql(conn):
        for table in tables:
            conn.exec_driver_sql(f"ANALYZE {table.name}")


def per_dialect(build):
    """A statement built once per database dialect by `build(conn)` and reused with bound parameters: building a
    SQLAlchemy expression costs about 7x executing it on SQLite (150 us against 20), and an answer runs some thirty
    statements on the queue and the records."""
    made: dict[str, object] = {}

    @functools.wraps(build)
    def get(conn):
        name = conn.dialect.name
        if name not in made:
            made[name] = build(conn)
        return made[name]
    return get


def insert(table, conn):
    """INSERT with ON CONFLICT support for the connection's dialect."""
    if is_postgresql(conn):
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)
