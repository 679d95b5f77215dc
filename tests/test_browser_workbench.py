"""The Workbench in headless Chromium: every keystroke records exactly what the annotator saw.

One app serves the module (60 prompts, batches of 4, minimum viewing time 400 ms);
each test is a new annotator in a new browser context, pressing keys the way
people do: after a mouse click, twice, too early.
"""

from __future__ import annotations

import time

import pytest

from tests.browser import (SCREEN, app, error_badges, ignored, message, needs_chromium, open_page, records,
                           seeds_on_screen, shot, start_labelling, ticked, wait_batch, wait_state)

pytestmark = [needs_chromium, pytest.mark.slow, pytest.mark.browser]
MIN_VIEW = 0.45  # seconds: a little over the campaign's 400 ms


@pytest.fixture(scope="module")
def served(tmp_path_factory, browser):
    tmp = tmp_path_factory.mktemp("workbench")
    prompts = [f"workbench prompt {i}" for i in range(60)]
    for i in range(1, 60, 4):
        prompts[i] = f'a <b>bold</b> <img src="http://example.invalid/track.png"> lighthouse {i}'
    with app(tmp, prompts, "--height", "128", "--width", "128", "--min-view-ms", "400") as (url, outputs):
        yield url, outputs, browser


def mine(outputs, name):
    return [r for r in records(outputs) if r["annotator"] == name]


def test_enter_after_clicking_undo_or_all_submits(served):
    url, outputs, browser = served
    page = open_page(browser, url)
    first = start_labelling(page, "clicker")
    time.sleep(MIN_VIEW)
    page.keyboard.press("Enter")
    second = wait_batch(page, first)
    page.get_by_role("button", name="Undo").click()  # the mouse: Undo
    assert wait_batch(page, second) == first
    time.sleep(MIN_VIEW)
    page.keyboard.press("2")
    page.keyboard.press("Enter")  # must submit the ticks on screen, not undo again
    third = wait_batch(page, first)
    assert third == second
    time.sleep(MIN_VIEW)
    page.get_by_role("button", name="All golden").click()
    page.keyboard.press("Enter")  # must submit, not re-tick
    fourth = wait_batch(page, third)
    page.get_by_role("tab", name="Workbench").click()  # after clicking the tab, Enter still submits
    time.sleep(MIN_VIEW)
    page.keyboard.press("Enter")
    wait_batch(page, fourth)
    kinds = [(r["kind"], r.get("verdict")) for r in mine(outputs, "clicker")]
    assert kinds == [("judgement", "none_golden"), ("retraction", None), ("judgement", "some_golden"),
                     ("judgement", "all_golden"), ("judgement", "none_golden")]
    assert error_badges(page) == 0


@pytest.mark.parametrize("gap", [0.05, 0.3])
def test_a_second_enter_never_judges_an_unseen_batch_and_the_first_stays_confirmed(served, gap):
    url, outputs, browser = served
    name = f"double-{int(gap * 1000)}"
    page = open_page(browser, url)
    first = start_labelling(page, name)
    time.sleep(MIN_VIEW)
    page.keyboard.press("Enter")
    time.sleep(gap)
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.gn.state('batch').ignored >= 1")  # the page says it ignored the press
    wait_batch(page, first)
    page.wait_for_function("() => /extra press was ignored/.test(document.querySelector('#gn-message').innerText)")
    assert message(page).startswith("Saved")  # the first answer's confirmation is still there, not an orange warning
    assert [r["batch_id"] for r in mine(outputs, name)] == [first]
    assert error_badges(page) == 0


def test_no_answer_before_the_minimum_viewing_time(served):
    url, outputs, browser = served
    page = open_page(browser, url)
    start_labelling(page, "hasty")
    page.keyboard.press("1")
    page.keyboard.press("Enter")  # at once: too early
    page.wait_for_function("() => /moment longer|loading/.test(document.querySelector('#gn-message').innerText)")
    assert mine(outputs, "hasty") == []  # refused in the page: nothing was even sent
    assert len(ticked(page)) == 1  # the ticks are kept


def test_a_number_key_right_after_a_new_batch_ticks_the_new_batch(served):
    url, outputs, browser = served
    page = open_page(browser, url)
    first = start_labelling(page, "quick-fingers")
    time.sleep(MIN_VIEW)
    page.keyboard.press("Enter")
    second = wait_batch(page, first, painted=False)  # the moment the new batch appears
    time.sleep(0.02)
    page.keyboard.press("2")
    seeds = seeds_on_screen(page)
    assert ticked(page) == [seeds[1]]
    wait_batch(page, first)
    time.sleep(MIN_VIEW)
    page.keyboard.press("Enter")
    wait_batch(page, second)
    answers = mine(outputs, "quick-fingers")
    assert answers[1]["batch_id"] == second and answers[1]["golden_seeds"] == [seeds[1]]


def test_a_scripted_keyboard_session_is_recorded_exactly(served):
    url, outputs, browser = served
    page = open_page(browser, url)
    batch = start_labelling(page, "script")
    script = [("1 3 Enter", ("judgement", [0, 2])), ("s", ("skip", None)), ("n Enter", ("judgement", [])),
              ("a Enter", ("judgement", [0, 1, 2, 3])), ("u", ("retraction", None)),
              ("a 2 Enter", ("judgement", [0, 2, 3])), ("4 4 4 Enter", ("judgement", [3]))]
    shown = []
    for keys, _ in script:
        time.sleep(MIN_VIEW)
        seeds = seeds_on_screen(page)
        if keys != "u":
            shown.append(seeds)
        for key in keys.split():
            page.keyboard.press(key)
        batch = wait_batch(page, batch)
    got = mine(outputs, "script")
    assert [r["kind"] for r in got] == [kind for _, (kind, _) in script]
    answers = [r for r in got if r["kind"] == "judgement"]
    expected = [[seeds[i] for i in picks] for seeds, (_, (kind, picks)) in zip(shown, [s for s in script if s[0] != "u"])
                if kind == "judgement"]
    assert [r["golden_seeds"] for r in answers] == expected
    assert got[4]["retracts"] == got[3]["record_id"]
    assert all(r["interaction"] for r in answers)  # the keys that made each choice are kept
    assert all(r["timing"]["visible_ms"] >= 400 for r in answers)


def test_two_tabs_are_two_sessions_and_closing_frees_the_prompt(served):
    url, outputs, browser = served
    a = open_page(browser, url)
    b = open_page(browser, url)
    batch_a, batch_b = start_labelling(a, "tabby"), start_labelling(b, "tabby")
    prompt_a, prompt_b = a.inner_text(f"{SCREEN} .gn-prompt"), b.inner_text(f"{SCREEN} .gn-prompt")
    assert prompt_a != prompt_b  # the same annotator's two tabs never get the same prompt
    for page, batch in ((a, batch_a), (b, batch_b)):
        time.sleep(MIN_VIEW)
        page.keyboard.press("Enter")
        wait_batch(page, batch)
    done = mine(outputs, "tabby")
    assert len({r["session_id"] for r in done}) == 2
    assert len({r["prompt"]["id"] for r in done}) == 2
    held = a.inner_text(f"{SCREEN} .gn-prompt")
    a.context.close()  # close the tab
    deadline, freed = time.monotonic() + 5, False
    while time.monotonic() < deadline and not freed:
        c = open_page(browser, url)
        start_labelling(c, "newcomer")
        freed = c.inner_text(f"{SCREEN} .gn-prompt") == held
        c.context.close()
    assert freed, "a closed tab's prompt was not free within 5 s"


def test_prompts_are_text_and_nothing_leaves_for_their_urls(served):
    url, outputs, browser = served
    page = open_page(browser, url)
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    batch = start_labelling(page, "reader")
    for _ in range(6):
        if "lighthouse" in page.inner_text(f"{SCREEN} .gn-prompt"):
            break
        time.sleep(MIN_VIEW)
        page.keyboard.press("Enter")
        batch = wait_batch(page, batch)
    assert "<img src=" in page.inner_text(f"{SCREEN} .gn-prompt")  # shown as text
    time.sleep(MIN_VIEW)
    page.keyboard.press("Enter")
    wait_batch(page, batch)
    assert "<b>bold</b>" in message(page)  # the Saved line too
    page.get_by_role("tab", name="History").click()
    page.locator("#gn-history [role=gridcell]").filter(has_text="lighthouse").first.click()
    page.wait_for_selector(".gn-record")
    assert not any("example.invalid" in u for u in requested), [u for u in requested if "example" in u]
    assert dialogs == []


def test_the_screen_fits_1366x768_and_a_phone(served):
    url, outputs, browser = served
    page = open_page(browser, url, 1366, 768)
    start_labelling(page, "layout")
    page.keyboard.press("2")
    shot(page, "workbench-1366x768")
    boxes = page.eval_on_selector_all(f"{SCREEN} .gn-cell img, {SCREEN} [data-action=submit]",
                                      "els => els.map(e => e.getBoundingClientRect().bottom)")
    assert max(boxes) <= 768 and page.evaluate("() => window.scrollY") == 0
    phone = open_page(browser, url, 390, 844)
    start_labelling(phone, "phone")
    shot(phone, "workbench-phone")
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= 392
    phone.locator(f"{SCREEN} .gn-cell").nth(2).click()
    assert len(phone.eval_on_selector_all(f"{SCREEN} .gn-cell.gn-ticked", "e => e")) == 1


def test_clicking_an_image_ticks_it_and_the_larger_view_ticks_too(served):
    url, outputs, browser = served
    page = open_page(browser, url)
    batch = start_labelling(page, "clicks")
    seeds = seeds_on_screen(page)
    page.locator(f"{SCREEN} .gn-cell").nth(0).click()
    page.keyboard.press("f")
    page.wait_for_selector("#gn-lightbox", state="visible")
    natural = page.evaluate("() => document.querySelector('#gn-lightbox img').naturalWidth")
    assert natural == 128  # full resolution
    page.keyboard.press("ArrowRight")
    page.keyboard.press(" ")  # ticks image 2 from the larger view
    shot(page, "larger-view")
    page.keyboard.press("Escape")
    assert ticked(page) == seeds[:2]
    time.sleep(MIN_VIEW)
    page.keyboard.press("Enter")
    wait_batch(page, batch)
    assert mine(outputs, "clicks")[0]["golden_seeds"] == seeds[:2]


def test_a_reload_remembers_the_name_and_frees_the_held_prompt(served):
    url, outputs, browser = served
    page = open_page(browser, url)
    start_labelling(page, "reloader")
    page.reload()
    page.wait_for_selector("#gn-start", state="attached")  # the new page; it may already have moved on to labelling
    wait_batch(page)  # back to labelling without typing the name again
    assert page.locator("#gn-name textarea, #gn-name input").first.input_value() == "reloader"


def test_blind_by_default_before_and_after_the_answer(served):
    url, outputs, browser = served
    page = open_page(browser, url)
    batch = start_labelling(page, "blind")
    assert "CLIP" not in page.inner_text(SCREEN)
    time.sleep(MIN_VIEW)
    page.keyboard.press("Enter")
    wait_batch(page, batch)
    assert message(page).startswith("Saved") and "CLIP" not in message(page)  # not after the answer either
    assert mine(outputs, "blind")[0]["shown_scores"] is False and mine(outputs, "blind")[0]["feedback"] is None


def test_history_loads_when_opened_and_relabel_of_another_keeps_both(served):
    url, outputs, browser = served
    ada = open_page(browser, url)
    batch = start_labelling(ada, "hist-ada")
    time.sleep(MIN_VIEW)
    ada.keyboard.press("1")
    ada.keyboard.press("Enter")
    wait_batch(ada, batch)
    ada.get_by_role("tab", name="History").click()
    ada.locator("#gn-history [role=gridcell]").filter(has_text="hist-ada").first.wait_for()  # loaded on opening
    shot(ada, "history")
    bob = open_page(browser, url)
    queue_batch = start_labelling(bob, "hist-bob")
    bob.get_by_role("tab", name="History").click()
    bob.get_by_label("Everyone's answers").check()  # a local app: everyone administers
    bob.locator("#gn-history [role=gridcell]").filter(has_text="hist-ada").first.click()
    bob.get_by_role("button", name="Judge it again myself (second opinion)").click()
    second = wait_batch(bob, queue_batch)
    assert "Second opinion" in bob.inner_text(SCREEN)
    time.sleep(MIN_VIEW)
    bob.keyboard.press("2")
    bob.keyboard.press("Enter")
    wait_batch(bob, second)
    theirs, mine_ = mine(outputs, "hist-ada"), mine(outputs, "hist-bob")
    assert mine_[0]["second_opinion_of"] == theirs[0]["record_id"]
    from goldennoise.store.live import live
    from goldennoise.store.records import RecordStore

    counted = {r.record_id for r in live(RecordStore(outputs).read().records)}
    assert {theirs[0]["record_id"], mine_[0]["record_id"]} <= counted


@pytest.fixture(scope="module")
def small(tmp_path_factory, browser):
    tmp = tmp_path_factory.mktemp("small")
    with app(tmp, ["one", "two", "three"], "--height", "64", "--width", "64", "--batch-size", "8",
             "--min-view-ms", "0") as (url, outputs):
        yield url, outputs, browser


def test_eight_images_fit_and_the_end_is_a_done_screen(small):
    url, outputs, browser = small
    page = open_page(browser, url)
    batch = start_labelling(page, "finisher")
    bottoms = page.eval_on_selector_all(f"{SCREEN} .gn-cell img, {SCREEN} [data-action=submit]",
                                        "els => els.map(e => e.getBoundingClientRect().bottom)")
    assert len(bottoms) == 9 and max(bottoms) <= 768
    shot(page, "workbench-8-images")
    for _ in range(3):
        page.keyboard.press("Enter")
        if _ < 2:
            batch = wait_batch(page, batch)
    wait_state(page, "done")
    shot(page, "done")
    assert "All done" in page.inner_text(SCREEN) and error_badges(page) == 0


def test_a_held_key_acts_once(served):
    url, outputs, browser = served
    page = open_page(browser, url)
    batch = start_labelling(page, "holder")
    time.sleep(MIN_VIEW)
    for _ in range(4):
        page.keyboard.down("3")  # auto-repeat: keydown events with repeat=true
    page.keyboard.up("3")
    assert len(ticked(page)) == 1
    for _ in range(5):
        page.keyboard.down("s")  # the repeats are dropped in the page, synchronously, before any reply
    page.keyboard.up("s")
    wait_batch(page, batch)
    assert [r["kind"] for r in mine(outputs, "holder")] == ["skip"]


def test_time_on_other_tabs_is_not_viewing_time(served):
    url, outputs, browser = served
    page = open_page(browser, url)
    batch = start_labelling(page, "wanderer")
    page.get_by_role("tab", name="History").click()
    time.sleep(2.0)
    page.get_by_role("tab", name="Workbench").click()
    time.sleep(0.6)
    page.keyboard.press("Enter")
    wait_batch(page, batch)
    visible = mine(outputs, "wanderer")[0]["timing"]["visible_ms"]
    assert 400 <= visible < 1500, visible


def test_a_relabel_detour_keeps_the_ticks_and_skipping_it_cancels(served):
    url, outputs, browser = served
    page = open_page(browser, url)
    first = start_labelling(page, "detour")
    time.sleep(MIN_VIEW)
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    current = wait_batch(page, first)
    seeds = seeds_on_screen(page)
    page.keyboard.press("1")
    page.keyboard.press("2")
    page.get_by_role("tab", name="History").click()
    page.locator("#gn-history [role=gridcell]").filter(has_text="some golden").first.click()
    page.get_by_role("button", name="Relabel my answer in the Workbench").click()
    assert wait_batch(page, current) == first
    time.sleep(MIN_VIEW)
    page.keyboard.press("s")  # skip a relabel: cancel it
    assert wait_batch(page, first) == current
    assert ticked(page) == seeds[:2]  # the ticks made before the detour are back, and it says so
    assert "earlier ticks on this batch are back (2)" in page.inner_text(SCREEN)
    shot(page, "restored-ticks")
    assert "cancelled" in message(page)
    assert [r["kind"] for r in mine(outputs, "detour")] == ["judgement"]


def test_a_waiting_annotator_takes_a_freed_prompt_without_reloading(tmp_path, browser):
    with app(tmp_path, ["first", "second"], "--height", "64", "--width", "64", "--min-view-ms", "0") as (url, _):
        holders = [open_page(browser, url), open_page(browser, url)]
        for page, name in zip(holders, ("holder-1", "holder-2")):
            start_labelling(page, name)
        waiting = open_page(browser, url)
        waiting.locator("#gn-name textarea, #gn-name input").first.fill("waiter")
        waiting.locator("#gn-start").click()
        wait_state(waiting, "done")
        assert "others" in waiting.inner_text(SCREEN) and error_badges(waiting) == 0
        held = holders[0].inner_text(f"{SCREEN} .gn-prompt")
        holders[0].context.close()
        closed = time.monotonic()
        wait_batch(waiting, timeout=10_000)
        assert time.monotonic() - closed < 6.5, "the waiting screen did not take the freed prompt in time"
        assert waiting.inner_text(f"{SCREEN} .gn-prompt") == held


@pytest.mark.parametrize("gap", [0.0, 0.05])
def test_enter_while_an_undo_is_on_its_way_is_ignored_not_logged(served, gap):
    url, outputs, browser = served
    page = open_page(browser, url)
    name = f"undo-enter-{int(gap * 1000)}"
    first = start_labelling(page, name)
    time.sleep(MIN_VIEW)
    page.keyboard.press("Enter")
    second = wait_batch(page, first)
    time.sleep(MIN_VIEW)  # the second batch has been seen long enough: only the undo in flight stops the Enter
    page.keyboard.press("1")
    before = ignored(page)
    page.get_by_role("button", name="Undo").click()
    time.sleep(gap)
    page.keyboard.press("Enter")  # the undo's reply has not arrived
    page.wait_for_function(f"() => window.gn.state('batch').ignored > {before}")  # ignored in the page, not sent
    assert wait_batch(page, second) == first
    assert [r["kind"] for r in mine(outputs, name)] == ["judgement", "retraction"]
    time.sleep(MIN_VIEW)
    page.keyboard.press("Enter")  # now it submits, and its log holds only this batch's submit
    wait_batch(page, first)
    last = mine(outputs, name)[-1]
    assert last["kind"] == "judgement" and last["batch_id"] == first
    assert [e["a"] for e in last["interaction"] if e["a"] == "submit"] == ["submit"]


def test_undoing_a_relabel_then_skipping_never_overwrites_the_original(tmp_path, browser):
    """0.2's wrong-data bug, as it was found: History -> Relabel -> submit -> u -> s, then label on to the end."""
    with app(tmp_path, ["one", "two", "three"], "--height", "64", "--width", "64", "--min-view-ms", "0") as served:
        _relabel_undo_skip(*served, browser)


def _relabel_undo_skip(url, outputs, browser):
    page = open_page(browser, url)
    first = start_labelling(page, "relabel-undo")
    seeds = seeds_on_screen(page)
    page.keyboard.press("4")
    page.keyboard.press("Enter")
    current = wait_batch(page, first)
    page.get_by_role("tab", name="History").click()
    page.locator("#gn-history [role=gridcell]").filter(has_text="some golden").first.click()
    page.get_by_role("button", name="Relabel my answer in the Workbench").click()
    assert wait_batch(page, current) == first
    page.keyboard.press("4")
    page.keyboard.press("1")
    page.keyboard.press("2")
    page.keyboard.press("Enter")  # the relabel
    assert wait_batch(page, first) == current
    page.keyboard.press("u")  # undo the relabel: its screen comes back
    assert wait_batch(page, current) == first
    page.keyboard.press("s")  # skip it: the relabel is cancelled, the original stands
    assert wait_batch(page, first) == current
    assert "earlier answer stands" in message(page)
    shown = []
    batch = current
    while page.evaluate(f"() => document.querySelector('{SCREEN}').dataset.state") == "batch":
        shown.append(page.inner_text(f"{SCREEN} .gn-prompt"))
        page.keyboard.press("Enter")
        try:
            batch = wait_batch(page, batch, timeout=15_000)
        except Exception:  # noqa: BLE001 - the last answer leads to the done screen
            break
    wait_state(page, "done")
    assert "one" not in shown  # the judged prompt never came back as an ordinary batch
    counted = [r for r in records(outputs) if r["annotator"] == "relabel-undo" and r["kind"] == "judgement"]
    from goldennoise.store.live import live
    from goldennoise.store.records import RecordStore

    alive = {r.record_id for r in live(RecordStore(outputs, import_legacy=False).read().records)}
    originals = [r for r in counted if r["batch_id"] == first and r["record_id"] in alive]
    assert len(originals) == 1 and originals[0]["golden_seeds"] == [seeds[3]] and originals[0]["supersedes"] is None


def test_ticks_and_their_keys_survive_a_reload_and_undo_works_after_it(served):
    url, outputs, browser = served
    page = open_page(browser, url)
    first = start_labelling(page, "reload-ticks")
    seeds = seeds_on_screen(page)
    page.keyboard.press("1")
    page.keyboard.press("3")
    page.reload()
    assert wait_batch(page) == first
    assert ticked(page) == [seeds[0], seeds[2]]
    time.sleep(MIN_VIEW)
    page.keyboard.press("Enter")
    second = wait_batch(page, first)
    record = mine(outputs, "reload-ticks")[0]
    assert record["golden_seeds"] == [seeds[0], seeds[2]]
    actions = [(e["a"], e.get("i")) for e in record["interaction"]]
    assert ("toggle", 1) in actions and ("toggle", 3) in actions and ("ticks", 2) in actions  # made before the reload
    page.reload()
    assert wait_batch(page) == second
    page.keyboard.press("u")  # after a reload: this tab's last answer comes back
    assert wait_batch(page, second) == first
    assert [r["kind"] for r in mine(outputs, "reload-ticks")] == ["judgement", "retraction"]


def test_the_larger_view_closes_on_a_tap_beside_the_picture(served):
    url, outputs, browser = served
    page = open_page(browser, url, 390, 844)
    start_labelling(page, "tapper")
    page.keyboard.press("f")
    page.wait_for_selector("#gn-lightbox", state="visible")
    box = page.locator("#gn-lightbox img").bounding_box()
    page.mouse.click(195, box["y"] - 20 if box["y"] > 30 else box["y"] + box["height"] + 20)  # the band beside it
    page.wait_for_selector("#gn-lightbox", state="hidden")
    assert ticked(page) == []
    page.keyboard.press("f")
    page.locator("#gn-lightbox img").click()  # the picture itself ticks
    assert len(ticked(page)) == 1


def test_a_first_run_says_the_model_is_a_placeholder_and_where_records_go(served):
    """What a newcomer meets on the README's run with a random-weights model: a note on the screen, and in the
    terminal the outputs folder, the CLI's sharing flags (not `share=True`) and no torchvision noise."""
    url, outputs, browser = served
    page = open_page(browser, url)
    start_labelling(page, "newcomer")
    assert "placeholder model: random weights" in page.locator(".gn-placeholder").first.inner_text()
    log = (outputs.parent / "app.log").read_text()
    assert f"outputs folder {outputs.resolve()}" in log and "--share --auth" in log
    assert "share=True" not in log and "torchvision" not in log
