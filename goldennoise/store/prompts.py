"""Prompt files: CSV, JSON, JSONL and TXT into a list of `Prompt`.

Formats (chosen by file extension):
- CSV: a header row with a `prompt` column; other columns are kept as metadata
  (an `id` column, if any, becomes the prompt id).
- JSON: a list of strings, or of objects with a "prompt" key (other keys kept),
  or an object {"prompts": [...]} holding such a list.
- JSONL: one string or object per line.
- TXT: one prompt per line.
Empty prompts are dropped, later duplicates are dropped and reported. A file that
cannot be read raises PromptFileError naming the line or field that is wrong.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from goldennoise.errors import PromptFileError

MAX_FILE_BYTES = 20 * 1024 * 1024  # an upload through the app
MAX_CAMPAIGN_FILE_BYTES = 1024 * 1024 * 1024  # a campaign's own file on disk (500k prompts are ~25 MiB)
MAX_PROMPT_CHARS = 4000
FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "txt"}


MAX_METADATA_BYTES = 8 * 1024
MAX_ID_CHARS = 1024


@dataclass(frozen=True)
class Prompt:
    """One prompt. Its id is data, never a file name; its metadata is stored once per campaign."""

    text: str
    id: str
    index: int
    source: str
    metadata: dict = field(default_factory=dict)

    @property
    def metadata_sha256(self) -> str:
        return hashlib.sha256(_canonical(self.metadata).encode()).hexdigest()

    def ref(self) -> dict:
        """The record's `prompt` block: text, id, index, source and the metadata's hash."""
        return {"text": self.text, "id": self.id, "index": self.index, "source": self.source,
                "metadata_sha256": self.metadata_sha256}


def _clean(text: str) -> str:
    import unicodedata

    return "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@dataclass
class PromptSet:
    prompts: list[Prompt]
    source: str
    duplicates: list[str] = field(default_factory=list)  # texts dropped as repeats
    empty: int = 0  # entries dropped as empty

    def summary(self) -> str:
        text = f"{len(self.prompts)} prompts from {Path(self.source).name}"
        if self.duplicates:
            shown = "; ".join(repr(d[:40]) for d in self.duplicates[:3])
            text += f"; {len(self.duplicates)} duplicate(s) dropped ({shown}{' …' if len(self.duplicates) > 3 else ''})"
        if self.empty:
            text += f"; {self.empty} empty entr{'y' if self.empty == 1 else 'ies'} dropped"
        return text


def prompt_id(text: str) -> str:
    """A stable id for a prompt text (64 bits of its hash: no collisions in files of millions of prompts)."""
    return "p-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_size(name: str, size: int, limit: int = MAX_FILE_BYTES) -> None:
    if size > limit:
        raise PromptFileError(f"{name}: file is {size / 2**20:.1f} MiB; the limit is {limit / 2**20:.0f} MiB.")


def _decode(data: bytes, source: str) -> str:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 with a byte order mark (Excel/Notepad exports)
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise PromptFileError(f"{source}: starts as UTF-16 text but does not decode; save it as UTF-8.") from None
    if b"\x00" in data[:8192]:
        raise PromptFileError(f"{source}: this looks like a binary file, not a text prompt file.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise PromptFileError(f"{source}, line {line}: not UTF-8 text (byte {error.start}); save the file as UTF-8.") from None


def _entry(item, where: str) -> tuple[str, dict]:
    """(text, metadata) from a JSON entry: a string or an object with "prompt"."""
    if isinstance(item, str):
        return item, {}
    if isinstance(item, dict):
        if "prompt" not in item:
            raise PromptFileError(f"{where}: object has no \"prompt\" field (fields: {', '.join(list(item)[:8])}).")
        text = item["prompt"]
        if not isinstance(text, str):
            raise PromptFileError(f"{where}: \"prompt\" must be a string, got {type(text).__name__}.")
        return text, {k: v for k, v in item.items() if k != "prompt"}
    raise PromptFileError(f"{where}: expected a string or an object with \"prompt\", got {type(item).__name__}.")


def _loads(text: str, where: str, locate: bool):
    """json.loads with errors that name the place; `locate` adds the parser's line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        at = f", line {error.lineno} column {error.colno}" if locate else ""
        raise PromptFileError(f"{where}{at}: invalid JSON ({error.msg}).") from None
    except RecursionError:
        raise PromptFileError(f"{where}: JSON nested too deeply.") from None
    except ValueError as error:  # e.g. a number with thousands of digits
        raise PromptFileError(f"{where}: unreadable JSON ({str(error)[:80]}).") from None


def _parse_json(text: str, source: str) -> list[tuple[str, dict, str]]:
    data = _loads(text, source, locate=True)
    if isinstance(data, dict) and "prompts" in data:
        data = data["prompts"]
    if not isinstance(data, list):
        raise PromptFileError(f"{source}: expected a JSON list of prompts (or {{\"prompts\": [...]}}), got {type(data).__name__}.")
    return [(*_entry(item, f"{source}, item {i}"), f"item {i}") for i, item in enumerate(data)]


def _parse_jsonl(text: str, source: str) -> list[tuple[str, dict, str]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        item = _loads(line, f"{source}, line {number}", locate=False)
        rows.append((*_entry(item, f"{source}, line {number}"), f"line {number}"))
    return rows


def _parse_csv(text: str, source: str) -> list[tuple[str, dict, str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)  # strict: an unclosed quote is an error
    columns = {name.strip().lower(): name for name in (reader.fieldnames or []) if name}
    if "prompt" not in columns:
        raise PromptFileError(f"{source}, line 1: no 'prompt' column in the header (columns: {', '.join(columns) or 'none'}).")
    rows = []
    try:
        for row in reader:
            if None in row:  # more fields than the header names
                raise PromptFileError(f"{source}, line {reader.line_num}: more fields than header columns.")
            text_value = row[columns["prompt"]] or ""
            metadata = {key.strip(): value for key, value in row.items() if key != columns["prompt"] and key}
            rows.append((text_value, metadata, f"line {reader.line_num}"))
    except csv.Error as error:
        # line_num counts lines fully read, so the broken row starts on the next one.
        hint = " (an unclosed quote?)" if "end of data" in str(error) else ""
        raise PromptFileError(f"{source}, row starting at line {reader.line_num + 1}: malformed CSV ({error}){hint}.") from None
    return rows


def _parse_txt(text: str, source: str) -> list[tuple[str, dict, str]]:
    return [(line, {}, f"line {n}") for n, line in enumerate(text.splitlines(), start=1)]


_PARSERS = {"csv": _parse_csv, "json": _parse_json, "jsonl": _parse_jsonl, "txt": _parse_txt}


def parse_prompts(data: bytes, source: str, fmt: str | None = None, limit: int = MAX_FILE_BYTES) -> PromptSet:
    """Parse prompt file bytes; `fmt` defaults to the format named by `source`'s extension."""
    name = Path(source).name
    fmt = fmt or FORMATS.get(Path(source).suffix.lower())
    if fmt not in _PARSERS:
        raise PromptFileError(f"{name}: unsupported file type; use one of {', '.join(sorted(FORMATS))}.")
    _check_size(name, len(data), limit)
    rows = _PARSERS[fmt](_decode(data, name), name)
    prompts, seen, duplicates, empty, ids = [], set(), [], 0, {}
    for text, metadata, where in rows:
        text = " ".join(_clean(text).split())  # one line: control characters dropped, whitespace runs become one space
        try:
            (text + _canonical(metadata)).encode("utf-8")
        except UnicodeEncodeError:
            raise PromptFileError(f"{name}, {where}: not valid Unicode (a lone surrogate); fix the text.") from None
        if not text:
            empty += 1
            continue
        if len(text) > MAX_PROMPT_CHARS:
            raise PromptFileError(f"{name}, {where}: prompt is {len(text)} characters; the limit is {MAX_PROMPT_CHARS}.")
        if text in seen:
            duplicates.append(text)
            continue
        seen.add(text)
        if len(_canonical(metadata).encode()) > MAX_METADATA_BYTES:
            raise PromptFileError(f"{name}, {where}: metadata is over {MAX_METADATA_BYTES // 1024} KiB; keep "
                                  "only the columns you need (it is stored once per campaign).")
        given_id = metadata.get("id")
        pid = str(given_id) if given_id not in (None, "") else prompt_id(text)
        if len(pid) > MAX_ID_CHARS:
            raise PromptFileError(f"{name}, {where}: id is {len(pid)} characters; the limit is {MAX_ID_CHARS}.")
        if pid in ids:
            raise PromptFileError(f"{name}, {where}: id {pid[:40]!r} is already used ({ids[pid]}); ids must be unique.")
        ids[pid] = where
        prompts.append(Prompt(text=text, id=pid, index=len(prompts), source=name, metadata=metadata))
    if not prompts:
        raise PromptFileError(f"{name}: no prompts found (every entry was empty).")
    return PromptSet(prompts=prompts, source=name, duplicates=duplicates, empty=empty)


def load_prompts(path: str | Path, limit: int = MAX_FILE_BYTES) -> PromptSet:
    """Read and parse a prompt file from disk (at most `limit` bytes: an upload's, unless the caller says)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        raise PromptFileError(f"{path.name}: cannot read ({error.strerror}).") from None
    _check_size(path.name, size, limit)
    return parse_prompts(path.read_bytes(), str(path), limit=limit)
