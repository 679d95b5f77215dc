"""Timestamps and identifiers shared by every layer (no other dependencies)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone


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
