"""Per-tab state: what each view of one browser tab (or API client) shows, and the registry of tabs.

One owner per piece of state: a `Tab` belongs to the registry, which is keyed by
the tab's id (Gradio's session hash: fresh at every page load, so two tabs, or a
reload, never share one). A tab has two views, "batch" (the Workbench) and
"pairwise", each with its own `Screen` (the prompt, the batch, the pre-set ticks,
when it was handed out), its own place in the queue and its own undo stack.
Undo entries keep a copy of the screen as it was answered, never a list position.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from goldennoise.generation.batch import Batch
from goldennoise.store.prompts import Prompt

MODES = ("batch", "pairwise")
MAX_UNDO = 100
MAX_TABS = 10_000
MAX_TABS_PER_ANNOTATOR = 20  # one person's tabs and API clients; more drops their oldest


@dataclass(frozen=True)
class Screen:
    """What one view shows; replaced whole, never edited in place."""

    mode: str
    state: str = "idle"  # "idle" (not started), "batch" (a prompt on screen) or "done" (nothing left)
    prompt: Prompt | None = None
    batch: Batch | None = None
    ticks: tuple[int, ...] = ()  # seeds ticked when shown (an undone answer, or your own answer to relabel)
    shown_at: float | None = None  # time.monotonic() when handed out
    shown_at_iso: str | None = None
    origin: str = "queue"  # "queue", "undo" or "relabel"
    supersedes: str | None = None  # your own record this answer replaces
    second_opinion_of: str | None = None  # someone else's record this answer judges again
    notice: str | None = None  # shown above the screen (campaign switched, waiting for others, ...)


@dataclass
class UndoEntry:
    record_id: str
    kind: str
    screen: Screen  # as it was when answered
    golden: tuple[int, ...] = ()


@dataclass
class View:
    mode: str
    screen: Screen
    position: int = -1  # index of the last prompt taken from the campaign's list
    undo: list[UndoEntry] = field(default_factory=list)
    answered_batches: set[str] = field(default_factory=set)  # batch ids answered in this view
    resume: Screen | None = None  # the queue screen a relabel interrupted


@dataclass
class Tab:
    tab_id: str
    annotator: str | None = None
    is_admin: bool = False
    epoch: int = 0
    views: dict[str, View] = field(default_factory=lambda: {m: View(m, Screen(m)) for m in MODES})
    lock: threading.RLock = field(default_factory=threading.RLock)
    last_seen: float = field(default_factory=time.monotonic)

    def reset(self, notice: str | None = None) -> None:
        self.views = {m: View(m, Screen(m, notice=notice)) for m in MODES}


class Tabs:
    """The registry of open tabs."""

    def __init__(self):
        self._tabs: dict[str, Tab] = {}
        self._lock = threading.Lock()

    def get(self, tab_id: str, create: bool = True) -> Tab:
        """The tab `tab_id`; a new one if `create` (joining), else a throwaway for a tab that never joined.

        Only joining registers a tab, so requests that read (History, the lease timer of a page that never
        started) cannot fill the registry; past MAX_TABS the longest-idle tab is dropped.
        """
        if not tab_id:
            raise ValueError("a tab needs an id")
        with self._lock:
            tab = self._tabs.get(tab_id)
            if tab is None:
                if not create:
                    return Tab(tab_id)
                if len(self._tabs) >= MAX_TABS:
                    oldest = min(self._tabs.values(), key=lambda t: t.last_seen)
                    del self._tabs[oldest.tab_id]
                tab = self._tabs[tab_id] = Tab(tab_id)
            tab.last_seen = time.monotonic()
            return tab

    def limit(self, annotator: str, keep: int) -> list[Tab]:
        """Drop this annotator's longest-idle tabs beyond `keep`; returns them (their holds must be released)."""
        with self._lock:
            theirs = sorted((t for t in self._tabs.values() if t.annotator == annotator), key=lambda t: t.last_seen)
            dropped = theirs[:max(0, len(theirs) - keep)]
            for tab in dropped:
                del self._tabs[tab.tab_id]
            return dropped

    def pop(self, tab_id: str) -> Tab | None:
        with self._lock:
            return self._tabs.pop(tab_id, None)

    def idle(self, seconds: float) -> list[str]:
        now = time.monotonic()
        with self._lock:
            return [t.tab_id for t in self._tabs.values() if now - t.last_seen > seconds]

    def __len__(self) -> int:
        return len(self._tabs)
