"""Annotator names: the form people type, and the identity GoldenNoise counts by.

"ada", "Ada" and " Ada " are one person. Every record keeps the name as it was
shown (`display`); every question about *who* (History, undo, relabel, the queue,
progress, agreement, exports' annotator ids) compares `identity(name)`: NFKC-normalised,
case-folded, whitespace trimmed and collapsed, control and bidirectional-override
characters removed. Logins are identities too: two logins that differ only in case
are refused when the logins are read.
"""

from __future__ import annotations

import unicodedata

MAX_NAME = 64


def clean(text: str) -> str:
    """Text without control characters or bidirectional overrides (which would garble History and exports)."""
    return "".join(c for c in text if unicodedata.category(c) != "Cc" and not "\u202a" <= c <= "\u202e"
                   and not "\u2066" <= c <= "\u2069")


def display(name: str) -> str:
    """The name as shown and recorded: cleaned, whitespace runs collapsed, trimmed."""
    return " ".join(clean(str(name)).split())


def identity(name: str) -> str:
    """Who a name is: the same for every way of typing it (case, width, spacing)."""
    return " ".join(unicodedata.normalize("NFKC", clean(str(name))).casefold().split())
