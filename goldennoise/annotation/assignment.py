"""Which prompts a tab may take, so that annotators (and one annotator's tabs) get different prompts.

Shared by all tabs of the process, one per campaign. A prompt has room for one
annotator's judgement, or two for the `overlap` fraction of prompts chosen by a
hash of the prompt id (to measure agreement). A tab holds a prompt from the
moment it is shown: a lease that the tab renews while it is open and that ends
at once when the tab closes or reloads (or after `lease_seconds` without a sign
of life, for API callers that just stop). A live judgement holds its place for
good; a skip only keeps the prompt away from the annotator who skipped it. A
prompt held by one tab is never shown in another, the same annotator's included.

Pairwise views use their own key space ("pairwise", prompt id), with no cap: a
prompt can be compared by everyone, each seeing another pair of its seeds.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time

from goldennoise.store.live import live

LEASE_SECONDS = 120.0
MAX_HELD = 4  # prompts one annotator may hold at once (over all their tabs and clients); more evicts the oldest


@functools.lru_cache(maxsize=200_000)
def is_overlap(prompt_id: str, overlap: float) -> bool:
    """True for the `overlap` fraction of prompt ids (stable across runs and machines)."""
    digest = int.from_bytes(hashlib.sha256(prompt_id.encode()).digest()[:8], "big")
    return digest / 2**64 < overlap


class Assigner:
    def __init__(self, overlap: float = 0.0, lease_seconds: float = LEASE_SECONDS, clock=time.monotonic):
        self.overlap, self.lease_seconds, self.clock = overlap, lease_seconds, clock
        self._lock = threading.Lock()
        self._judged: dict[str, set[str]] = {}  # prompt id -> annotators with a live judgement
        self._done: dict[tuple[str, str], set[str]] = {}  # (mode, prompt id) -> annotators who answered or skipped
        self._pairs: dict[str, int] = {}  # prompt id -> live pairwise answers (which pair to show next)
        self._compared: dict[str, set[str]] = {}  # prompt id -> annotators with a live pairwise answer
        self._leases: dict[tuple[str, str], dict[str, tuple[str, float]]] = {}  # (mode, pid) -> tab -> (who, until)

    def sync(self, records: list) -> None:
        """Rebuild what is answered from the campaign's records."""
        judged, done, pairs, compared = {}, {}, {}, {}
        for record in live(records):
            pid = record.prompt.id
            mode = record.view or ("pairwise" if record.kind == "pairwise" else "batch")
            done.setdefault((mode, pid), set()).add(record.annotator)
            if record.kind == "judgement":
                judged.setdefault(pid, set()).add(record.annotator)
            elif record.kind == "pairwise":
                pairs[pid] = pairs.get(pid, 0) + 1
                compared.setdefault(pid, set()).add(record.annotator)
        with self._lock:
            self._judged, self._done, self._pairs, self._compared = judged, done, pairs, compared

    def capacity(self, prompt_id: str) -> int:
        return 2 if is_overlap(prompt_id, self.overlap) else 1

    def _holders(self, key, tab: str) -> dict[str, str]:
        now = self.clock()
        leases = self._leases.get(key, {})
        for other in [t for t, (_, until) in leases.items() if until <= now]:
            del leases[other]
        return {t: who for t, (who, _) in leases.items() if t != tab}

    def _available(self, mode: str, prompt_id: str, annotator: str, tab: str) -> bool:
        key = (mode, prompt_id)
        if annotator in self._done.get(key, ()):
            return False
        if self._holders(key, tab):
            return False  # shown in another tab right now (whoever's)
        if mode == "pairwise":
            return True
        return len(self._judged.get(prompt_id, set()) - {annotator}) < self.capacity(prompt_id)

    def claim(self, mode: str, prompt_id: str, annotator: str, tab: str) -> bool:
        """Hold the prompt for this tab if it is available; True if now held.

        One annotator holds at most MAX_HELD prompts: opening more tabs (or API clients) releases the oldest
        hold, so nobody can keep the queue from everyone else.
        """
        with self._lock:
            if not self._available(mode, prompt_id, annotator, tab):
                return False
            held = [(until, key, other) for key, leases in self._leases.items()
                    for other, (who, until) in leases.items() if who == annotator and other != tab]
            for _, key, other in sorted(held)[:max(0, len(held) - MAX_HELD + 1)]:
                self._leases[key].pop(other, None)
            self._leases.setdefault((mode, prompt_id), {})[tab] = (annotator, self.clock() + self.lease_seconds)
            return True

    def available(self, mode: str, prompt_id: str, annotator: str, tab: str) -> bool:
        """Would `claim` succeed now? (Claims nothing.)"""
        with self._lock:
            return self._available(mode, prompt_id, annotator, tab)

    def hold(self, mode: str, prompt_id: str, annotator: str, tab: str) -> None:
        """Hold a prompt already on this tab's screen (after an undo or a relabel), whatever else holds it."""
        with self._lock:
            self._leases.setdefault((mode, prompt_id), {})[tab] = (annotator, self.clock() + self.lease_seconds)

    def renew(self, tab: str) -> None:
        """The tab is alive: extend its leases."""
        until = self.clock() + self.lease_seconds
        with self._lock:
            for leases in self._leases.values():
                if tab in leases:
                    leases[tab] = (leases[tab][0], until)

    def release(self, mode: str, prompt_id: str, tab: str) -> None:
        with self._lock:
            self._leases.get((mode, prompt_id), {}).pop(tab, None)

    def release_tab(self, tab: str) -> int:
        """A tab closed: free everything it held; returns how many prompts."""
        freed = 0
        with self._lock:
            for leases in self._leases.values():
                freed += leases.pop(tab, None) is not None
        return freed

    def answered(self, mode: str, prompt_id: str, annotator: str, tab: str, kind: str) -> None:
        with self._lock:
            self._done.setdefault((mode, prompt_id), set()).add(annotator)
            if kind == "judgement":
                self._judged.setdefault(prompt_id, set()).add(annotator)
            elif kind == "pairwise":
                self._pairs[prompt_id] = self._pairs.get(prompt_id, 0) + 1
                self._compared.setdefault(prompt_id, set()).add(annotator)
            self._leases.get((mode, prompt_id), {}).pop(tab, None)

    def retracted(self, mode: str, prompt_id: str, annotator: str, tab: str, kind: str) -> None:
        """An undo: the answer no longer counts and the prompt is back on this tab's screen."""
        with self._lock:
            self._done.get((mode, prompt_id), set()).discard(annotator)
            if kind == "judgement":
                self._judged.get(prompt_id, set()).discard(annotator)
            elif kind == "pairwise":
                self._pairs[prompt_id] = max(0, self._pairs.get(prompt_id, 0) - 1)
                self._compared.get(prompt_id, set()).discard(annotator)
            self._leases.setdefault((mode, prompt_id), {})[tab] = (annotator, self.clock() + self.lease_seconds)

    def pairs_done(self, prompt_id: str) -> int:
        with self._lock:
            return self._pairs.get(prompt_id, 0)

    def counts(self, mode: str, prompt_ids: list[str], annotator: str) -> dict:
        """This annotator's judged / skipped / still-open counts over `prompt_ids` (ignoring current leases)."""
        with self._lock:
            done = {pid for pid in prompt_ids if annotator in self._done.get((mode, pid), ())}
            if mode == "pairwise":
                judged = sum(annotator in self._compared.get(pid, ()) for pid in done)
            else:
                judged = sum(annotator in self._judged.get(pid, ()) for pid in done)
            full = sum(mode == "batch" and pid not in done and
                       len(self._judged.get(pid, set()) - {annotator}) >= self.capacity(pid) for pid in prompt_ids)
            return {"total": len(prompt_ids), "judged": judged, "skipped": len(done) - judged,
                    "remaining_for_you": len(prompt_ids) - len(done) - full}
