"""Pairwise in the browser: its own screen, queue and undo; keys; the History shows the winner."""

from __future__ import annotations

import time

import pytest

from tests.browser import (PAIR_SCREEN, app, error_badges, needs_chromium, open_page, open_tab, records, shot,
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


def test_pairwise_fits_a_phone_and_a_pairwise_answer_can_be_relabelled(tmp_path, browser):
    with app(tmp_path, [f"phone pair {i}" for i in range(3)], "--height", "256", "--width", "256",
             "--min-view-ms", "0") as (url, outputs):
        page = open_page(browser, url, 390, 844)
        start_labelling(page, "thumbs")
        open_tab(page, "Pairwise")
        pair = wait_batch(page, screen=PAIR_SCREEN)
        shot(page, "pairwise-phone")
        bottoms = page.eval_on_selector_all(f"{PAIR_SCREEN} .gn-side img, {PAIR_SCREEN} [data-action=both_bad]",
                                            "els => els.map(e => e.getBoundingClientRect().bottom)")
        assert len(bottoms) == 3 and max(bottoms) <= 844  # both images and the answers on one screen
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 392
        page.locator(f"{PAIR_SCREEN} [data-action=left]").click()
        following = wait_batch(page, pair, screen=PAIR_SCREEN)
        open_tab(page, "History")
        page.locator("#gn-history [role=gridcell]").filter(has_text="pairwise: left").first.click()
        page.get_by_role("button", name="Relabel my answer in Pairwise").click()
        assert wait_batch(page, following, screen=PAIR_SCREEN) == pair
        assert "Relabelling" in page.inner_text(PAIR_SCREEN)
        page.locator(f"{PAIR_SCREEN} [data-action=right]").click()
        wait_batch(page, pair, screen=PAIR_SCREEN)
    from goldennoise.store.live import live
    from goldennoise.store.records import RecordStore

    counted = [r for r in live(RecordStore(outputs, import_legacy=False).read().records) if r.kind == "pairwise"]
    assert [r.preference.winner for r in counted] == ["right"] and counted[0].supersedes
