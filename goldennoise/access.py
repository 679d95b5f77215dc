"""Who may use the app: `user:password` pairs from flags, a file, or the environment.

Sources, all merged: `--auth user:password` (repeatable), `--auth-file PATH` (one
`user:password` per line, `#` comments), and `GOLDENNOISE_AUTH` ("u1:p1,u2:p2").
With auth on, the logged-in user is the annotator on every record.
"""

from __future__ import annotations

import os
from pathlib import Path

AUTH_ENV = "GOLDENNOISE_AUTH"


class AuthError(ValueError):
    """An auth entry that cannot be used; the message says which."""


def parse_pair(text: str, where: str) -> tuple[str, str]:
    user, sep, password = text.strip().partition(":")
    if not sep or not user.strip() or not password:
        raise AuthError(f"{where}: expected 'user:password', got {text.strip()[:40]!r}.")
    return user.strip(), password


def collect(pairs: list[str] | None = None, auth_file: str | None = None, environ=os.environ) -> list[tuple[str, str]]:
    """All configured (user, password) pairs; empty means no auth."""
    found = [parse_pair(pair, "--auth") for pair in pairs or []]
    if auth_file:
        try:
            lines = Path(auth_file).read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise AuthError(f"--auth-file {auth_file}: cannot read ({error.strerror}).") from None
        for number, line in enumerate(lines, start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                found.append(parse_pair(line, f"{auth_file} line {number}"))
    for item in filter(str.strip, environ.get(AUTH_ENV, "").split(",")):
        found.append(parse_pair(item, AUTH_ENV))
    users = [user for user, _ in found]
    duplicates = sorted({user for user in users if users.count(user) > 1})
    if duplicates:
        raise AuthError(f"User(s) {', '.join(duplicates)} given more than once.")
    return found


SHARE_WITHOUT_AUTH = (
    "This app is shared on a public link WITHOUT a password: anyone with the link can use your GPU "
    "and write records. Restart with --auth user:password (or --auth-file, or GOLDENNOISE_AUTH)."
)
