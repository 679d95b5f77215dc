"""Serving the app in-process for API tests (the browser tests start `goldennoise app` as users do)."""

from __future__ import annotations

import socket
from contextlib import contextmanager
from pathlib import Path

from goldennoise import ui
from goldennoise.annotation.access import collect
from goldennoise.annotation.engine import Engine
from goldennoise.annotation.tabs import Tabs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(engine: Engine, auth: list[str] | None = None, host: str = "127.0.0.1"):
    """The app around a started engine, on a free loopback port; yields (url, context)."""
    access = collect(auth or [], environ={}, host=host)
    ctx = ui.Context(engine, Tabs(), access)
    demo = ui.build_demo(ctx, access.warning())
    port = free_port()
    ui.launch(demo, Path(engine.outputs), access, prevent_thread_lock=True, quiet=True, server_name="127.0.0.1",
              server_port=port)
    try:
        yield f"http://127.0.0.1:{port}/", ctx
    finally:
        demo.close()
