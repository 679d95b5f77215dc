"""Timestamps, identifiers and file hashes shared by every layer (no other dependencies)."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path


def utc_now() -> str:
    """UTC timestamp, ISO 8601 with milliseconds and a Z."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    """A fresh random identifier (32 hex digits)."""
    return uuid.uuid4().hex


def slug(text: str, limit: int = 40) -> str:
    """Lower-case ASCII slug of `text` (`[a-z0-9-]`), at most `limit` characters, never empty."""
    words = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return words[:limit].rstrip("-") or "prompt"


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
