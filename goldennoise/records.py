"""Judgement records: one dataclass <-> one JSON line, in an append-only store.

Durability: each record is written as one `os.write` of a complete line under an
exclusive `flock`, then fsynced, so a crash loses at most the record being
written. If a crash left a truncated last line, the next append starts on a new
line, and readers skip the broken line with a warning. Nothing is rewritten.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

SCHEMA_VERSION = 1
RECORDS_FILE = "records.jsonl"


def utc_now() -> str:
    """UTC timestamp, ISO 8601 with milliseconds and a Z."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_record_id() -> str:
    return uuid.uuid4().hex


KINDS = ("judgement", "skip", "retraction", "pairwise")


@dataclass
class Record:
    """One line of the store: a judgement of a batch, or a skip, retraction or pairwise answer.

    kind "judgement": `golden_seeds` were chosen among `seeds`, the rest are `bad_seeds`;
      `verdict` says "all_golden", "none_golden" or "some_golden"; `supersedes` names
      the record it relabels, if any.
    kind "skip": the prompt was passed over; `seeds` were shown but not judged.
    kind "retraction": an undo; `retracts` names the record readers must ignore.
    kind "pairwise": two seeds compared; `preference` = {"left", "right", "winner"}
      with winner "left", "right", "tie" or "both_bad".
    """

    record_id: str
    created_at: str
    annotator: str
    prompt: dict  # text, id, index, source, metadata
    model: dict = field(default_factory=dict)  # id, name, revision, dtype, pipeline_class, device, placement
    parameters: dict = field(default_factory=dict)  # num_inference_steps, guidance_scale, scheduler, height, width, ...
    seeds: list[int] = field(default_factory=list)  # all seeds shown, in display order
    golden_seeds: list[int] = field(default_factory=list)
    bad_seeds: list[int] = field(default_factory=list)  # the shown seeds not chosen: kept, never dropped
    samples: list[dict] = field(default_factory=list)  # per seed, display order: seed, golden, clip_score, image_path, noise
    seed_strategy: dict = field(default_factory=dict)
    clip_model: dict | None = None
    timing: dict = field(default_factory=dict)  # generated_at, shown_at, generation_seconds, ...
    versions: dict = field(default_factory=dict)
    session_id: str = ""
    kind: str = "judgement"
    verdict: str | None = None
    supersedes: str | None = None
    retracts: str | None = None
    preference: dict | None = None
    prefilter: dict | None = None  # {"method", "candidates", "hidden": [per-seed sample of seeds not shown]}
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict) -> "Record":
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        missing = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING} - set(data)
        if missing:
            raise ValueError(f"record lacks {', '.join(sorted(missing))}")
        if data.get("kind", "judgement") not in KINDS:
            raise ValueError(f"unknown record kind {data.get('kind')!r}")
        return cls(**{key: value for key, value in data.items() if key in names})


@dataclass
class ReadResult:
    records: list[Record]
    warnings: list[str]


class RecordStore:
    """Append-only JSON Lines file of records at `<outputs>/records.jsonl`."""

    def __init__(self, outputs: str | Path):
        self.outputs = Path(outputs)
        self.path = self.outputs / RECORDS_FILE

    def append(self, record: Record) -> None:
        """Durably append one record (flushed and fsynced before returning)."""
        line = (record.to_json() + "\n").encode("utf-8")
        self.outputs.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # one writer at a time, across threads and processes
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # a crash left a partial line: do not glue onto it
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")
            os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the lock

    def read(self) -> ReadResult:
        """All readable records in file order; broken lines are skipped with a warning."""
        if not self.path.exists():
            return ReadResult([], [])
        records, warnings = [], []
        with open(self.path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    records.append(Record.from_dict(json.loads(raw)))
                except (ValueError, TypeError) as error:
                    ending = "" if raw.endswith(b"\n") else " (truncated last line)"
                    warnings.append(f"{self.path.name} line {number} skipped{ending}: {error}")
        return ReadResult(records, warnings)
