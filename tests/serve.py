"""Serving the app in-process for API tests (the browser tests start `goldennoise app` as users do)."""

from __future__ import annotations

import socket
from contextlib import contextmanager

from goldennoise import ui
from goldennoise.annotation.access import collect
from goldennoise.annotation.service import Service


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_service(outputs, campaign, auth: list[str] | None = None, host: str = "127.0.0.1", **options) -> Service:
    """A started service with these logins (an Access like `goldennoise app --auth ...` makes)."""
    service = Service(outputs, access=collect(auth or [], environ={}, host=host), **options)
    service.start(campaign)
    return service


@contextmanager
def serving(service: Service):
    """The app around a started service, on a free loopback port; yields its URL."""
    demo = ui.build_demo(service, service.access.warning())
    port = free_port()
    ui.launch(demo, service.outputs, service.access, prevent_thread_lock=True, quiet=True, server_name="127.0.0.1",
              server_port=port)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
