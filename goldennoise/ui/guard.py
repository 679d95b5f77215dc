"""What stands in front of Gradio's routes: image URLs without server paths, uploads, logins.

- `/gn-images/<relative path>` serves a generated image through Gradio's own file route (with its
  login check and `allowed_paths`), so pages and API answers never show where the outputs folder is.
- Gradio's upload route takes files only from administrators (prompt files are the only uploads this
  app uses), so annotators cannot fill the server's disk.
- Logins: after `MAX_FAILURES` wrong passwords for one name within `WINDOW` seconds, that name is
  refused for the rest of the window, the right password included (Gradio has no throttle of its own).
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from pathlib import Path
from urllib.parse import quote, unquote

from starlette.requests import Request

from goldennoise.annotation.access import Access

log = logging.getLogger(__name__)
IMAGE_PREFIX = "/gn-images/"
MAX_FAILURES = 10
WINDOW = 300.0


def image_url(relative: str) -> str:
    """The URL of a generated image, from its path relative to the outputs folder (`images/...`)."""
    return IMAGE_PREFIX + quote(relative.removeprefix("images/"))


class Logins:
    """`auth=` for Gradio: checks passwords in constant time and throttles guessing per user name."""

    def __init__(self, users: tuple[tuple[str, str], ...], clock=time.monotonic):
        self.users = dict(users)
        self.clock = clock
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def __call__(self, username: str, password: str) -> bool:
        now = self.clock()
        with self._lock:
            recent = [t for t in self._failures.get(username, []) if now - t < WINDOW]
            self._failures[username] = recent
            if len(recent) >= MAX_FAILURES:
                log.warning("login for %r refused: %d wrong passwords in %.0f s", username[:40], len(recent), WINDOW)
                return False
        expected = self.users.get(username)
        ok = expected is not None and hmac.compare_digest(password.encode(), expected.encode())
        if not ok:
            with self._lock:
                self._failures.setdefault(username, []).append(now)
        return ok


class Guard:
    """ASGI middleware (see the module docstring)."""

    def __init__(self, app, images: Path, access: Access):
        self.app, self.images, self.access = app, Path(images).resolve(), access

    def _user(self, scope) -> str | None:
        app = scope.get("app")
        cookies = Request(scope).cookies
        cookie_id = getattr(app, "cookie_id", "")
        token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
        return getattr(app, "tokens", {}).get(token) if token else None

    def _may_upload(self, scope) -> bool:
        if not self.access.logins:
            return self.access.local_only  # then the person at the machine administers
        return self._user(scope) in self.access.admins

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            path = scope["path"]
            if path.startswith(IMAGE_PREFIX):
                target = (self.images / unquote(path[len(IMAGE_PREFIX):])).resolve()
                if self.images not in target.parents:
                    return await _refuse(send, 404, "no such image")
                route = "/gradio_api/file=" + str(target)
                scope = {**scope, "path": route, "raw_path": route.encode()}
            elif path.rstrip("/").endswith("/gradio_api/upload") and not self._may_upload(scope):
                return await _refuse(send, 403, "Only an administrator may upload files here.")
        await self.app(scope, receive, send)


async def _refuse(send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
