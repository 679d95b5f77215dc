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

        page.get_by_role("tab", name="Start").click()
        page.get_by_text("Advanced: change the campaign (administrators)").click()
        page.get_by_label("height").fill("128")
        page.get_by_label("width").fill("128")
        page.get_by_role("button", name="Switch to this campaign").click()
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
        page.get_by_role("tab", name="Start").click()
        page.locator("#gn-prompt-file input[type=file]").set_input_files(str(upload))
        page.get_by_text(re.compile("2 prompts loaded")).wait_for(timeout=120_000)
        page.get_by_role("tab", name="Workbench").click()
        wait_batch(page, second)
        assert "uploaded prompt" in page.inner_text(f"{SCREEN} .gn-prompt")
        broken = tmp_path / "broken.csv"
        broken.write_text('prompt\n"unclosed quote\n')
        page.get_by_role("tab", name="Start").click()
        page.locator("#gn-prompt-file input[type=file]").set_input_files(str(broken))
        page.get_by_text(re.compile("malformed CSV")).wait_for(timeout=60_000)
        shot(page, "upload-refused")
        time.sleep(0.5)
        assert page.locator("#gn-start-message").inner_text().count("broken.csv") == 1
