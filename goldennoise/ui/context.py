"""What every UI handler needs: the engine, the tabs, who may do what; and who is asking.

A request's tab is its Gradio session hash (fresh per page load and per API
client). With logins the annotator is the login, checked on every request; the
API is guarded here, not by the page.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path

from goldennoise.annotation import flow
from goldennoise.annotation.access import Access
from goldennoise.annotation.engine import Engine
from goldennoise.annotation.tabs import MAX_TABS_PER_ANNOTATOR, Tab, Tabs
from goldennoise.errors import Refused, UserError
from goldennoise.ui import render

log = logging.getLogger("goldennoise.ui")
_nonce = itertools.count(1)
SERVER_FAULT = "Something went wrong on the server (it has been logged). Try again; if it persists, tell the administrator."


def login_of(request) -> str | None:
    """The logged-in user of a request: a password login, or a Hugging Face OAuth login on a Space."""
    if getattr(request, "username", None):
        return request.username
    raw = getattr(request, "request", None)
    try:
        info = raw.session.get("oauth_info") if raw is not None and "session" in raw.scope else None
    except (AttributeError, AssertionError):
        info = None
    return ((info or {}).get("userinfo") or {}).get("preferred_username")


@dataclass
class Context:
    engine: Engine
    tabs: Tabs
    access: Access

    @property
    def outputs(self) -> Path:
        return self.engine.outputs

    def tab(self, request) -> Tab:
        """The requesting tab (a throwaway one, not registered, if it never joined)."""
        tab = self.tabs.get(getattr(request, "session_hash", None) or "", create=False)
        login = login_of(request)
        if self.access.logins and tab.annotator and login != tab.annotator:
            raise Refused("This session belongs to another login; reload the page.", "annotator")
        return tab

    def join(self, request, typed_name: str | None, profile=None):
        """Identify the requester and put the tab on the Workbench; returns (tab, screen)."""
        username = login_of(request) or getattr(profile, "username", None)
        annotator, is_admin = self.access.identify(username, typed_name)
        tab = self.tabs.get(getattr(request, "session_hash", None) or "")
        screen = flow.join(self.engine, tab, annotator, is_admin)
        for old in self.tabs.limit(annotator, MAX_TABS_PER_ANNOTATOR):
            flow.close(self.engine, old)
        return tab, screen

    def require_admin(self, request) -> Tab:
        tab = self.tab(request)
        if not tab.is_admin:
            raise Refused("Only an administrator may do this (switch the campaign, analyse, export, see everyone's "
                          "answers). Ask the person running GoldenNoise.", "admin")
        return tab

    def screen_html(self, tab: Tab, mode: str) -> str:
        screen = tab.views[mode].screen
        campaign = self.engine.active.campaign
        progress = flow.progress(self.engine, tab, mode) if tab.annotator else None
        draw = render.workbench if mode == "batch" else render.pairwise
        if screen.state == "done" and progress and progress["remaining_for_you"] > 0:
            return render.done(mode, screen.notice, progress, waiting=True)
        return draw(self.outputs, screen, progress, campaign.min_view_ms, campaign.blind)


def message(text: str, kind: str = "info") -> str:
    return render.message(text, kind, next(_nonce))


def explain(error: BaseException) -> str:
    """The message for any failure: a UserError's own words, else a generic line (the traceback goes to the log)."""
    if isinstance(error, UserError):
        log.info("refused: %s", error)
        return str(error)
    log.exception("server error", exc_info=error)
    return SERVER_FAULT
