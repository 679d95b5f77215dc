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


@pytest.fixture
def running_app(tmp_path):
    """`python app.py` as a user starts it, on a loopback port, with a prompt file holding HTML."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red fox in the snow\n<b>bold</b> <img src=x onerror=alert(1)> lighthouse\na bowl of ramen\n")
    outputs, port = tmp_path / "outputs", free_port()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--prompts", str(prompts), "--outputs", str(outputs)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
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
    yield url, outputs
    process.terminate()
    process.wait(timeout=20)


def test_label_three_prompts_in_the_browser(running_app):
    from playwright.sync_api import expect, sync_playwright

    url, outputs = running_app
    ARTIFACTS.mkdir(exist_ok=True)
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(url)
        page.get_by_label("Annotator").fill("browser-user")
        page.get_by_label("Height").fill("128")
        page.get_by_label("Width").fill("128")
        page.get_by_role("radio", name="sequential").check()
        page.get_by_label("Start seed (sequential)").fill("1000")
        page.get_by_role("button", name="Load model").click()
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
        browser.close()
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
