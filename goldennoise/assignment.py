"""Which prompts an annotator may take, so that several annotators get different prompts.

Shared by all sessions of the process. A prompt has room for one annotator, or
two for the `overlap` fraction of prompts chosen (deterministically, by a hash of
the text) to measure agreement. An annotator holds a prompt from the moment it is
shown (a claim with a lease, so a closed tab frees it) until answering it; live
answers in the store hold it for good. On an overlap prompt the second annotator
is shown the seeds the first one judged, so the two judgements compare seed by seed.
"""

from __future__ import annotations

import hashlib
import threading
import time

from goldennoise.history import live
from goldennoise.records import Record

LEASE_SECONDS = 30 * 60


def is_overlap(text: str, overlap: float) -> bool:
    """True for the `overlap` fraction of prompt texts (stable across runs and machines)."""
    digest = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    return digest / 2**64 < overlap


class Assigner:
    def __init__(self, overlap: float = 0.0, lease_seconds: float = LEASE_SECONDS, clock=time.monotonic):
        if not 0.0 <= overlap <= 1.0:
            raise ValueError(f"overlap must lie in 0..1, got {overlap}.")
        self.overlap, self.lease_seconds, self.clock = overlap, lease_seconds, clock
        self._lock = threading.Lock()
        self._answered: dict[str, set[str]] = {}  # prompt text -> annotators with a live judgement or skip
        self._seeds: dict[str, list[int]] = {}  # prompt text -> seeds of its first judgement
        self._claims: dict[str, dict[str, float]] = {}  # prompt text -> annotator -> lease end

    def sync(self, records: list[Record]) -> None:
        """Rebuild what is answered from the store's records."""
        answered: dict[str, set[str]] = {}
        first_seeds: dict[str, list[int]] = {}
        for record in live(records):
            answered.setdefault(record.prompt["text"], set()).add(record.annotator)
            if record.kind == "judgement":
                first_seeds.setdefault(record.prompt["text"], list(record.seeds))
        with self._lock:
            self._answered, self._seeds = answered, first_seeds

    def capacity(self, text: str) -> int:
        return 2 if is_overlap(text, self.overlap) else 1

    def available(self, text: str, annotator: str) -> bool:
        """May `annotator` be shown this prompt now?"""
        with self._lock:
            return self._available(text, annotator)

    def _available(self, text: str, annotator: str) -> bool:
        now = self.clock()
        holders = set(self._answered.get(text, ())) | {
            who for who, until in self._claims.get(text, {}).items() if until > now}
        if annotator in self._answered.get(text, ()):
            return False
        return len(holders - {annotator}) < self.capacity(text)

    def claim(self, text: str, annotator: str) -> bool:
        """Hold the prompt for `annotator` if it is available; True if now held."""
        with self._lock:
            if not self._available(text, annotator):
                return False
            self._claims.setdefault(text, {})[annotator] = self.clock() + self.lease_seconds
            return True

    def release(self, text: str, annotator: str) -> None:
        """The annotator moved on without answering: the prompt is free for others again."""
        with self._lock:
            self._claims.get(text, {}).pop(annotator, None)

    def answered(self, text: str, annotator: str, seeds: list[int] | None) -> None:
        with self._lock:
            self._answered.setdefault(text, set()).add(annotator)
            self._claims.get(text, {}).pop(annotator, None)
            if seeds:
                self._seeds.setdefault(text, list(seeds))

    def retracted(self, text: str, annotator: str) -> None:
        """An undo: the annotator holds the prompt again by claim (it is back on screen)."""
        with self._lock:
            self._answered.get(text, set()).discard(annotator)
            self._claims.setdefault(text, {})[annotator] = self.clock() + self.lease_seconds

    def seeds_for(self, text: str) -> list[int] | None:
        """Seeds an earlier judgement of this prompt was made on (to show the same batch)."""
        with self._lock:
            return self._seeds.get(text)
