"""A real user in headless Chromium: load, generate, tick seeds, submit, for three prompts."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from goldennoise import noise

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("CI"),
    reason="Debian chromium not installed (the README's test command installs it; CI requires it)",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(prompts: Path, outputs: Path):
    """`python app.py` as a user starts it, on a loopback port; returns (process, url)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--prompts", str(prompts), "--outputs", str(outputs)],
        cwd=outputs.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            assert process.poll() is None, process.stdout.read()
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("app did not start within 120 s")
    return process, url


def stop_app(process) -> None:
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture
def running_app(tmp_path):
    """The app on a prompt file holding HTML."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red fox in the snow\n<b>bold</b> <img src=x onerror=alert(1)> lighthouse\na bowl of ramen\n")
    with app_running(prompts, tmp_path / "outputs") as url:
        yield url, tmp_path / "outputs"


ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@contextmanager
def browser_page(url: str, height: int = 1200):
    """A page of headless Debian chromium at `url`, closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": height})
            page.goto(url)
            yield page
        finally:
            browser.close()


@contextmanager
def app_running(prompts: Path, outputs: Path):
    """`python app.py` on these prompts and outputs, for the duration of the block."""
    process, url = start_app(prompts, outputs)
    try:
        yield url
    finally:
        stop_app(process)


def load_tiny(page, annotator: str, start_seed: int) -> None:
    """Fill Settings as a user does and press Load."""
    page.get_by_label("Annotator").fill(annotator)
    page.get_by_label("Height").fill("128")
    page.get_by_label("Width").fill("128")
    page.get_by_role("radio", name="sequential").check()
    page.get_by_label("Start seed (sequential)").fill(str(start_seed))
    page.get_by_role("button", name="Load model").click()


def test_label_three_prompts_in_the_browser(running_app):
    from playwright.sync_api import expect

    url, outputs = running_app
    ARTIFACTS.mkdir(exist_ok=True)
    dialogs = []
    with browser_page(url, height=1100) as page:
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.reload()  # the handler is in place before anything could run
        model = page.get_by_label("Model (known name, hub id or local folder)")
        model.click()
        page.get_by_role("option", name="tiny-sd").click()  # the model's own defaults fill in
        expect(page.get_by_label("Guidance (guidance_scale)")).to_have_value("5", timeout=10_000)
        model.click()
        page.get_by_role("option", name="tiny-flux").click()
        expect(page.get_by_label("Guidance (guidance_scale)")).to_have_value("0", timeout=10_000)
        load_tiny(page, "browser-user", 1000)
        expect(page.get_by_text(re.compile("Loaded tiny-flux"))).to_be_attached(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "browser-settings.png"), full_page=True)
        for index in range(3):
            first_seed = 1000 + 4 * index
            box = page.get_by_role("checkbox", name=re.compile(f"seed {first_seed + 2}$"))
            expect(box).to_be_visible(timeout=60_000)
            expect(page.locator(".gallery img, [data-testid='gallery'] img, button img").first).to_be_visible()
            if index == 1:
                # The prompt with HTML is shown as text, not rendered.
                expect(page.get_by_role("textbox", name="Prompt", exact=True)).to_have_value(re.compile("<b>bold</b> <img src=x"))
                page.screenshot(path=str(ARTIFACTS / "browser-workbench.png"), full_page=True)
            box.check()
            page.get_by_role("checkbox", name=re.compile(f"seed {first_seed}$")).check()
            page.get_by_role("button", name="Submit").click()
            expect(page.get_by_text(re.compile(r"Saved: 2 golden, 2 bad"))).to_be_visible(timeout=60_000)
            if index < 2:
                expect(page.get_by_role("checkbox", name=re.compile(f"seed {first_seed + 6}$"))).to_be_visible(timeout=60_000)
    assert dialogs == []  # the <img onerror> never ran
    lines = (outputs / "records.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 3
    for index, record in enumerate(records):
        first_seed = 1000 + 4 * index
        assert record["annotator"] == "browser-user"
        assert record["golden_seeds"] == [first_seed, first_seed + 2]
        assert record["bad_seeds"] == [first_seed + 1, first_seed + 3]
        for sample in record["samples"]:
            assert noise.remake_noise(sample["seed"], sample["noise"]).shape == (1, 4, 16, 16)
            assert (outputs / sample["image_path"]).is_file()
    shutil.copy(outputs / "records.jsonl", ARTIFACTS / "browser-records.jsonl")


def seed_box(page, seed: int):
    return page.get_by_role("checkbox", name=re.compile(f"seed {seed}$"))


def test_keyboard_only_labeling_and_resume(tmp_path):
    """Five prompts by keyboard alone, with one skip, one none golden and one undo; a restart resumes."""
    from playwright.sync_api import expect

    prompts, outputs = tmp_path / "six.txt", tmp_path / "outputs"
    prompts.write_text("p one\np two\np three\np four\np five\np six\n")

    def seeds_of(index: int) -> list[int]:
        return [2000 + 4 * index + k for k in range(4)]  # sequential from 2000, batch 4

    ARTIFACTS.mkdir(exist_ok=True)
    with app_running(prompts, outputs) as url, browser_page(url) as page:
        load_tiny(page, "keys", 2000)
        expect(seed_box(page, seeds_of(0)[0])).to_be_visible(timeout=60_000)
        page.evaluate("document.activeElement && document.activeElement.blur()")

        def press(*keys: str) -> None:
            for key in keys:
                page.keyboard.press(key)

        def wait_for(index):
            expect(seed_box(page, seeds_of(index)[0])).to_be_visible(timeout=60_000)

        press("1", "3")  # p one: seeds 1 and 3 golden
        expect(seed_box(page, seeds_of(0)[2])).to_be_checked()
        press("Enter")
        wait_for(1)
        press("s")  # p two: skipped
        wait_for(2)
        press("n", "Enter")  # p three: none golden
        wait_for(3)
        press("f")  # larger view, then close it again
        expect(page.locator('#gn-gallery [aria-label="detailed view of selected image"]')).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "keyboard-preview.png"))
        press("f")
        expect(page.locator('#gn-gallery [aria-label="detailed view of selected image"]')).to_have_count(0)
        press("a", "Enter")  # p four: all golden...
        wait_for(4)
        press("u")  # ...undone: p four is back with its ticks
        wait_for(3)
        expect(seed_box(page, seeds_of(3)[1])).to_be_checked()
        press("2", "Enter")  # p four again: all but seed 2
        wait_for(4)
        press("4", "Enter")  # p five: seed 4
        wait_for(5)
        expect(page.get_by_text(re.compile("Prompt 6 of 6 · 4 judged · 1 skipped · 1 remaining"))).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "keyboard-workbench.png"), full_page=True)

    records = [json.loads(line) for line in (outputs / "records.jsonl").read_text().splitlines()]
    story = [(r["kind"], r["prompt"]["text"], r.get("verdict"), r["golden_seeds"]) for r in records]
    s = seeds_of
    assert story == [
        ("judgement", "p one", "some_golden", [s(0)[0], s(0)[2]]),
        ("skip", "p two", None, []),
        ("judgement", "p three", "none_golden", []),
        ("judgement", "p four", "all_golden", s(3)),
        ("retraction", "p four", None, []),
        ("judgement", "p four", "some_golden", [s(3)[0], s(3)[2], s(3)[3]]),
        ("judgement", "p five", "some_golden", [s(4)[3]]),
    ]
    assert records[4]["retracts"] == records[3]["record_id"]
    assert records[2]["bad_seeds"] == s(2) and records[1]["bad_seeds"] == []

    with app_running(prompts, outputs) as url, browser_page(url, height=1000) as page:  # restart: resumes at "p six"
        load_tiny(page, "keys", 2000)
        expect(seed_box(page, seeds_of(5)[0])).to_be_visible(timeout=60_000)
        expect(page.get_by_role("textbox", name="Prompt", exact=True)).to_have_value("p six")


def test_pairwise_by_keyboard_and_relabel_from_history(tmp_path):
    from playwright.sync_api import expect

    prompts, outputs = tmp_path / "four.txt", tmp_path / "outputs"
    prompts.write_text("q one\nq two\nq three\nq four\n")
    ARTIFACTS.mkdir(exist_ok=True)
    with app_running(prompts, outputs) as url, browser_page(url) as page:
        load_tiny(page, "pairs", 3000)
        expect(seed_box(page, 3000)).to_be_visible(timeout=60_000)
        page.evaluate("document.activeElement && document.activeElement.blur()")
        page.keyboard.press("2")
        page.keyboard.press("Enter")  # q one: seed 3001 golden
        expect(seed_box(page, 3004)).to_be_visible(timeout=60_000)

        page.get_by_role("tab", name="Pairwise").click()
        page.get_by_role("button", name="Show a pair").click()
        expect(page.get_by_text(re.compile(r"Left · seed 3002"))).to_be_visible(timeout=60_000)
        page.evaluate("document.activeElement && document.activeElement.blur()")
        page.screenshot(path=str(ARTIFACTS / "pairwise.png"), full_page=True)
        page.keyboard.press("ArrowRight")  # q two: right is better
        expect(page.get_by_text(re.compile(r"Saved pairwise: right"))).to_be_visible(timeout=60_000)
        expect(page.get_by_text(re.compile(r"Left · seed 3004"))).to_be_visible(timeout=60_000)
        page.keyboard.press("t")  # q three: tie
        expect(page.get_by_text(re.compile(r"Saved pairwise: tie"))).to_be_visible(timeout=60_000)

        page.get_by_role("tab", name="History").click()
        page.get_by_role("button", name="Refresh").click()
        expect(page.get_by_text("3 answers shown")).to_be_visible(timeout=30_000)
        page.get_by_label("Prompt contains").fill("q one")
        page.get_by_label("Prompt contains").press("Enter")
        expect(page.get_by_text("1 answer shown")).to_be_visible(timeout=30_000)
        page.locator("span.text", has_text="q one").first.click()  # a data cell (wrap=True renders spans)
        expect(page.get_by_text(re.compile("seed 3001 · CLIP")).first).to_be_visible(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "history.png"), full_page=True)
        page.get_by_role("button", name=re.compile("Relabel in the Workbench")).click()
        expect(seed_box(page, 3001)).to_be_checked(timeout=30_000)  # the old answer, pre-ticked
        expect(page.get_by_role("textbox", name="Prompt", exact=True)).to_have_value("q one")
        page.evaluate("document.activeElement && document.activeElement.blur()")
        page.keyboard.press("3")
        page.keyboard.press("Enter")  # relabel: seeds 3001 and 3002
        expect(page.get_by_text(re.compile(r"Saved: 2 golden, 2 bad for “q one”"))).to_be_visible(timeout=30_000)
        expect(page.get_by_role("textbox", name="Prompt", exact=True)).to_have_value("q four", timeout=30_000)

    records = [json.loads(line) for line in (outputs / "records.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["prompt"]["text"]) for r in records] == [
        ("judgement", "q one"), ("pairwise", "q two"), ("pairwise", "q three"), ("judgement", "q one")]
    assert records[1]["preference"] == {"left": 3002, "right": 3003, "winner": "right"}  # index 1, pairs of 2
    assert records[2]["preference"]["winner"] == "tie"
    assert records[3]["supersedes"] == records[0]["record_id"]
    assert records[3]["golden_seeds"] == [3001, 3002]


def test_analysis_tab_in_the_browser(planted, tmp_path):
    from playwright.sync_api import expect

    outputs = tmp_path / "outputs"
    shutil.copytree(planted[0], outputs)
    prompts = tmp_path / "p.txt"
    prompts.write_text("anything\n")
    ARTIFACTS.mkdir(exist_ok=True)
    with app_running(prompts, outputs) as url, browser_page(url, height=1400) as page:
        page.get_by_role("tab", name="Analysis").click()
        page.get_by_role("button", name="Run analysis").click()
        expect(page.get_by_text(re.compile(r"40 prompts"))).to_be_visible(timeout=180_000)
        expect(page.get_by_text(re.compile("Seed selector saved"))).to_be_visible()
        expect(page.locator("#gn-analysis-figures img").first).to_be_visible(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "analysis.png"), full_page=True)
