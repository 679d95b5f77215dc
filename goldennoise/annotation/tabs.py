"""Per-tab state: what each view of one browser tab (or API client, or script) shows, and nothing else.

A `Tab` is keyed by its connection (Gradio's session hash: fresh at every page load and
per API client) and belongs to the annotation service, which alone changes it, under
the tab's lock. A tab has two views, "batch" (the Workbench) and "pairwise", each with
its own `Screen` (the prompt, the batch, ticks to show, when it was handed out), its
place in the campaign's list and the queue screen a relabel interrupted. What the tab
answered, and so what Undo takes back, is in the store (the tab's `session_id`), not
here: it survives a reload of the tab and a restart of the app.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from goldennoise.generation.batch import Batch
from goldennoise.store.prompts import Prompt

MODES = ("batch", "pairwise")
MAX_TABS = 10_000
MAX_TABS_PER_ANNOTATOR = 20  # one person's tabs and API clients; more drops their oldest
MAX_EXPLICIT = 64  # batches made on request (administrators, scripts) that a tab may answer, newest kept


@dataclass(frozen=True)
class Screen:
    """What one view shows; replaced whole, never edited in place."""

    mode: str
    state: str = "idle"  # "idle" (nothing yet), "held" (a prompt held, its batch not shown yet), "batch", "done"
    prompt: Prompt | None = None
    batch: Batch | None = None
    ticks: tuple[int, ...] = ()  # seeds ticked when shown (an undone answer, or your own answer to relabel)
    shown_at: float | None = None  # time.monotonic() when handed out
    shown_at_iso: str | None = None
    # "queue", "undo", "relabel"; made on request (an administrator, a script): "request" (the campaign's seeds)
    # or "explicit" (seeds given)
    origin: str = "queue"
    supersedes: str | None = None  # your own record this answer replaces
    second_opinion_of: str | None = None  # someone else's record this answer judges again
    notice: str | None = None  # shown above the screen (campaign switched, waiting for others, ...)


@dataclass
class View:
    mode: str
    screen: Screen
    position: int = -1  # index of the last prompt taken from the campaign's list
    resume: Screen | None = None  # the queue screen a relabel interrupted
    explicit: OrderedDict = field(default_factory=OrderedDict)  # batch id -> Screen made on request, unanswered


def session_id(tab_key: str) -> str:
    """The id records carry for a tab: derived from the tab's key, so it says which answers came from one tab (for
    Undo after a reload) without revealing anything that could reach the tab."""
    return hashlib.sha256(f"goldennoise-tab\x00{tab_key}".encode()).hexdigest()[:32]


@dataclass
class Tab:
    connection: str  # Gradio's session hash (or an API/script client's id): where replies go
    session_id: str  # recorded in records; the same across reloads of one browser tab
    annotator: str | None = None  # as shown and recorded
    who: str | None = None  # identity (names.identity)
    login: str | None = None  # the login that joined it (None without logins)
    is_admin: bool = False
    epoch: int = 0
    views: dict[str, View] = field(default_factory=lambda: {m: View(m, Screen(m)) for m in MODES})
    lock: threading.RLock = field(default_factory=threading.RLock)
    last_seen: float = field(default_factory=time.monotonic)

    def reset(self, notice: str | None = None) -> None:
        self.views = {m: View(m, Screen(m, notice=notice)) for m in MODES}


class Tabs:
    """The registry of joined tabs, bounded: past MAX_TABS the longest-idle tab is dropped."""

    def __init__(self):
        self._tabs: dict[str, Tab] = {}
        self._lock = threading.Lock()

    def find(self, connection: str) -> Tab | None:
        with self._lock:
            tab = self._tabs.get(connection)
            if tab is not None:
                tab.last_seen = time.monotonic()
            return tab

    def add(self, tab: Tab) -> list[Tab]:
        """Register a joined tab; returns the tabs dropped to make room (their holds must be released)."""
        with self._lock:
            dropped = []
            if tab.connection not in self._tabs and len(self._tabs) >= MAX_TABS:
                oldest = min(self._tabs.values(), key=lambda t: t.last_seen)
                dropped.append(self._tabs.pop(oldest.connection))
            self._tabs[tab.connection] = tab
            theirs = sorted((t for t in self._tabs.values() if t.who == tab.who and t is not tab),
                            key=lambda t: t.last_seen)
            for old in theirs[:max(0, len(theirs) + 1 - MAX_TABS_PER_ANNOTATOR)]:
                dropped.append(self._tabs.pop(old.connection))
            return dropped

    def pop(self, connection: str) -> Tab | None:
        with self._lock:
            return self._tabs.pop(connection, None)

    def all(self) -> list[Tab]:
        with self._lock:
            return list(self._tabs.values())

    def __len__(self) -> int:
        return len(self._tabs)
