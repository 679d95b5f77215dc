"""What stands in front of Gradio's routes: image URLs without server paths, uploads, logins.

- `/gn-images/<relative path>` serves a generated image through Gradio's own file route (with its
  login check and `allowed_paths`), so pages and API answers never show where the outputs folder is;
  an image that does not exist is a plain 404 that names nothing.
- Gradio's upload route takes files only from administrators (prompt files are the only uploads this
  app uses), so annotators cannot fill the server's disk.
- Logins (Gradio has no throttle of its own): wrong passwords are counted per client address and per
  user name in fixed-size tables (the oldest entries go first; names are kept as short hashes), so no
  stream of unknown, oversized names grows the server's memory. An address with `MAX_PER_ADDRESS`
  failures in `WINDOW` seconds is refused for the rest of it; a name is refused after `MAX_PER_NAME`
  failures from one address (a stranger locks out only themselves) or `MAX_PER_NAME_ALL` from all
  addresses together (guessing spread over many machines).
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import logging
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path
from urllib.parse import quote, unquote

from starlette.requests import Request

from goldennoise.annotation.access import Access

log = logging.getLogger(__name__)
IMAGE_PREFIX = "/gn-images/"
WINDOW = 300.0
MAX_PER_NAME = 10
MAX_PER_NAME_ALL = 100
MAX_PER_ADDRESS = 50
MAX_TRACKED = 4096  # entries in each table of failures
MAX_NAME_BYTES = 256  # a longer "user name" is refused without a look
CLIENT: contextvars.ContextVar[str] = contextvars.ContextVar("goldennoise_client", default="?")


def image_url(relative: str) -> str:
    """The URL of a generated image, from its path relative to the outputs folder (`images/...`)."""
    return IMAGE_PREFIX + quote(relative.removeprefix("images/"))


class _Failures:
    """Recent failure times per key, in a table of at most MAX_TRACKED keys (least recently failed dropped)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.times: OrderedDict[str, deque] = OrderedDict()

    def recent(self, key: str, now: float) -> int:
        times = self.times.get(key)
        if times is None:
            return 0
        while times and now - times[0] >= WINDOW:
            times.popleft()
        if not times:
            del self.times[key]
            return 0
        return len(times)

    def add(self, key: str, now: float) -> None:
        times = self.times.pop(key, None) or deque(maxlen=self.limit)
        times.append(now)
        self.times[key] = times
        while len(self.times) > MAX_TRACKED:
            self.times.popitem(last=False)


def _key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:24]


class Logins:
    """`auth=` for Gradio: checks passwords in constant time and throttles guessing (see the module docstring)."""

    def __init__(self, users: tuple[tuple[str, str], ...], clock=time.monotonic):
        self.users = dict(users)
        self.clock = clock
        self._by_address = _Failures(MAX_PER_ADDRESS)
        self._by_name_address = _Failures(MAX_PER_NAME)
        self._by_name = _Failures(MAX_PER_NAME_ALL)
        self._lock = threading.Lock()

    def __call__(self, username: str, password: str) -> bool:
        now, address = self.clock(), CLIENT.get()
        name = username if len(username.encode("utf-8", "surrogatepass")) <= MAX_NAME_BYTES else None
        keys = (_key(address), _key(name or "", address), _key(name or ""))
        with self._lock:
            if self._by_address.recent(keys[0], now) >= MAX_PER_ADDRESS or name is not None and (
                    self._by_name_address.recent(keys[1], now) >= MAX_PER_NAME
                    or self._by_name.recent(keys[2], now) >= MAX_PER_NAME_ALL):
                log.warning("login refused (throttled): %d characters of name from %s", len(username), address)
                return False
        expected = self.users.get(name) if name is not None else None
        ok = expected is not None and hmac.compare_digest(password.encode("utf-8", "surrogatepass"),
                                                          expected.encode())
        if not ok:
            with self._lock:
                self._by_address.add(keys[0], now)
                if name is not None:
                    self._by_name_address.add(keys[1], now)
                    self._by_name.add(keys[2], now)
        return ok

    def tracked(self) -> int:
        """Entries held in the failure tables (bounded by 3 x MAX_TRACKED)."""
        return len(self._by_address.times) + len(self._by_name_address.times) + len(self._by_name.times)


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
            CLIENT.set((scope.get("client") or ("?",))[0])
            path = scope["path"]
            if path.startswith(IMAGE_PREFIX):
                if self.access.logins and not self.access.oauth and self._user(scope) is None:
                    return await _refuse(send, 401, "Log in first.")
                target = (self.images / unquote(path[len(IMAGE_PREFIX):])).resolve()
                if self.images not in target.parents or not target.is_file():
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
