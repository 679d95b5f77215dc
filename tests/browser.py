"""Driving the app as people do: `goldennoise app` in a subprocess, headless Debian Chromium, real keys and clicks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.serve import free_port

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                    reason="Debian chromium not installed (the README's test command installs it)")
SCREEN = "#gn-screen .gn-screen"
PAIR_SCREEN = "#gn-pair-screen .gn-screen"


@contextmanager
def app(tmp: Path, prompts: list[str], *flags: str, env: dict | None = None):
    """`goldennoise app` on these prompts (tiny-flux), on a free port; yields (url, outputs folder)."""
    tmp.mkdir(parents=True, exist_ok=True)
    prompt_file = tmp / "prompts.txt"
    prompt_file.write_text("".join(p + "\n" for p in prompts))
    outputs, port = tmp / "outputs", free_port()
    log = open(tmp / "app.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "goldennoise.cli", "app", "--prompts", str(prompt_file), "--outputs", str(outputs),
         "--port", str(port), "--model", "tiny-flux", *flags],
        cwd=tmp, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail("app did not start:\n" + (tmp / "app.log").read_text()[-3000:])
            time.sleep(0.3)
    try:
        yield url, outputs
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@contextmanager
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


OPENED: list = []  # every context a test opened: closed after the test (tests/conftest.py), so that pages left
# open do not keep polling the app through the next tests and slow the whole module down


def close_opened() -> None:
    while OPENED:
        try:
            OPENED.pop().close()
        except Exception:  # noqa: BLE001 - already closed by the test
            pass


def open_page(browser, url: str, width: int = 1366, height: int = 768):
    context = browser.new_context(viewport={"width": width, "height": height})
    OPENED.append(context)
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#gn-start")
    return page


def start_labelling(page, name: str) -> str:
    """Type a name and press Start, as a new user does; returns the first batch id."""
    page.locator("#gn-name textarea, #gn-name input").first.fill(name)
    page.locator("#gn-start").click()
    return wait_batch(page)


def batch_of(page, screen: str = SCREEN) -> str | None:
    return page.evaluate(f"() => {{ const e = document.querySelector('{screen}'); "
                         "return e ? (e.dataset.batch || null) : null; }")


def wait_batch(page, other_than: str | None = None, screen: str = SCREEN, painted: bool = True,
               timeout: float = 60_000) -> str:
    """Wait until a batch other than `other_than` is on screen (and fully painted); return its id."""
    condition = (f"() => {{ const e = document.querySelector('{screen}'); return e && e.dataset.batch && "
                 f"e.dataset.batch !== {json.dumps(other_than)}" + (" && e.dataset.painted === '1'" if painted else "")
                 + "; }")
    page.wait_for_function(condition, timeout=timeout)
    return batch_of(page, screen)


def wait_state(page, state: str, screen: str = SCREEN, timeout: float = 60_000) -> None:
    page.wait_for_function(f"() => {{ const e = document.querySelector('{screen}'); "
                           f"return e && e.dataset.state === '{state}'; }}", timeout=timeout)


def seeds_on_screen(page, screen: str = SCREEN) -> list[int]:
    return [int(s) for s in page.eval_on_selector_all(f"{screen} .gn-cell", "cs => cs.map(c => c.dataset.seed)")]


def ticked(page) -> list[int]:
    return [int(s) for s in page.eval_on_selector_all(f"{SCREEN} .gn-cell.gn-ticked", "cs => cs.map(c => c.dataset.seed)")]


def message(page, view: str = "gn-message") -> str:
    """The status line's text (not Gradio's pending-request timer, which shares the box while a request runs)."""
    line = page.locator(f"#{view} .gn-msg")
    return line.first.inner_text() if line.count() else page.inner_text(f"#{view}")


def records(outputs: Path) -> list[dict]:
    """Every record the app wrote, as JSON data, in the order written (read from its store, as any reader does)."""
    if not (outputs / "goldennoise.db").exists():
        return []
    from goldennoise.store.records import RecordStore

    store = RecordStore(outputs, import_legacy=False)
    try:
        return list(store.iter_data())
    finally:
        store.close()


def error_badges(page) -> int:
    """Error toasts, error status badges and our own error lines on the page, found by the test ids Gradio's own
    tests use and by our classes (never by a build's generated class names)."""
    return page.evaluate("""() => {
      const toasts = [...document.querySelectorAll('[data-testid="toast-body"]')]
        .filter((t) => t.classList.contains("error") || /error/i.test(t.textContent.slice(0, 40)));
      const trackers = [...document.querySelectorAll('[data-testid="status-tracker"]')]
        .filter((t) => t.offsetParent !== null && /^\\s*error/i.test(t.textContent));
      const ours = document.querySelectorAll(".gn-msg.gn-error");
      return toasts.length + trackers.length + ours.length;
    }""")


def ignored(page, view: str = "batch") -> int:
    """Key presses the page ignored on purpose (an answer on its way, a batch not looked at yet)."""
    return page.evaluate(f"() => window.gn.state('{view}').ignored")


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def open_tab(page, name: str) -> None:
    """Open a tab as a person would: directly, or (on a narrow screen) through Gradio's "More tabs" menu."""
    tab = page.get_by_role("tab", name=name)
    if not tab.first.is_visible():
        page.get_by_role("button", name="More tabs").click()
        page.get_by_role("button", name=name).or_(page.get_by_role("tab", name=name)).first.click()
        return
    tab.first.click()
