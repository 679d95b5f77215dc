"""The Gradio app: the only package that imports gradio.

`build_demo(service)` makes the Blocks around a started annotation service; `launch`
queues and serves it, with the browser runtime (`shortcuts.js`) and the stylesheet,
and serves only the generated images (never the records, campaigns or exports).
"""

from __future__ import annotations

from pathlib import Path

from goldennoise.ui.guard import Guard, Logins
from goldennoise.ui.layout import build_demo

HERE = Path(__file__).parent
SHORTCUTS_JS = (HERE / "shortcuts.js").read_text(encoding="utf-8")
STYLE_CSS = (HERE / "style.css").read_text(encoding="utf-8")
MAX_UPLOAD = "20mb"  # prompt files; the parser refuses more than 20 MiB as well


def launch(demo, outputs: Path, access, max_queue: int = 64, **kwargs):
    """Queue and launch `demo` behind the guard (see guard.py), with throttled logins when `access` has users.

    Past `max_queue` waiting requests a caller is told the queue is full.
    """
    from starlette.middleware import Middleware

    images = Path(outputs).resolve() / "images"
    images.mkdir(parents=True, exist_ok=True)
    return demo.queue(default_concurrency_limit=8, max_size=max_queue).launch(
        allowed_paths=[str(images)], js=SHORTCUTS_JS, css=STYLE_CSS, max_file_size=MAX_UPLOAD,
        auth=Logins(access.users) if access.users else None,
        app_kwargs={"middleware": [Middleware(Guard, images=images, access=access)]}, **kwargs)


__all__ = ["build_demo", "launch"]
