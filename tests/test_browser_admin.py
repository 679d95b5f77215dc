"""An administrator in the browser: change the campaign, upload prompts, run the analysis, export."""

from __future__ import annotations

import re
import time

import pytest
from gradio_client import Client

from tests.browser import SCREEN, app, message, needs_chromium, open_page, shot, start_labelling, wait_batch

pytestmark = [needs_chromium, pytest.mark.slow, pytest.mark.browser]


def test_switch_upload_analyse_and_export(tmp_path, browser):
    prompts = [f"admin prompt {i}" for i in range(16)]
    with app(tmp_path, prompts, "--height", "64", "--width", "64", "--batch-size", "6", "--seed-strategy", "pool",
             "--pool-size", "12", "--min-view-ms", "0") as (url, outputs):
        labeller = Client(url, verbose=False)  # someone labels through the API meanwhile
        screen = labeller.predict(annotator="api-ann", api_name="/start")["screen"]
        for _ in range(10):
            screen = labeller.predict(batch_id=screen["batch_id"], golden_seeds=screen["seeds"][::2],
                                      api_name="/submit_selection")["next"]
        page = open_page(browser, url)
        first = start_labelling(page, "boss")  # a local app: the person at the machine administers
        watcher = open_page(browser, url)  # another annotator, just looking at the Workbench
        watched = start_labelling(watcher, "watcher")
        page.get_by_role("tab", name="Analysis").click()
        page.get_by_role("button", name="Run analysis").click()
        page.locator("#gn-analysis-figures img").first.wait_for(timeout=180_000)
        assert "judgement" in page.locator("#gn-analysis-summary").inner_text()
        shot(page, "analysis")
        page.get_by_role("button", name="Export").click()
        page.get_by_text(re.compile(r"Exported \d+ files")).first.wait_for(timeout=180_000)
        assert (outputs / "exports" / "goldennoise-hub.zip").is_file()

        page.get_by_role("tab", name="Settings").click()
        page.get_by_label("generation · height").fill("128")
        page.get_by_label("generation · width").fill("128")
        shot(page, "settings-admin")
        page.get_by_role("button", name="Load this model and switch to these settings").click()
        page.get_by_text(re.compile("Switched to campaign")).wait_for(timeout=120_000)
        wait_batch(watcher, watched, timeout=15_000)  # moved over without doing anything
        assert "switched" in watcher.inner_text(SCREEN)
        time.sleep(0.5)
        shot(watcher, "switched-watcher")
        assert "switched" not in message(watcher)  # said once, on the screen
        page.get_by_role("tab", name="Workbench").click()
        second = wait_batch(page, first)
        assert "switched" in page.inner_text(SCREEN)
        width = page.evaluate(f"() => document.querySelector('{SCREEN} .gn-cell img').naturalWidth")
        assert width == 128

        upload = tmp_path / "new.csv"
        upload.write_text("prompt,category\nan uploaded prompt,animals\nanother uploaded prompt,food\n")
        page.get_by_role("tab", name="Settings").click()
        page.locator("#gn-prompt-file input[type=file]").set_input_files(str(upload))
        page.get_by_text(re.compile("2 prompts loaded")).wait_for(timeout=120_000)
        page.get_by_role("tab", name="Workbench").click()
        wait_batch(page, second)
        assert "uploaded prompt" in page.inner_text(f"{SCREEN} .gn-prompt")
        broken = tmp_path / "broken.csv"
        broken.write_text('prompt\n"unclosed quote\n')
        page.get_by_role("tab", name="Settings").click()
        page.locator("#gn-prompt-file input[type=file]").set_input_files(str(broken))
        page.get_by_text(re.compile("malformed CSV")).wait_for(timeout=60_000)
        shot(page, "upload-refused")
        assert page.locator("#gn-set-message").inner_text().count("broken.csv") == 1


def login(page, url: str, user: str, password: str) -> None:
    page.goto(url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()


def test_annotators_see_the_settings_read_only_and_the_guidelines(tmp_path, browser):
    guide = tmp_path / "guide.md"
    guide.write_text("# What is golden\n\nThe **whole** object is in the picture and nothing is cut off.\n")
    with app(tmp_path, ["a vase", "a chair"], "--height", "64", "--width", "64", "--min-view-ms", "0",
             "--guidelines", str(guide), "--auth", "ada:pw-a", "--auth", "boss:pw-b:admin") as (url, outputs):
        context = browser.new_context(viewport={"width": 1366, "height": 768})
        page = context.new_page()
        login(page, url, "ada", "pw-a")
        wait_batch(page)  # a login starts labelling at once
        assert "nothing is cut off" in page.locator("#gn-guidelines-start").inner_text()
        page.keyboard.press("?")  # the guidelines, one key away in the Workbench
        page.wait_for_selector("#gn-guide.gn-open")
        assert "nothing is cut off" in page.locator("#gn-guide").inner_text()
        shot(page, "guidelines-overlay")
        page.keyboard.press("Escape")
        page.wait_for_selector("#gn-guide.gn-open", state="detached")
        page.get_by_role("tab", name="Settings").click()
        height = page.get_by_label("generation · height")
        assert height.input_value() == "64" and height.is_disabled()
        assert not page.get_by_role("button", name="Load this model and switch to these settings").is_visible()
        assert not page.get_by_role("tab", name="Analysis").is_visible()
        shot(page, "settings-annotator")
        page.get_by_role("tab", name="Workbench").click()
        page.locator(SCREEN).wait_for(state="visible")  # back on screen: a press before that is ignored on purpose
        page.wait_for_function("() => window.gn.state('batch').ignored !== undefined")
        before = page.evaluate("() => window.gn.state('batch').ignored")
        page.keyboard.press("Enter")
        if page.evaluate("() => window.gn.state('batch').ignored") > before:  # seen too early on a loaded machine
            time.sleep(0.5)
            page.keyboard.press("Enter")
        page.wait_for_function("() => { const m = document.querySelector('#gn-message .gn-msg'); "
                               "return m && /^Saved/.test(m.innerText); }")
        from tests.browser import records

        answer = records(outputs)[0]
        assert answer["annotator"] == "ada" and answer["guidelines_sha256"]
        context.close()
