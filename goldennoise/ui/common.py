"""What every adapter of the UI needs: who is asking (a `Caller`), and how a failure is said.

A request's connection is its Gradio session hash (fresh per page load and per API
client); with logins, its login is checked by the service on every command. A
`UserError` is said in its own words; anything else is logged with its traceback and
the user is told that something went wrong on the server, never its internals.
"""

from __future__ import annotations

import itertools
import logging

from goldennoise.annotation.service import Caller
from goldennoise.errors import UserError
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


def caller_of(request) -> Caller:
    return Caller(str(getattr(request, "session_hash", None) or ""), login_of(request))


def message(text: str, kind: str = "info") -> str:
    """A status line; every reply's line is new to the page (a nonce), so the page knows the reply came."""
    return render.message(text, kind, next(_nonce))


def explain(error: BaseException) -> str:
    """The message for any failure: a UserError's own words, else a generic line (the traceback goes to the log)."""
    if isinstance(error, UserError):
        log.info("refused: %s", error)
        return str(error)
    log.exception("server error", exc_info=error)
    return SERVER_FAULT


def kind_of(error: BaseException) -> str:
    return "refused" if isinstance(error, UserError) else "error"
