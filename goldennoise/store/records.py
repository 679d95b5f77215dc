"""The append-only JSON Lines store of records, `<outputs>/records.jsonl`.

Durability: each record is validated, then written as one `os.write` of a
complete line under an exclusive file lock (`filelock`: works across threads,
processes and operating systems), then fsynced. A failed or short write is cut
back off the file before the lock is released, so the file never keeps half a
line; if a crash left one anyway, the next append starts on a new line and
readers skip the broken line with a warning. Nothing is ever rewritten.

Reading is incremental: the store remembers how far it has parsed and reads only
what was appended since (by this or any other process), so asking for the
records on every request stays cheap as the file grows. Lines that are not valid
records are reported with their line number and skipped, never fatal.
"""

from __future__ import annotations

import errno
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from goldennoise.errors import NotSaved
from goldennoise.ids import new_id, utc_now  # noqa: F401  (re-exported: records are made with these)
from goldennoise.store import schema

RECORDS_FILE = "records.jsonl"
LOCK_SUFFIX = ".lock"


@dataclass
class ReadResult:
    records: list  # schema.Record models, in file order
    warnings: list[str]


def _not_saved(error: OSError) -> NotSaved:
    """The reason an append failed, in words the annotator understands (no server paths)."""
    reasons = {
        errno.ENOSPC: "the disk holding the records is full",
        errno.EDQUOT: "the disk quota for the records is used up",
        errno.EROFS: "the records folder is on a read-only disk",
        errno.EACCES: "the records file may not be written (permissions)",
        errno.EPERM: "the records file may not be written (permissions)",
    }
    reason = reasons.get(error.errno, f"the records file could not be written ({error.strerror or 'I/O error'})")
    return NotSaved(f"Not saved: {reason}. Your ticks are kept; ask the person running GoldenNoise to fix it, "
                    "then submit again.", "records")


class RecordStore:
    """Append-only JSON Lines file of records at `<outputs>/records.jsonl`."""

    def __init__(self, outputs: str | Path):
        self.outputs = Path(outputs)
        self.path = self.outputs / RECORDS_FILE
        self._lock = FileLock(str(self.path) + LOCK_SUFFIX)
        # Threads of this process queue on a plain lock (FileLock polls every 50 ms when contended, which made the
        # slowest appends of 16 annotators 100 ms); the file lock then only orders processes.
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._records: list = []
        self._warnings: list[str] = []
        self._offset = 0
        self._lines = 0
        self._identity: tuple | None = None

    def append(self, record) -> None:
        """Validate and durably append one record (flushed and fsynced before returning).

        Raises NotSaved, naming the reason, when the line could not be written.
        """
        line = (schema.RECORD.dump_json(schema.RECORD.validate_python(record)).decode() + "\n").encode("utf-8")
        try:
            self.outputs.mkdir(parents=True, exist_ok=True)
            with self._write_lock, self._lock.acquire(poll_interval=0.005):
                self._write(line)
        except OSError as error:
            raise _not_saved(error) from error

    def _write(self, line: bytes) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # a crash left a partial line: do not glue onto it
            try:
                written = os.write(fd, line)
                if written != len(line):
                    raise OSError(errno.ENOSPC, "short write")
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, size)  # never leave half a line behind
                raise
        finally:
            os.close(fd)

    def read(self) -> ReadResult:
        """All valid records in file order, and a warning per skipped line (with its number)."""
        with self._read_lock:
            self._catch_up()
            return ReadResult(list(self._records), list(self._warnings))

    def _catch_up(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._records, self._warnings, self._offset, self._lines, self._identity = [], [], 0, 0, None
            return
        identity = (stat.st_dev, stat.st_ino)
        if identity != self._identity or stat.st_size < self._offset:  # replaced or truncated: start over
            self._records, self._warnings, self._offset, self._lines = [], [], 0, 0
            self._identity = identity
        if stat.st_size == self._offset:
            return
        with open(self.path, "rb") as handle:
            handle.seek(self._offset)
            data = handle.read(stat.st_size - self._offset)
        end = data.rfind(b"\n") + 1  # a line without its newline may still be being written: leave it
        for raw in data[:end].split(b"\n")[:-1]:
            self._lines += 1
            if not raw.strip():
                continue
            try:
                self._records.append(schema.parse_line(raw))
            except schema.SchemaError as error:
                self._warnings.append(f"{self.path.name} line {self._lines} skipped: {error}")
        self._offset += end
