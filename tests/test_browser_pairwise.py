"""Pairwise in the browser: its own screen, queue and undo; keys; the History shows the winner."""

from __future__ import annotations

import time

import pytest

from tests.browser import (PAIR_SCREEN, app, error_badges, open_page, needs_chromium, records, shot,
                           start_labelling, wait_batch)

pytestmark = [needs_chromium, pytest.mark.slow, pytest.mark.browser]


def test_pairwise_keys_own_state_and_history(tmp_path, browser):
    with app(tmp_path, [f"pair prompt {i}" for i in range(6)], "--height", "64", "--width", "64",
             "--min-view-ms", "0") as (url, outputs):
        page = open_page(browser, url)
        bench_batch = start_labelling(page, "pairer")
        page.get_by_role("tab", name="Pairwise").click()
        pair = wait_batch(page, screen=PAIR_SCREEN)
        shot(page, "pairwise")
        seeds = [int(s) for s in page.inner_text(PAIR_SCREEN).split("seed ")[1:3] for s in [s.split()[0]]]
        page.keyboard.press("ArrowRight")  # right is better
        pair2 = wait_batch(page, pair, screen=PAIR_SCREEN)
        page.keyboard.press("t")  # tie
        pair3 = wait_batch(page, pair2, screen=PAIR_SCREEN)
        page.keyboard.press("u")  # undo the tie: that pair is back
        assert wait_batch(page, pair3, screen=PAIR_SCREEN) == pair2
        page.keyboard.press("b")  # both bad instead
        wait_batch(page, pair2, screen=PAIR_SCREEN)
        page.get_by_role("tab", name="Workbench").click()  # the Workbench batch is untouched
        time.sleep(0.5)
        page.keyboard.press("Enter")
        wait_batch(page, bench_batch)
        page.get_by_role("tab", name="History").click()
        page.locator("#gn-history [role=gridcell]").filter(has_text="pairwise: right").first.wait_for()
        assert error_badges(page) == 0
    got = [(r["kind"], (r.get("preference") or {}).get("winner")) for r in records(outputs)]
    assert got == [("pairwise", "right"), ("pairwise", "tie"), ("retraction", None), ("pairwise", "both_bad"),
                   ("judgement", None)]
    first = records(outputs)[0]
    assert [first["preference"]["left"], first["preference"]["right"]] == seeds
