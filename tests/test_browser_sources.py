"""The Workbench of a campaign whose batches mix re-denoised noises with plain seeds: shown, recorded, not revealed."""

from __future__ import annotations

import time
import urllib.request

import pytest

from tests.browser import app, error_badges, needs_chromium, open_page, records, seeds_on_screen, shot, \
    start_labelling, wait_batch

pytestmark = [needs_chromium, pytest.mark.slow, pytest.mark.browser]


def test_re_denoised_candidates_are_shown_and_recorded_without_being_revealed(tmp_path, browser):
    prompts = [f"a handwritten {d}" for d in range(10)]
    with app(tmp_path, prompts, "--model", "digits", "--noise-source", "redenoise", "--min-view-ms", "0") as (url, out):
        page = open_page(browser, url)
        first = start_labelling(page, "blind")
        shown = seeds_on_screen(page)
        html = page.content()
        sources = [img for img in page.eval_on_selector_all("#gn-screen img", "is => is.map(i => i.src)")]
        pngs = [urllib.request.urlopen(src, timeout=10).read() for src in sources if src.startswith("http")]
        shot(page, "workbench-redenoise")
        page.keyboard.press("1")
        time.sleep(0.2)
        page.keyboard.press("Enter")
        wait_batch(page, first)
        assert error_badges(page) == 0
    (record,) = [r for r in records(out) if r["kind"] == "judgement"]
    assert record["batch_id"] == first and record["seeds"] == shown
    made = [s["noise"]["source"]["name"] for s in record["samples"] if s["noise"].get("source")]
    assert made == ["redenoise"] * 2  # half of the batch of 4 started from re-denoised noise
    assert record["golden_seeds"] == [shown[0]]
    # nothing the annotator receives names the source: the page, the image addresses, the PNGs' own text
    for text in [html, *sources]:
        assert "redenoise" not in text.lower() and "source_sha256" not in text
    assert len(pngs) == 4 and all(b"redenoise" not in png for png in pngs)


def test_a_seeds_two_noises_side_by_side_in_pairwise_not_revealed_and_the_winner_marked_by_side(tmp_path, browser):
    from tests.browser import PAIR_SCREEN, open_tab, wait_state

    prompts = [f"a handwritten {d}" for d in range(10)]
    with app(tmp_path, prompts, "--model", "digits", "--noise-source", "redenoise", "--noise-pairing", "same_seed",
             "--batch-size", "2", "--min-view-ms", "0") as (url, out):
        page = open_page(browser, url)
        page.locator("#gn-name textarea, #gn-name input").first.fill("twins")
        page.locator("#gn-start").click()
        pair = wait_batch(page, screen=PAIR_SCREEN)  # Start opens Pairwise, on the first pair
        open_tab(page, "Workbench")
        wait_state(page, "idle")  # the Workbench has nothing to judge and says where to go, with no dead button
        assert "answer it in the Pairwise view" in page.inner_text("#gn-screen")
        assert page.locator("#gn-screen [data-action=retry]").count() == 0
        open_tab(page, "Pairwise")
        assert wait_batch(page, screen=PAIR_SCREEN) == pair
        html = page.inner_html(PAIR_SCREEN)
        sources = page.eval_on_selector_all(f"{PAIR_SCREEN} img", "is => is.map(i => i.src)")
        pngs = [urllib.request.urlopen(src, timeout=10).read() for src in sources]
        shot(page, "pairwise-same-seed")
        page.keyboard.press("ArrowLeft")
        wait_batch(page, pair, screen=PAIR_SCREEN)
        open_tab(page, "History")
        page.locator("#gn-history [role=gridcell]").filter(has_text="pairwise: left").first.click()
        page.locator(".gn-record .gn-thumb").first.wait_for()
        marks = page.eval_on_selector_all(".gn-record .gn-thumb figcaption", "fs => fs.map(f => f.innerText)")
        shot(page, "history-same-seed")
        assert error_badges(page) == 0
    (record,) = [r for r in records(out) if r["kind"] == "pairwise"]
    seed = record["seeds"][0]
    assert record["seeds"] == [seed, seed] and record["preference"] == {"left": seed, "right": seed, "winner": "left"}
    assert sorted(bool(s["noise"].get("source")) for s in record["samples"]) == [False, True]
    assert ["golden" in m for m in marks] == [True, False]  # the winner by its side, not by its (shared) seed
    # nothing the annotator receives tells x_T from x'_T: the page, the image addresses, the PNGs' own text
    assert len(sources) == 2 and sorted(s.rsplit("/", 1)[1] for s in sources) == [f"{seed}-0.png", f"{seed}-1.png"]
    for text in [html, *sources]:
        assert "redenoise" not in text.lower() and "source_sha256" not in text
    assert all(b"redenoise" not in png for png in pngs)
