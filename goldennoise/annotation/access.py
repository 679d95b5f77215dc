"""Who may use the app and who may administer it.

Logins: `user:password` pairs from `--auth` (repeatable), `--auth-file` (one
`user:password` or `user:password:admin` per line, `#` comments) and
`GOLDENNOISE_AUTH` ("u1:p1,u2:p2:admin"); on a Space, Hugging Face OAuth instead.
With logins the logged-in user is the annotator on every record, whatever a
form says. Administrators (users marked `admin`, or named by `--admin` /
`GOLDENNOISE_ADMINS`) may switch the campaign, run the analysis and export, and
see everyone's answers; annotators label and see their own. Without logins, the
person at the machine is the administrator only when the app listens on this
machine alone (no `--share`, a loopback host); otherwise nobody is, and the page
warns that anyone who can reach it may label.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from goldennoise.errors import Refused, UserError
from goldennoise.store.names import MAX_NAME, display, identity

AUTH_ENV = "GOLDENNOISE_AUTH"
ADMINS_ENV = "GOLDENNOISE_ADMINS"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class AuthError(UserError):
    """An auth entry that cannot be used; the message says which."""


def parse_entry(text: str, where: str) -> tuple[str, str, bool]:
    user, sep, rest = text.strip().partition(":")
    password, _, role = rest.rpartition(":") if rest.endswith(":admin") else (rest, "", "")
    if not sep or not user.strip() or not password:
        raise AuthError(f"{where}: expected 'user:password' or 'user:password:admin', got {text.strip()[:20]!r}…")
    return user.strip(), password, role == "admin"


@dataclass(frozen=True)
class Access:
    """The app's users and administrators, and how it is reachable."""

    users: tuple[tuple[str, str], ...] = ()
    admins: frozenset[str] = field(default_factory=frozenset)
    local_only: bool = True  # listening on loopback only, no share link
    oauth: bool = False  # Hugging Face OAuth on a Space

    @property
    def logins(self) -> bool:
        return bool(self.users) or self.oauth

    def warning(self) -> str | None:
        """A banner for every page when anyone who can reach the app may label without logging in."""
        if self.logins or self.local_only:
            return None
        return ("This app is reachable beyond this machine WITHOUT logins: anyone with the address can label "
                "and use the GPU. Restart with --auth user:password (or --auth-file, GOLDENNOISE_AUTH).")

    def identify(self, username: str | None, typed_name: str | None) -> tuple[str, bool]:
        """(annotator, is_admin) for a request: the login when there is one, else the typed name."""
        if self.logins:
            if not username:
                raise Refused("Log in first: this app records who made each judgement.", "annotator")
            return username, identity(username) in {identity(a) for a in self.admins}
        name = display(typed_name or "")
        if len(name) > MAX_NAME:
            raise UserError(f"annotator: a name of 1..{MAX_NAME} characters, got {len(name)}; use a shorter name.",
                            "annotator")
        if not name:
            if not self.local_only:
                raise UserError("annotator: enter your name first (several people can reach this app, so each "
                                "judgement must say who made it).", "annotator")
            name = "local"
        return name, self.local_only


def collect(pairs: list[str] | None = None, auth_file: str | None = None, admins: list[str] | None = None,
            environ=os.environ, host: str = "127.0.0.1", share: bool = False) -> Access:
    """All configured users; raises AuthError naming a malformed entry."""
    found = [parse_entry(pair, "--auth") for pair in pairs or []]
    if auth_file:
        try:
            lines = Path(auth_file).read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise AuthError(f"--auth-file {Path(auth_file).name}: cannot read ({error.strerror}).") from None
        for number, line in enumerate(lines, start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                found.append(parse_entry(line, f"{Path(auth_file).name} line {number}"))
    for item in filter(str.strip, environ.get(AUTH_ENV, "").split(",")):
        found.append(parse_entry(item, AUTH_ENV))
    users = [identity(user) for user, _, _ in found]
    duplicates = sorted({user for user, _, _ in found if users.count(identity(user)) > 1})
    if duplicates:
        raise AuthError(f"User(s) {', '.join(duplicates)} given more than once (names are compared ignoring case "
                        "and spacing).")
    named = set(admins or []) | {a.strip() for a in environ.get(ADMINS_ENV, "").split(",") if a.strip()}
    admin_set = frozenset({user for user, _, admin in found if admin} | named)
    return Access(users=tuple((u, p) for u, p, _ in found), admins=admin_set,
                  local_only=host in LOOPBACK and not share, oauth=bool(environ.get("OAUTH_CLIENT_ID")))
