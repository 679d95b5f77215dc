"""The record store: append-only records in a database, answered from indexes, not from memory.

    store = RecordStore("outputs")                       # SQLite: outputs/goldennoise.db
    store = RecordStore("outputs", "postgresql://…")     # several app replicas on one PostgreSQL

`append` validates a record and writes it in one transaction together with everything
derived from it (the live flags of its annotator's records of that batch, the prompt's
queue state and counters, see `queue.py`); the transaction commits with an fsync before
`append` returns, so an acknowledged answer survives a crash of the app. Nothing is ever
rewritten but the `live` flag. The questions the app asks on every request (is this batch
already answered by me, my last answer in this tab, my History page, the next open
prompt, my progress) are indexed queries whose cost does not grow with the campaign.

A `records.jsonl` from GoldenNoise 0.1/0.2 in the outputs folder is imported once (on
opening; or `goldennoise migrate`): each line that is not a valid record (torn, edited,
a repeated `record_id`) is skipped and reported with its line number, here and wherever
records are read (`warnings`). The journal is exported on demand: `export_jsonl`
(`goldennoise export --formats jsonl`) writes every record as its JSON line.
"""

from __future__ import annotations

import errno
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from goldennoise.errors import GenerationError, LeaseLost, NotSaved, Refused
from goldennoise.ids import file_sha256, utc_now
from goldennoise.store import codec, database, queue, schema
from goldennoise.store.database import batches, campaigns, counts, imports, prompts, state
from goldennoise.store.database import records as table
from goldennoise.store.live import ANSWER_KINDS, Link, group_key, live_ids
from goldennoise.store.names import identity
from goldennoise.store.prompts import Prompt

log = logging.getLogger(__name__)
LEGACY_FILE = "records.jsonl"
MAX_WARNINGS = 1000  # per import: the first ones, with the count of the rest
CHUNK = 2000


@dataclass
class ReadResult:
    records: list  # schema.Record models, in the order they were written
    warnings: list[str]


@dataclass(frozen=True)
class Guard:
    """What an answer written by the app must still hold at the moment it is written (else Refused)."""

    session: str | None = None  # the tab must hold the prompt's lease, and the prompt have room (a queue answer)
    new_judgement: bool = False  # no live judgement of this batch by this annotator
    now: float = field(default_factory=time.time)


def _not_saved(error: BaseException) -> NotSaved:
    """The reason a write failed, in words the annotator understands (no server paths)."""
    text = str(getattr(error, "orig", error)).lower()
    code = getattr(error, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT) or "full" in text:
        reason = "the disk holding the records is full"
    elif code == errno.EROFS or "readonly" in text or "read-only" in text:
        reason = "the records are on a read-only disk"
    elif code in (errno.EACCES, errno.EPERM) or "permission" in text:
        reason = "the records may not be written (permissions)"
    elif "locked" in text or "busy" in text:
        reason = "the records database is busy (another process holds it); try again in a moment"
    else:
        reason = "the records database could not be written"
    return NotSaved(f"Not saved: {reason}. Your ticks are kept; ask the person running GoldenNoise to fix it, "
                    "then submit again.", "records")


def _mode(record) -> str | None:
    if record.kind == "retraction":
        return None
    return getattr(record, "view", None) or ("pairwise" if record.kind == "pairwise" else "batch")


def _link(row) -> Link:
    return Link(row.record_id, row.kind, row.annotator, row.batch_id, row.retracts, row.supersedes,
                row.second_opinion_of)


# Statements of the answer path, built once (database.per_dialect says why).
_GROUP_OF = select(table.c.grp, table.c.annotator).where(table.c.record_id == bindparam("rid"))
_GROUP = select(table.c.seq, table.c.record_id, table.c.kind, table.c.annotator, table.c.batch_id, table.c.retracts,
                table.c.supersedes, table.c.second_opinion_of, table.c.live).where(
    table.c.grp == bindparam("grp")).order_by(table.c.seq)
_SET_LIVE = update(table).where(table.c.seq == bindparam("at")).values(live=bindparam("flag"))
_INSERT = table.insert()
_ANSWERED = select(table.c.seq).where(queue.ANSWERED).limit(1)


class RecordStore:
    """Records of one outputs folder (or one PostgreSQL database): append, ask, stream, import, export."""

    def __init__(self, outputs: str | Path, store: str | None = None, import_legacy: bool = True):
        self.outputs = Path(outputs)
        self.url = database.url_for(self.outputs, store)
        self.engine = database.connect(self.url)
        self._overlap: dict[str, float] = {}
        self._lock = threading.Lock()
        if import_legacy:
            self.import_legacy()

    def describe(self) -> str:
        return database.describe(self.url)

    def close(self) -> None:
        self.engine.dispose()

    # Writing ----------------------------------------------------------------------------------

    def append(self, record, guard: Guard | None = None, then=None):
        """Validate and durably write one record (committed with an fsync before returning).

        `then(conn)`: more queue work committed with the record (the service takes the tab's next prompt: one
        transaction and one fsync per answer, not two). It runs in a savepoint: when it fails, it is logged and
        undone, the record stands, and append returns None; else it returns what `then` returned.
        Raises NotSaved (with the reason) when it could not be written, Refused when `guard` no longer holds.
        """
        record = schema.RECORD.validate_python(record)
        body = codec.encode_data(schema.dump(record))
        result = None
        try:
            with database.writing(self.engine) as conn:
                self._append(conn, record, body, guard)
                if then is not None:
                    try:
                        with conn.begin_nested():
                            result = then(conn)
                    except Exception:  # noqa: BLE001 - the record is what counts; the caller redoes its part
                        log.exception("work committed with a record failed; the record stands")
                        result = None
            return result
        except (Refused, NotSaved):
            raise
        except IntegrityError as error:
            if "record_id" in str(error.orig) or "records.record_id" in str(error.orig):
                raise Refused(f"record_id: {record.record_id} is already in the store; nothing was written.",
                              "record_id") from None
            raise Refused("Already recorded: that batch was answered once (perhaps in another tab); nothing more "
                          "was recorded.", "batch_id") from None
        except (OperationalError, OSError) as error:
            raise _not_saved(error) from error

    def _append(self, conn, record, body: bytes, guard: Guard | None) -> None:
        campaign = record.campaign or ""
        who = identity(record.annotator)
        mode = _mode(record)
        queue.lock(conn, campaign, record.prompt.id, self.overlap(campaign, conn))
        if guard is not None:
            self._check_guard(conn, record, campaign, who, mode, guard)
        grp = group_key(campaign, who, getattr(record, "batch_id", None), record.record_id)
        target = getattr(record, "retracts", None) or getattr(record, "supersedes", None)
        if target:
            row = conn.execute(_GROUP_OF, {"rid": target}).first()
            if row is not None and row.annotator == who:
                grp = row.grp
        group = conn.execute(_GROUP, {"grp": grp}).all()
        new = Link(record.record_id, record.kind, who, getattr(record, "batch_id", None),
                   getattr(record, "retracts", None), getattr(record, "supersedes", None),
                   getattr(record, "second_opinion_of", None))
        counted = live_ids([_link(row) for row in group] + [new])
        for row in group:  # flags turned off first, so the unique index never sees two live judgements
            if row.live and row.record_id not in counted:
                conn.execute(_SET_LIVE, {"at": row.seq, "flag": False})
        for row in group:
            if not row.live and row.record_id in counted:
                conn.execute(_SET_LIVE, {"at": row.seq, "flag": True})
        conn.execute(_INSERT, dict(
            record_id=record.record_id, kind=record.kind, campaign=campaign, annotator=who,
            prompt_id=record.prompt.id, prompt_text=record.prompt.text, mode=mode,
            batch_id=getattr(record, "batch_id", None), session_id=record.session_id or None,
            retracts=new.retracts, supersedes=new.supersedes, second_opinion_of=new.second_opinion_of, grp=grp,
            created_at=record.created_at, live=record.record_id in counted, body=body))
        # a retraction can change either view (the one its answer was in); an answer only its own
        queue.refresh(conn, campaign, record.prompt.id, (mode,) if mode else queue.MODES)
        if guard is not None and guard.session and mode:
            queue.release(conn, campaign, mode, record.prompt.id, guard.session)

    def _check_guard(self, conn, record, campaign: str, who: str, mode: str | None, guard: Guard) -> None:
        held = bool(guard.session and mode)
        judging = guard.new_judgement and record.kind == "judgement"
        if not (held or judging):
            return
        facts = queue.answer_facts(conn, campaign, mode or "batch", record.prompt.id, who,
                                   getattr(record, "batch_id", None), guard.now)
        if held and facts.holder != guard.session:
            raise LeaseLost("That prompt is no longer held by this tab (you opened more tabs, or it was idle too "
                          "long) and may be with someone else now; nothing was recorded. Go on with the next one.",
                          "batch_id")
        if judging:
            if record.batch_id and facts.answered:
                raise Refused("Already recorded: that batch was answered once; nothing more was recorded.",
                              "batch_id")
            if guard.session and facts.judged is not None and facts.mine != "judged" \
                    and facts.judged >= facts.capacity:
                raise Refused("Others have already judged this prompt as often as the campaign asks; nothing was "
                              "recorded. Go on with the next one.", "batch_id")

    @staticmethod
    def _answered(conn, campaign: str, who: str, batch_id: str) -> bool:
        return conn.execute(_ANSWERED, {"bid": batch_id, "who": who, "cid": campaign}).first() is not None

    def overlap(self, campaign: str, conn=None) -> float:
        """The campaign's overlap share (0 when the campaign is not known to the store)."""
        if campaign not in self._overlap:
            query = select(campaigns.c.definition).where(campaigns.c.id == campaign)
            text = conn.execute(query).scalar_one_or_none() if conn is not None else self._scalar(query)
            if not text:
                return 0.0
            self._overlap[campaign] = float(json.loads(text).get("overlap", 0.0))  # fixed by the campaign's id
        return self._overlap[campaign]

    def _scalar(self, query):
        with database.reading(self.engine) as conn:
            return conn.execute(query).scalar_one_or_none()

    # Asking ------------------------------------------------------------------------------------

    def answered(self, campaign: str | None, annotator: str, batch_id: str) -> bool:
        """Has `annotator` a live answer naming `batch_id`?"""
        with database.reading(self.engine) as conn:
            return self._answered(conn, campaign or "", identity(annotator), batch_id)

    def get(self, record_id: str):
        """(record, live) for a record id, or None."""
        with database.reading(self.engine) as conn:
            row = conn.execute(select(table.c.body, table.c.live).where(table.c.record_id == record_id)).first()
        return None if row is None else (schema.parse(codec.decode_data(row.body)), bool(row.live))

    def last_in_tab(self, campaign: str | None, annotator: str, session_id: str, mode: str):
        """The tab's (session_id's) last live answer in a view: what Undo takes back."""
        query = select(table.c.body).where(
            table.c.campaign == (campaign or ""), table.c.annotator == identity(annotator),
            table.c.session_id == session_id, table.c.mode == mode, table.c.live).order_by(table.c.seq.desc()).limit(1)
        with database.reading(self.engine) as conn:
            body = conn.execute(query).scalar_one_or_none()
        return None if body is None else schema.parse(codec.decode_data(body))

    def live_judgements(self, campaign: str | None, annotator: str, batch_id: str) -> list:
        """This annotator's live judgements of a batch (at most one, by the rules)."""
        query = select(table.c.body).where(table.c.batch_id == batch_id, table.c.annotator == identity(annotator),
                                           table.c.campaign == (campaign or ""), table.c.live,
                                           table.c.kind == "judgement").order_by(table.c.seq)
        with database.reading(self.engine) as conn:
            return [schema.parse(codec.decode_data(b)) for b in conn.execute(query).scalars()]

    def history(self, campaign: str | None, annotator: str | None = None, text: str = "", limit: int = 500) -> list:
        """Live answers of a campaign, newest first: one annotator's (None: everyone's), prompt containing `text`."""
        query = select(table.c.body).where(table.c.campaign == (campaign or ""), table.c.live,
                                           table.c.kind.in_(ANSWER_KINDS))
        if annotator is not None:
            query = query.where(table.c.annotator == identity(annotator))
        if text.strip():
            escaped = text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(table.c.prompt_text.ilike(f"%{escaped}%", escape="\\"))
        with database.reading(self.engine) as conn:
            bodies = conn.execute(query.order_by(table.c.seq.desc()).limit(limit)).scalars().all()
        return [schema.parse(codec.decode_data(b)) for b in bodies]

    def campaigns_of(self, annotator: str | None = None) -> list[str | None]:
        """Campaigns with records (of one annotator), most recent first; None stands for "no campaign"."""
        query = select(table.c.campaign, func.max(table.c.seq).label("last")).group_by(table.c.campaign)
        if annotator is not None:
            query = query.where(table.c.annotator == identity(annotator))
        with database.reading(self.engine) as conn:
            rows = conn.execute(query.order_by(func.max(table.c.seq).desc())).all()
        return [row.campaign or None for row in rows]

    def answer_counts(self, campaign=...) -> dict:
        """How many answers were recorded, retracted, superseded and live (by kind), and live second opinions;
        `campaign` ... for every campaign, None for records made without one."""
        from sqlalchemy import and_, tuple_
        from sqlalchemy.orm import aliased  # lazy: only the counts need an alias

        answers = table.c.kind.in_(ANSWER_KINDS)
        where = [answers] if campaign is ... else [answers, table.c.campaign == (campaign or "")]
        undo = aliased(table)
        # answers whose (record id, annotator) a retraction names: the retractions are read once into the IN set (a
        # correlated EXISTS, or a join the planner ran answer by answer, scanned the table per answer: `retracts` has
        # no index of its own, and 100k answers took over ten minutes)
        named = select(undo.c.retracts, undo.c.annotator).where(undo.c.kind == "retraction")
        retracted = select(func.count()).where(*where, tuple_(table.c.record_id, table.c.annotator).in_(named))
        with database.reading(self.engine) as conn:
            recorded = conn.execute(select(func.count()).where(*where)).scalar_one()
            undone = conn.execute(retracted).scalar_one()
            by_kind = dict(conn.execute(select(table.c.kind, func.count()).where(*where, table.c.live)
                                        .group_by(table.c.kind)).all())
            seconds = conn.execute(select(func.count()).where(and_(*where), table.c.live,
                                                              table.c.second_opinion_of.is_not(None))).scalar_one()
        counts = {"recorded": recorded, "retracted": undone,
                  "superseded": recorded - undone - sum(by_kind.values())}
        counts.update({f"live_{kind}": by_kind.get(kind, 0) for kind in ANSWER_KINDS})
        counts["second_opinions"] = seconds
        return counts

    def count(self, campaign: str | None = None, live: bool | None = None) -> int:
        query = select(func.count()).select_from(table)
        if campaign is not None:
            query = query.where(table.c.campaign == campaign)
        if live is not None:
            query = query.where(table.c.live.is_(live))
        with database.reading(self.engine) as conn:
            return conn.execute(query).scalar_one()

    # Streaming -----------------------------------------------------------------------------------

    def iter_data(self, campaign: str | None = ..., live_only: bool = False, kinds=None,
                  chunk: int = CHUNK, packed: bool = False) -> Iterator[dict]:
        """Records as JSON data (no validation: they were validated when written), in write order, `chunk` rows
        per query so memory stays bounded. `campaign` ... (the default): every campaign; None: records made
        without one. `packed`: fingerprint lists left as packed text (`codec.unpacked_noise` unpacks a block)."""
        last = 0
        while True:
            query = select(table.c.seq, table.c.body, table.c.live).where(table.c.seq > last)
            if campaign is not ...:
                query = query.where(table.c.campaign == (campaign or ""))
            if live_only:
                query = query.where(table.c.live)
            if kinds is not None:
                query = query.where(table.c.kind.in_(kinds))
            with database.reading(self.engine) as conn:
                rows = conn.execute(query.order_by(table.c.seq).limit(chunk)).all()
            for row in rows:
                yield codec.decode_data(row.body, unpack=not packed)
            if len(rows) < chunk:
                return
            last = rows[-1].seq

    def iter_records(self, campaign: str | None = ..., live_only: bool = False, kinds=None) -> Iterator:
        """Like `iter_data`, as validated schema models."""
        for data in self.iter_data(campaign, live_only, kinds):
            yield schema.parse(data)

    def read(self) -> ReadResult:
        """Every record in write order, and a warning per line skipped when importing (small stores, tests)."""
        return ReadResult(list(self.iter_records()), self.warnings())

    def live(self, campaign: str | None = ...) -> list:
        """The live answers (of one campaign), in write order."""
        return list(self.iter_records(campaign, live_only=True))

    def warnings(self) -> list[str]:
        """Lines skipped when records.jsonl files were imported, each with its number and why."""
        with database.reading(self.engine) as conn:
            stored = conn.execute(select(imports.c.warnings).order_by(imports.c.at)).scalars().all()
        return [w for text in stored for w in json.loads(text)]

    # Importing and exporting --------------------------------------------------------------------------

    def import_legacy(self) -> dict | None:
        """Import `<outputs>/records.jsonl` (GoldenNoise 0.1/0.2) once; None when there is none or it was."""
        path = self.outputs / LEGACY_FILE
        if not path.is_file():
            return None
        return self.import_jsonl(path)

    def import_jsonl(self, path: str | Path) -> dict | None:
        """Import a records.jsonl file once (known by its size and time, then its content's hash).

        Returns {"imported", "skipped", "warnings"}, or None when this file was imported before."""
        path = Path(path)
        stat = path.stat()
        with self._lock:
            with database.reading(self.engine) as conn:
                if conn.execute(select(imports.c.source).where(imports.c.size == stat.st_size,
                                                               imports.c.mtime_ns == stat.st_mtime_ns)).first():
                    return None
            digest = file_sha256(path)
            with database.reading(self.engine) as conn:
                if conn.execute(select(imports.c.source).where(imports.c.source == digest)).first():
                    return None
            return self._import(path, digest, stat)

    def _import(self, path: Path, digest: str, stat) -> dict:
        warnings, imported, skipped = [], 0, 0
        touched: set[tuple[str, str]] = set()
        with database.writing(self.engine) as conn:
            seen = set(conn.execute(select(table.c.record_id)).scalars())
            first_line: dict[str, int] = {}
            with open(path, "rb") as handle:
                for number, raw in enumerate(handle, start=1):
                    if not raw.strip():
                        continue
                    try:
                        record = schema.parse_line(raw)
                    except schema.SchemaError as error:
                        skipped += 1
                        warnings.append(f"{path.name} line {number} skipped: {error}")
                        continue
                    if record.record_id in seen:
                        skipped += 1
                        where = f" (first on line {first_line[record.record_id]})" if record.record_id in first_line \
                            else " (already in the store)"
                        warnings.append(f"{path.name} line {number} skipped: a duplicate of record "
                                        f"{record.record_id}{where}")
                        continue
                    seen.add(record.record_id)
                    first_line[record.record_id] = number
                    self._insert_imported(conn, record)
                    touched.add((record.campaign or "", record.prompt.id))
                    imported += 1
            self._relive(conn, {c for c, _ in touched})
            for campaign in {c for c, _ in touched}:
                queue.rebuild(conn, campaign)
            shown = warnings[:MAX_WARNINGS] + ([f"… and {len(warnings) - MAX_WARNINGS} more skipped lines"]
                                               if len(warnings) > MAX_WARNINGS else [])
            conn.execute(imports.insert().values(source=digest, name=path.name, size=stat.st_size,
                                                 mtime_ns=stat.st_mtime_ns, imported=imported, skipped=skipped,
                                                 warnings=json.dumps(shown), at=utc_now()))
        log.info("imported %s: %d records, %d lines skipped", path.name, imported, skipped)
        return {"imported": imported, "skipped": skipped, "warnings": warnings}

    def _insert_imported(self, conn, record) -> None:
        campaign, who = record.campaign or "", identity(record.annotator)
        queue.lock(conn, campaign, record.prompt.id, self.overlap(campaign, conn))
        target = getattr(record, "retracts", None) or getattr(record, "supersedes", None)
        grp = group_key(campaign, who, getattr(record, "batch_id", None), record.record_id)
        if target:
            row = conn.execute(select(table.c.grp, table.c.annotator).where(table.c.record_id == target)).first()
            if row is not None and row.annotator == who:
                grp = row.grp
        conn.execute(table.insert().values(
            record_id=record.record_id, kind=record.kind, campaign=campaign, annotator=who,
            prompt_id=record.prompt.id, prompt_text=record.prompt.text, mode=_mode(record),
            batch_id=getattr(record, "batch_id", None), session_id=record.session_id or None,
            retracts=getattr(record, "retracts", None), supersedes=getattr(record, "supersedes", None),
            second_opinion_of=getattr(record, "second_opinion_of", None), grp=grp, created_at=record.created_at,
            live=False, body=codec.encode_data(schema.dump(record))))

    @staticmethod
    def _relive(conn, campaigns_touched: set[str]) -> None:
        """Recompute every live flag of these campaigns, group by group (after an import)."""
        for campaign in campaigns_touched:
            rows = conn.execute(select(table.c.seq, table.c.grp, table.c.record_id, table.c.kind, table.c.annotator,
                                       table.c.batch_id, table.c.retracts, table.c.supersedes,
                                       table.c.second_opinion_of, table.c.live)
                                .where(table.c.campaign == campaign).order_by(table.c.grp, table.c.seq)).all()
            start = 0
            for end in range(1, len(rows) + 1):
                if end == len(rows) or rows[end].grp != rows[start].grp:
                    group = rows[start:end]
                    counted = live_ids(_link(r) for r in group)
                    off = [r.seq for r in group if r.live and r.record_id not in counted]
                    on = [r.seq for r in group if not r.live and r.record_id in counted]
                    if off:
                        conn.execute(update(table).where(table.c.seq.in_(off)).values(live=False))
                    if on:
                        conn.execute(update(table).where(table.c.seq.in_(on)).values(live=True))
                    start = end

    def export_jsonl(self, path: str | Path, campaign: str | None = ...) -> int:
        """Write every record (of one campaign) as its JSON line, in write order; returns the count."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp, written = path.with_suffix(path.suffix + ".tmp"), 0
        with open(tmp, "w", encoding="utf-8") as handle:
            for data in self.iter_data(campaign):
                handle.write(json.dumps(data, ensure_ascii=False) + "\n")
                written += 1
        tmp.replace(path)
        return written

    # Campaigns, prompts, batches, the active campaign -----------------------------------------------

    def campaign_for_source(self, definition_without_prompts: str, source: str) -> str | None:
        """A campaign id already registered for this definition and prompt file content, if any."""
        with database.reading(self.engine) as conn:
            rows = conn.execute(select(campaigns.c.id, campaigns.c.definition).where(
                campaigns.c.prompts_source == source)).all()
        for campaign_id, text in rows:
            data = json.loads(text)
            if _without(data) == definition_without_prompts:
                return campaign_id
        return None

    def register_campaign(self, campaign_id: str, definition: dict, prompt_rows: list[dict] | None,
                          source: str | None) -> None:
        """Record a resolved campaign and (once) its prompt list and queue."""
        with database.writing(self.engine) as conn:
            stmt = database.insert(campaigns, conn).on_conflict_do_nothing()
            conn.execute(stmt, {"id": campaign_id, "definition": json.dumps(definition, sort_keys=True),
                                "prompts_source": source,
                                "prompt_count": len(prompt_rows) if prompt_rows is not None else None})
            self._overlap.pop(campaign_id, None)
            if prompt_rows is not None and not queue.is_registered(conn, campaign_id):
                queue.register(conn, campaign_id, prompt_rows, float(definition.get("overlap", 0.0)))

    def campaign_ids(self) -> list[str]:
        with database.reading(self.engine) as conn:
            return list(conn.execute(select(campaigns.c.id)).scalars())

    def definition(self, campaign_id: str) -> dict | None:
        text = self._scalar(select(campaigns.c.definition).where(campaigns.c.id == campaign_id))
        return json.loads(text) if text else None

    def listed_count(self, campaign: str) -> int:
        """Prompts in the campaign's list (not those made on request)."""
        return self._scalar(select(counts.c.total).where(counts.c.campaign == campaign, counts.c.mode == "batch")) or 0

    def prompt_rows(self, campaign: str, where) -> list:
        """Prompt rows (idx, prompt_id, text, source, metadata_sha256) of a campaign matching `where`."""
        with database.reading(self.engine) as conn:
            return conn.execute(select(prompts.c.idx, prompts.c.prompt_id, prompts.c.text, prompts.c.source,
                                       prompts.c.metadata_sha256).where(prompts.c.campaign == campaign, where)
                                .order_by(prompts.c.idx)).all()

    def adhoc_prompt(self, campaign: str, text: str, prompt_id: str):
        """A prompt answered outside the campaign's list (an administrator's or a script's): kept with the list,
        after it, so its index is stable; never handed out by the queue."""
        with database.writing(self.engine) as conn:
            row = conn.execute(select(prompts.c.idx).where(prompts.c.campaign == campaign,
                                                           prompts.c.prompt_id == prompt_id)).first()
            if row is None:
                index = conn.execute(select(func.coalesce(func.max(prompts.c.idx) + 1, 0)).where(
                    prompts.c.campaign == campaign)).scalar_one()
                conn.execute(prompts.insert().values(campaign=campaign, idx=index, prompt_id=prompt_id, text=text,
                                                     source="request", metadata_sha256=None))
            else:
                index = row.idx
        return Prompt(text, prompt_id, index, "request")

    def has_batch(self, campaign: str, prompt_id: str) -> bool:
        return self._scalar(select(batches.c.batch_id).where(batches.c.campaign == campaign,
                                                             batches.c.prompt_id == prompt_id)) is not None

    def batch(self, campaign: str, prompt_id: str) -> dict | None:
        body = self._scalar(select(batches.c.body).where(batches.c.campaign == campaign,
                                                         batches.c.prompt_id == prompt_id))
        return None if body is None else codec.decode_data(body)

    def put_batch(self, campaign: str, data: dict) -> None:
        """Store a finished batch (its images are on disk); the first stored batch of a prompt stays the batch.

        Raises GenerationError saying why when it cannot be written (a full or read-only disk)."""
        try:
            with database.writing(self.engine) as conn:
                conn.execute(database.insert(batches, conn).on_conflict_do_nothing(),
                             {"campaign": campaign, "prompt_id": data["prompt_id"], "batch_id": data["batch_id"],
                              "body": codec.encode_data(data)})
        except (OperationalError, OSError) as error:
            reason = str(_not_saved(error)).split(": ", 1)[1].split(". Your ticks")[0]
            raise GenerationError(f"The next batch could not be stored ({reason}); nothing is lost. Tell the person "
                                  "running GoldenNoise.", "outputs") from error

    def batch_count(self, campaign: str) -> int:
        return self._scalar(select(func.count()).select_from(batches).where(batches.c.campaign == campaign)) or 0

    def batch_prompt_ids(self, campaign: str) -> set[str]:
        with database.reading(self.engine) as conn:
            return set(conn.execute(select(batches.c.prompt_id).where(batches.c.campaign == campaign)).scalars())

    def active(self) -> tuple[dict | None, int]:
        """(definition of the campaign every replica should run, its epoch); (None, 0) before any."""
        with database.reading(self.engine) as conn:
            rows = dict(conn.execute(select(state.c.key, state.c.value).where(
                state.c.key.in_(("active", "epoch")))).all())
        return (json.loads(rows["active"]) if "active" in rows else None), int(rows.get("epoch", 0))

    def epoch(self) -> int:
        """The number of campaign switches so far (0 before any): cheap to ask, to learn whether to read `active`."""
        return int(self._scalar(select(state.c.value).where(state.c.key == "epoch")) or 0)

    def set_active(self, definition: dict) -> int:
        """Make `definition` the campaign of every replica; returns the new epoch."""
        with database.writing(self.engine) as conn:
            epoch = int(conn.execute(select(state.c.value).where(state.c.key == "epoch")).scalar_one_or_none() or 0)
            for key, value in (("active", json.dumps(definition, sort_keys=True)), ("epoch", str(epoch + 1))):
                stmt = database.insert(state, conn)
                conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": stmt.excluded.value}),
                             {"key": key, "value": value})
        return epoch + 1

    # The queue (leases, progress), through the store's engine --------------------------------------------

    def queue(self, write: bool = False):
        """A transaction for the queue functions of `queue.py`."""
        return database.writing(self.engine) if write else database.reading(self.engine)


def _without(definition: dict) -> str:
    data = {k: v for k, v in definition.items() if k not in ("id", "prompts", "prompts_sha256", "annotators")}
    return json.dumps(data, sort_keys=True)


def definition_key(definition: dict) -> str:
    """A campaign definition without its prompt file's path, hash and annotators: with a prompt file's content
    hash, enough to find the campaign a start-up names without reading the prompt file."""
    return _without(definition)


__all__ = ["RecordStore", "ReadResult", "Guard", "file_sha256", "definition_key"]
