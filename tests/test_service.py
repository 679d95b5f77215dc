"""The annotation service without a browser: what gets recorded, for whom, and what is refused."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import replace

import pytest

from goldennoise.annotation.access import Access
from goldennoise.annotation.service import Caller, Service
from goldennoise.errors import CampaignError, LeaseLost, NotSaved, Refused, UserError
from goldennoise.store import queue
from goldennoise.store.campaign import Campaign
from goldennoise.store.live import live
from goldennoise.store.names import identity


@pytest.fixture
def campaign(tmp_path) -> Campaign:
    prompts = tmp_path / "p.txt"
    prompts.write_text("".join(f"prompt number {i}\n" for i in range(6)))
    return Campaign(name="flow", model="tiny-flux", height=64, width=64, prompts=str(prompts),
                    seed_strategy="sequential", start_seed=100, min_view_ms=0)


def started(tmp_path, campaign, name="out", **options) -> Service:
    service = Service(tmp_path / name, prefetch=False, **options)
    service.start(campaign)
    return service


@pytest.fixture
def service(tmp_path, campaign):
    service = started(tmp_path, campaign)
    yield service
    service.close_all()


def kinds(service) -> list[str]:
    return [r.kind for r in service.store.read().records]


A, B, C = Caller("tab-a"), Caller("tab-b"), Caller("tab-c")


def test_answers_name_their_batch_and_count_once(service):
    first = service.join(A, "ada")
    done = service.answer(A, "batch", first.batch.batch_id, golden=[first.batch.seeds[2]])
    assert done.record.golden_seeds == [first.batch.seeds[2]] and done.record.batch_id == first.batch.batch_id
    assert done.screen.prompt.text == "prompt number 1"
    for again in (dict(golden=[]), dict(skip=True)):  # a double Enter; skip-after-submit
        with pytest.raises(Refused, match="Already recorded"):
            service.answer(A, "batch", first.batch.batch_id, **again)
    with pytest.raises(Refused, match="not on your screen"):
        service.answer(A, "batch", "f" * 32, golden=[])
    with pytest.raises(UserError, match="not in the batch"):
        service.answer(A, "batch", done.screen.batch.batch_id, golden=[1])
    assert kinds(service) == ["judgement"]
    assert done.record.session_id != A.connection and len(done.record.session_id) == 32  # derived, not the hash


def test_minimum_viewing_time_is_enforced(tmp_path, campaign):
    service = started(tmp_path, replace(campaign, min_view_ms=300))
    screen = service.join(A, "ada")
    with pytest.raises(Refused, match="Too quick"):
        service.answer(A, "batch", screen.batch.batch_id, golden=[])
    time.sleep(0.35)
    with pytest.raises(Refused, match="Too quick"):  # the browser says it was visible only 100 ms
        service.answer(A, "batch", screen.batch.batch_id, golden=[], visible_ms=100)
    done = service.answer(A, "batch", screen.batch.batch_id, golden=[], visible_ms=320)
    assert done.record.timing["visible_ms"] == 320 and done.record.timing["elapsed_ms"] >= 300
    service.answer(A, "batch", done.screen.batch.batch_id, skip=True)  # a skip needs no viewing time
    service.close_all()


def test_tabs_never_share_a_prompt_and_closing_frees_it(service):
    seen = {service.join(A, "ada").prompt.id, service.join(B, "ada").prompt.id, service.join(C, "bob").prompt.id}
    assert len(seen) == 3  # the same annotator's two tabs included
    held = service.show(A).prompt.id
    assert service.close(A) == 1
    assert service.join(Caller("d"), "cy").prompt.id == held  # freed at once


def test_a_silent_api_client_loses_its_lease(tmp_path, campaign):
    clock = [1000.0]
    service = started(tmp_path, campaign, clock=lambda: clock[0])
    held = service.join(A, "ada").prompt.id
    clock[0] += queue.LEASE_SECONDS + 1
    assert service.join(B, "bob").prompt.id == held
    with pytest.raises(LeaseLost, match="no longer held by this tab"):  # the silent client comes back too late
        service.answer(A, "batch", service.show(A).batch.batch_id, golden=[])
    assert kinds(service) == [] and service.show(A).prompt.id != held  # told, and moved on
    service.close_all()


def test_undo_retracts_your_last_answer_and_restores_the_screen(service):
    first = service.join(A, "ada")
    service.answer(A, "batch", first.batch.batch_id, golden=first.batch.seeds[:2])
    retraction, back = service.undo(A)
    assert back.batch.batch_id == first.batch.batch_id and back.ticks == tuple(first.batch.seeds[:2])
    with pytest.raises(Refused, match="Nothing to undo in this tab.*History"):
        service.undo(A)
    done = service.answer(A, "batch", back.batch.batch_id, golden=[])
    assert done.screen.prompt.text == "prompt number 1"  # the queue goes on where it was
    assert [r.kind for r in service.store.live()] == ["judgement"]
    assert kinds(service) == ["judgement", "retraction", "judgement"]


def test_undo_works_after_a_reload_of_the_tab(service):
    first = service.join(A, "ada", tab_key="k" * 16)
    service.answer(A, "batch", first.batch.batch_id, golden=[first.batch.seeds[1]])
    service.close(A)  # the page reloads: a new connection, the same tab
    reloaded = Caller("tab-a-again")
    service.join(reloaded, "ada", tab_key="k" * 16)
    _, back = service.undo(reloaded)
    assert back.batch.batch_id == first.batch.batch_id and back.ticks == (first.batch.seeds[1],)
    other = Caller("another-tab")
    service.join(other, "ada", tab_key="z" * 16)
    with pytest.raises(Refused, match="Nothing to undo in this tab"):  # another tab's answers are not its own
        service.undo(other)


def test_relabel_supersedes_your_own_and_seconds_someone_elses(service):
    screen = service.join(A, "ada")
    original = service.answer(A, "batch", screen.batch.batch_id, golden=[screen.batch.seeds[0]]).record
    service.join(B, "bob")
    other = service.relabel(B, original.record_id)
    assert other.ticks == () and other.second_opinion_of == original.record_id
    second = service.answer(B, "batch", other.batch.batch_id, golden=[screen.batch.seeds[1]])
    assert second.screen.prompt.id == service.show(B).prompt.id  # back to bob's queue prompt
    mine = service.relabel(A, original.record_id)
    assert mine.ticks == (screen.batch.seeds[0],) and mine.supersedes == original.record_id
    relabelled = service.answer(A, "batch", mine.batch.batch_id, golden=[]).record
    counted = {r.record_id for r in service.store.live()}
    assert counted == {second.record.record_id, relabelled.record_id}  # ada's old answer replaced, bob's kept
    assert second.record.samples[0].noise == original.samples[0].noise  # the same noise, re-judged


def test_undoing_a_relabel_then_skipping_keeps_the_original_answer(service):
    """The wrong-data bug of 0.2: History -> Relabel -> submit -> u -> s reopened the prompt, and answering it later
    replaced the original answer."""
    screen = service.join(A, "ada")
    original = service.answer(A, "batch", screen.batch.batch_id, golden=[screen.batch.seeds[3]]).record
    before = service.progress(A)
    relabel = service.relabel(A, original.record_id)
    service.answer(A, "batch", relabel.batch.batch_id, golden=[relabel.batch.seeds[0], relabel.batch.seeds[1]])
    _, back = service.undo(A)
    assert back.origin == "relabel" and back.supersedes == original.record_id
    cancelled = service.answer(A, "batch", back.batch.batch_id, skip=True)
    assert cancelled.record is None and "earlier answer stands" in cancelled.message
    assert service.progress(A) == before  # the prompt is not open again
    seen = set()
    screen = service.show(A)
    while screen.state == "batch":  # the rest of the queue never brings the judged prompt back
        seen.add(screen.prompt.id)
        screen = service.answer(A, "batch", screen.batch.batch_id, golden=[]).screen
    assert original.prompt.id not in seen
    mine = [r for r in service.store.live() if r.prompt.id == original.prompt.id]
    assert [r.record_id for r in mine] == [original.record_id] and mine[0].golden_seeds == [screen_seed(original)]


def screen_seed(record) -> int:
    return record.golden_seeds[0]


@pytest.mark.parametrize("seed", range(3))
def test_no_sequence_of_relabel_undo_and_skip_leaves_an_unintended_second_answer(tmp_path, campaign, seed):
    """Random sessions of answers, skips, undos, relabels (own and others') and cancelled relabels in two tabs of
    one annotator and one of another: every batch has at most one live judgement per annotator, and when an
    annotator's live judgement is not the first one they wrote for it, it is a relabel (it names what it replaced)
    or every earlier one was undone."""
    service = started(tmp_path, replace(campaign, overlap=0.5), name=f"o{seed}")
    rng = random.Random(seed)
    tabs = [(Caller("a1"), "ada"), (Caller("a2"), "Ada"), (Caller("b1"), "bob")]
    for caller, name in tabs:
        service.join(caller, name)
    for _ in range(60):
        caller, _ = rng.choice(tabs)
        screen = service.show(caller)
        try:
            roll = rng.random()
            if roll < 0.15:
                service.undo(caller)
            elif roll < 0.3:
                mine = service.history(caller)["rows"]
                if mine:
                    service.relabel(caller, rng.choice(mine)["record_id"])
            elif screen.state == "batch":
                ticks = [s for s in screen.batch.seeds if rng.random() < 0.3]
                service.answer(caller, "batch", screen.batch.batch_id, golden=ticks, skip=rng.random() < 0.25)
        except Refused:
            pass
    records = service.store.read().records
    undone = {r.retracts for r in records if r.kind == "retraction"}
    earlier = {}
    for r in records:
        if r.kind == "judgement":
            earlier.setdefault((identity(r.annotator), r.batch_id), []).append(r.record_id)
    counted = [r for r in service.store.live() if r.kind == "judgement"]
    keys = [(identity(r.annotator), r.batch_id) for r in counted]
    assert len(keys) == len(set(keys))
    for r in counted:
        before = earlier[(identity(r.annotator), r.batch_id)]
        before = before[:before.index(r.record_id)]
        assert r.supersedes or r.second_opinion_of or set(before) <= undone, (r.record_id, before)
    service.close_all()


def test_a_failed_write_keeps_the_screen_for_a_retry(service, monkeypatch):
    screen = service.join(A, "ada")

    def full(record, guard=None, then=None):
        raise NotSaved("Not saved: the disk holding the records is full.")

    monkeypatch.setattr(service.store, "append", full)
    with pytest.raises(NotSaved):
        service.answer(A, "batch", screen.batch.batch_id, golden=[screen.batch.seeds[0]])
    assert service.show(A) is screen
    monkeypatch.undo()
    done = service.answer(A, "batch", screen.batch.batch_id, golden=[screen.batch.seeds[0]])
    assert done.record.golden_seeds == [screen.batch.seeds[0]]


def test_the_end_of_the_queue_is_a_done_screen(service):
    screen = service.join(A, "ada")
    while screen.state == "batch":
        screen = service.answer(A, "batch", screen.batch.batch_id, skip=True).screen
    assert screen.state == "done"
    assert service.progress(A) == {"total": 6, "judged": 0, "skipped": 6, "remaining_for_you": 0}


def test_overlap_prompts_show_both_annotators_the_same_batch(tmp_path, campaign):
    service = started(tmp_path, replace(campaign, overlap=1.0, seed_strategy="random"), name="o2")
    a = service.join(A, "ada")
    service.answer(A, "batch", a.batch.batch_id, golden=[])
    calls = service.batches.generation_calls
    b = service.join(B, "bob")
    assert b.batch.batch_id == a.batch.batch_id and b.batch.seeds == a.batch.seeds
    assert service.batches.generation_calls == calls  # not generated twice
    service.close_all()


def test_switching_campaigns_moves_every_tab_without_errors(service):
    old = service.join(A, "ada")
    with pytest.raises(UserError):
        service.switch(A, {"model": "nobody/no-such-model"})
    assert service.show(A).batch.batch_id == old.batch.batch_id  # a failed switch changes nothing
    runtime = service.switch(A, {"height": 128, "width": 128})
    with pytest.raises(Refused):  # the old batch is gone, politely
        service.answer(A, "batch", old.batch.batch_id, golden=[])
    screen = service.show(A)
    assert "switched" in screen.notice and screen.batch.parameters["height"] == 128
    record = service.answer(A, "batch", screen.batch.batch_id, golden=[]).record
    assert record.campaign == runtime.id != old.batch.campaign


def test_a_model_switch_resets_generation_values_to_the_new_models_defaults(service):
    service.join(A, "ada")
    moved = service.switch(A, {"model": "tiny-sd"})
    assert (moved.campaign.height, moved.campaign.guidance_scale) == (256, 5.0)  # tiny-sd's own defaults
    kept = service.switch(A, {"model": "tiny-flux", "height": 64, "width": 64})
    assert (kept.campaign.height, kept.campaign.guidance_scale) == (64, 0.0)


def test_annotators_cannot_switch_or_see_everyone(tmp_path, campaign):
    service = started(tmp_path, campaign, access=Access(users=(("ada", "x"), ("boss", "y")),
                                                        admins=frozenset({"boss"})))
    ada = Caller("ada-tab", login="ada")
    service.join(ada, "whatever she types")
    assert service.annotator_of(ada) == "ada"  # the login wins
    with pytest.raises(Refused, match="administrator"):
        service.switch(ada, {"height": 128})
    with pytest.raises(Refused, match="everyone"):
        service.history(ada, everyone=True)
    eve = Caller("ada-tab", login="eve")  # another login sending ada's connection id
    for attempt in (lambda: service.show(eve), lambda: service.join(eve, "eve"), lambda: service.undo(eve)):
        with pytest.raises(Refused, match="another login"):
            attempt()
    assert service.close(eve) == 0 and service.show(ada).state == "batch"  # nor can it close her tab
    service.close_all()


def test_huge_seeds_stay_exact(tmp_path, campaign):
    start = 2**62 + 12345
    service = started(tmp_path, replace(campaign, start_seed=start), name="o3")
    screen = service.join(A, "ada")
    record = service.answer(A, "batch", screen.batch.batch_id, golden=[str(start + 1)]).record
    assert record.seeds[0] == start and record.golden_seeds == [start + 1]
    service.close_all()


def test_prefiltering_records_exploration_and_propensities(tmp_path, campaign):
    service = started(tmp_path, replace(campaign, batch_size=4, candidates=10, prefilter="clip", explore=1), "o4")
    screen = service.join(A, "ada")
    record = service.answer(A, "batch", screen.batch.batch_id, golden=[]).record
    slots = sorted(s.slot for s in record.samples)
    assert slots == ["explore", "ranked", "ranked", "ranked"]
    assert {s.propensity for s in record.samples if s.slot == "explore"} == {1 / 7}
    assert len(record.prefilter.hidden) == 6 and all(h.propensity == 1 / 7 for h in record.prefilter.hidden)
    ranked = [s.rank_score for s in record.samples if s.slot == "ranked"]
    assert min(ranked) >= max(h.rank_score for h in record.prefilter.hidden)
    service.close_all()


def test_a_campaign_needs_its_prompt_file_and_known_keys(tmp_path):
    from goldennoise.store import campaign as campaigns

    with pytest.raises(CampaignError, match="does not exist"):
        Service(tmp_path / "o").start(Campaign(prompts=str(tmp_path / "missing.txt")))
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[generation]\nsteps = 4\n')
    with pytest.raises(CampaignError, match="unknown key 'steps'"):
        campaigns.load(bad)
    bad.write_text('name = "x"\n[seeds]\nbatch_size = 0\n')
    with pytest.raises(CampaignError, match="batch_size"):
        campaigns.load(bad)


def test_one_worker_per_device_and_requests_use_them_at_once(tmp_path, campaign, monkeypatch):
    from goldennoise.generation import batch as generation

    service = started(tmp_path, campaign, name="o5", device_list=["cpu", "cpu"])  # two devices, as two GPUs
    assert len(service.runtime.workers) == 2
    real, used, both = generation.run_device, [], threading.Barrier(2, timeout=60)

    def spy(worker, *args, **kwargs):
        used.append(worker.key)
        both.wait()  # returns only when a second request runs on the other worker at the same time
        return real(worker, *args, **kwargs)

    monkeypatch.setattr(generation, "run_device", spy)
    threads = [threading.Thread(target=service.join, args=(Caller(n), n)) for n in ("ada", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(used) == sorted(w.key for w in service.runtime.workers)
    assert service.show(Caller("ada")).state == service.show(Caller("bob")).state == "batch"
    service.close_all()


def test_hostile_answer_values_are_refused_with_reasons(service):
    screen = service.join(A, "ada")
    for bad in (2**64, -1, 10**30, True, 1.5):
        with pytest.raises(UserError, match="visible_ms"):
            service.answer(A, "batch", screen.batch.batch_id, golden=[], visible_ms=bad)
    for golden in ("12", 1.5, [1.5], ["٣"], ["１２"], [True], ["9" * 40]):
        with pytest.raises(UserError, match="golden_seeds"):
            service.answer(A, "batch", screen.batch.batch_id, golden=golden)
    with pytest.raises(UserError, match="batch_id"):
        service.answer(A, "batch", [1], golden=[])
    with pytest.raises(UserError) as caught:
        service.show(A, "m" * 1_000_000)
    assert len(str(caught.value)) < 200  # a megabyte of input is not echoed
    assert kinds(service) == []


def test_a_saved_answer_whose_next_batch_fails_is_never_recorded_twice(service, monkeypatch):
    from goldennoise.errors import GenerationError

    screen = service.join(A, "ada")

    def broken(*args, **kwargs):
        raise GenerationError("The images could not be saved (disk full).")

    monkeypatch.setattr(service.batches, "shown", broken)
    done = service.answer(A, "batch", screen.batch.batch_id, golden=[])
    assert done.screen.state == "idle" and "Saved" in done.screen.notice and "could not be made" in done.screen.notice
    with pytest.raises(Refused, match="Already recorded"):  # the retry of the same answer
        service.answer(A, "batch", screen.batch.batch_id, golden=[])
    monkeypatch.undo()
    assert service.show(A).state == "batch"  # Try again
    assert kinds(service) == ["judgement"]


def test_a_fifth_tab_takes_the_oldest_holds_prompt_and_that_tab_moves_on(service):
    """One person holds at most 4 prompts; the tab whose prompt was taken cannot answer it, is told on its next
    renewal, and no prompt is ever on two of one person's tabs."""
    tabs = [Caller(f"hoard-{i}") for i in range(5)]
    screens = [service.join(t, "alice") for t in tabs]
    assert len({s.prompt.id for s in screens}) == 5
    with service.store.queue() as conn:
        holders = [queue.holder(conn, service.campaign.id, "batch", s.prompt.id, time.time()) for s in screens]
    assert holders[0] is None and holders[1:] == [t.connection for t in tabs[1:]]
    bob = service.join(Caller("bob"), "bob")
    assert bob.state == "batch" and bob.prompt.id not in {s.prompt.id for s in screens}  # the 6th prompt
    with pytest.raises(LeaseLost):
        service.answer(tabs[0], "batch", screens[0].batch.batch_id, golden=[])
    moved = service.show(tabs[0])
    assert moved.state == "done"  # nothing free: never the prompt of another of her tabs, nor bob's
    assert kinds(service) == []


def test_renewal_tells_a_tab_that_lost_its_prompt(service):
    tabs = [Caller(f"t{i}") for i in range(5)]
    first = [service.join(t, "alice") for t in tabs][0]
    changed = service.renew(tabs[0])
    assert changed["batch"].prompt.id != first.prompt.id and "released" in changed["batch"].notice


def test_requests_of_tabs_that_never_joined_register_nothing(service):
    for i in range(50):
        with pytest.raises(UserError, match="say who you are"):
            service.show(Caller(f"drive-by-{i}"))
    assert len(service.tabs) == 0


def test_one_annotators_judgement_counts_once(service):
    screen = service.join(A, "ada")
    original = service.answer(A, "batch", screen.batch.batch_id, golden=[]).record
    service.join(B, "Ada")  # one person, however the name is typed
    opened = [(tab, service.relabel(tab, original.record_id)) for tab in (A, B)]  # in two tabs at once
    for tab, relabel in opened:
        service.answer(tab, "batch", relabel.batch.batch_id, golden=[relabel.batch.seeds[0]])
    latest = [r for r in service.store.live() if identity(r.annotator) == "ada"][-1]
    service.join(C, "bob")
    for _ in range(3):  # three second opinions on ada's answer
        second = service.relabel(C, latest.record_id)
        bobs = service.answer(C, "batch", second.batch.batch_id, golden=[]).record
    counted = [r for r in service.store.live() if r.prompt.id == original.prompt.id]
    assert sorted(identity(r.annotator) for r in counted) == ["ada", "bob"]
    # ada opens bob's second opinion of her answer: she relabels her own answer, never adds a second one
    again = service.relabel(A, bobs.record_id)
    assert again.supersedes is not None and again.second_opinion_of is None
    service.answer(A, "batch", again.batch.batch_id, golden=[again.batch.seeds[1]])
    counted = [r for r in service.store.live() if r.prompt.id == original.prompt.id]
    assert sorted(identity(r.annotator) for r in counted) == ["ada", "bob"]
    assert [r.golden_seeds for r in counted if identity(r.annotator) == "ada"] == [[again.batch.seeds[1]]]


def test_names_typed_differently_are_one_annotator(service):
    screen = service.join(A, "ada")
    service.answer(A, "batch", screen.batch.batch_id, golden=[])
    for typed in ("Ada", "  ADA ", "ａｄａ"):  # case, spacing, full-width letters (NFKC)
        caller = Caller(f"tab-{typed}")
        service.join(caller, typed)
        assert service.progress(caller)["judged"] == 1
        assert [row["record_id"] for row in service.history(caller)["rows"]] == \
            [r.record_id for r in service.store.live()]
    assert service.annotator_of(Caller("tab-Ada")) == "Ada"  # shown as typed


def test_a_batch_judged_twice_by_one_annotator_counts_once_whoever_wrote_it(service):
    screen = service.join(A, "ada")
    first = service.answer(A, "batch", screen.batch.batch_id, golden=[]).record
    service.store.append(first.model_copy(update={"record_id": "f" * 32}))
    counted = [r.record_id for r in service.store.live() if r.batch_id == first.batch_id]
    assert counted == ["f" * 32]  # the later line of the same annotator and batch


@pytest.fixture(params=["sqlite", "postgresql"])
def on_both(request, tmp_path, campaign):
    """The service on either store (the answer's guard is one query in each dialect)."""
    url = None
    if request.param == "postgresql":
        from tests.pg import reset

        url = request.getfixturevalue("postgresql_url")
        reset(url)
    service = Service(tmp_path / "out", url, prefetch=False)
    service.start(campaign)
    yield service
    service.close_all()


def test_a_prompt_others_filled_while_this_tab_held_it_is_refused_not_judged_past_its_capacity(on_both):
    """A judgement written without a hold (an import, a script) can fill a prompt a tab holds; the tab's answer is
    then refused, and the prompt keeps one judgement (its capacity)."""
    service = on_both
    screen = service.join(A, "ada")
    mine = service.answer(A, "batch", screen.batch.batch_id, golden=[]).record
    _, back = service.undo(A)  # the batch is back on ada's screen, held by her tab
    service.store.append(mine.model_copy(update={"record_id": "e" * 32, "annotator": "bob"}))
    with pytest.raises(Refused, match="Others have already judged this prompt"):
        service.answer(A, "batch", back.batch.batch_id, golden=[])
    assert [r.annotator for r in service.store.live() if r.prompt.id == mine.prompt.id] == ["bob"]


def test_a_batch_answered_in_your_name_elsewhere_while_this_tab_held_it_is_refused(on_both):
    """Your judgement of the batch written meanwhile by another way in (an import, a script): the tab's answer is
    refused as already recorded, and the one written first stays the live one."""
    service = on_both
    screen = service.join(A, "ada")
    mine = service.answer(A, "batch", screen.batch.batch_id, golden=[]).record
    _, back = service.undo(A)
    service.store.append(mine.model_copy(update={"record_id": "d" * 32}))
    with pytest.raises(Refused, match="answered once; nothing more was recorded"):
        service.answer(A, "batch", back.batch.batch_id, golden=[back.batch.seeds[0]])
    assert [r.record_id for r in service.store.live() if r.prompt.id == mine.prompt.id] == ["d" * 32]


def test_campaigns_that_could_not_run_are_refused_at_start(tmp_path, campaign):
    for bad, field in ((dict(model="tiny-flux\n"), "model"), (dict(prompts=5), "prompts"),
                       (dict(scheduler="os.system"), "scheduler"), (dict(revision=["x"]), "revision")):
        with pytest.raises(CampaignError, match=field):
            replace(campaign, **bad).check()
    with pytest.raises(CampaignError, match="would pass 2\\^63-1"):
        Service(tmp_path / "o6", prefetch=False).start(replace(campaign, start_seed=2**63 - 1, batch_size=64))


def test_a_name_too_long_is_refused_not_cut():
    access = Access(local_only=True)
    assert access.identify(None, "  ada   lovelace ") == ("ada lovelace", True)
    with pytest.raises(UserError, match="1..64 characters"):
        access.identify(None, "x" * 500)


def test_blind_means_blind_and_the_clip_pick_is_an_explicit_recorded_option(tmp_path, campaign):
    blind = started(tmp_path, campaign, name="blind")
    screen = blind.join(A, "ada")
    done = blind.answer(A, "batch", screen.batch.batch_id, golden=[])
    assert "CLIP" not in done.message and done.record.feedback is None and done.record.shown_scores is False
    blind.close_all()
    told = started(tmp_path, replace(campaign, show_clip_pick_after=True), name="told")
    screen = told.join(A, "ada")
    done = told.answer(A, "batch", screen.batch.batch_id, golden=[])
    assert "CLIP would have picked" in done.message and done.record.feedback == "clip_pick"
    told.close_all()


def test_guidelines_are_part_of_the_campaign_and_of_every_record(tmp_path, campaign):
    guided = replace(campaign, guidelines="Golden: the digit is clear and centred.")
    service = started(tmp_path, guided, name="guided")
    screen = service.join(A, "ada")
    record = service.answer(A, "batch", screen.batch.batch_id, golden=[]).record
    assert record.guidelines_sha256 == guided.guidelines_sha256
    changed = replace(guided, guidelines="Golden: any readable digit.")
    assert service.switch(A, {"guidelines": changed.guidelines}).id != service.store.read().records[0].campaign
    service.close_all()


def test_a_second_replica_follows_a_switch_of_a_campaign_with_list_settings(tmp_path, campaign):
    """Two services on one store (replicas): a switch on one, made on a campaign whose list settings travel through
    the store's JSON (verifiers, annotators, guidelines), is followed by the other at its next request."""
    rich = replace(campaign, verifiers=("tiny-aesthetic",), annotators=("ada", "bob"), guidelines="Sharp digits.")
    one = started(tmp_path, rich, follow_seconds=0.0)
    two = started(tmp_path, rich, follow_seconds=0.0)
    try:
        assert one.settings()["id"] == two.settings()["id"]
        one.join(A, "ada")
        switched = one.switch(A, {"height": 128, "width": 128}).campaign
        assert two.settings()["id"] == switched.id  # followed, not "could not follow"
        assert two.campaign == switched and two.campaign.verifiers == ("tiny-aesthetic",)
        screen = two.join(B, "bob")
        assert screen.batch.campaign == switched.id and set(screen.batch.scores) == {"aesthetic"}
    finally:
        one.close_all()
        two.close_all()


def test_an_answer_and_the_next_prompt_are_one_write_transaction(service):
    """One fsync per answer: the record, the queue's state and the next prompt's hold commit together."""
    from sqlalchemy import event

    screen = service.join(A, "ada")
    service.batches.ensure(service.runtime.prompts.at(screen.prompt.index + 1))  # made ahead, as prefetching does
    writes = []

    def committed(conn):
        writes.append(bool(conn.info.get("write")))

    event.listen(service.store.engine, "commit", committed)
    try:
        done = service.answer(A, "batch", screen.batch.batch_id, golden=[screen.batch.seeds[0]])
    finally:
        event.remove(service.store.engine, "commit", committed)
    assert done.screen.state == "batch" and done.screen.prompt.index == screen.prompt.index + 1
    assert writes.count(True) == 1, writes
    with service.store.queue() as conn:  # the next prompt is held by this tab, in the store
        assert queue.holder(conn, service.runtime.id, "batch", done.screen.prompt.id, service.clock()) is not None


def test_the_next_screens_progress_comes_from_the_answers_own_transaction(service):
    """Drawing the screen after an answer needs no read of its own: the answer's transaction read the progress,
    this answer counted, the same as a read afterwards."""
    from sqlalchemy import event

    screen = service.join(A, "ada")
    done = service.answer(A, "batch", screen.batch.batch_id, golden=[screen.batch.seeds[0]])
    assert done.progress == service.progress(A) and done.progress["judged"] == 1
    reads = []

    def committed(conn):
        reads.append(conn)

    event.listen(service.store.engine, "commit", committed)
    try:
        drawn = service.display(A, "batch", done)
    finally:
        event.remove(service.store.engine, "commit", committed)
    assert reads == [] and drawn.progress == done.progress and drawn.screen == done.screen
    skipped = service.answer(A, "batch", done.screen.batch.batch_id, skip=True)
    assert skipped.progress == service.progress(A) and skipped.progress["skipped"] == 1
    service.switch(A, {"height": 128, "width": 128})  # a switch between an answer and its drawing
    after = service.display(A, "batch", skipped)
    assert after.progress == service.progress(A) and after.progress["judged"] == after.progress["skipped"] == 0


def test_an_answers_reply_asks_the_store_nothing_about_batches_when_they_are_on_their_way(tmp_path, campaign):
    """With prefetching on, the next batch is already in hand and the ones after it are read (or made) in the
    background: the answer's own thread runs no statement on the batches table."""
    import threading

    from sqlalchemy import event

    service = started(tmp_path, campaign, name="pre")
    service.prefetching = service.batches.prefetching = True
    try:
        for i in range(len(service.runtime.prompts)):
            service.batches.ensure(service.runtime.prompts.at(i))  # made ahead (`goldennoise generate`)
        made = service.batches.generation_calls
        screen = service.join(A, "ada")
        for i in (1, 2):  # what showing the first batch set on its way, read in the background
            on_its_way = service.batches.cache.get(service.runtime.prompts.at(i).id)
            if on_its_way is not None:
                on_its_way.result(timeout=60)
        asked, me = [], threading.current_thread()

        def statement(conn, cursor, sql, params, context, many):
            if threading.current_thread() is me and "batches" in sql:
                asked.append(sql.split("\n")[0])

        event.listen(service.store.engine, "before_cursor_execute", statement)
        try:
            done = service.answer(A, "batch", screen.batch.batch_id, golden=[])
        finally:
            event.remove(service.store.engine, "before_cursor_execute", statement)
        assert done.screen.prompt.index == 1 and asked == []
        following = service.batches.cache[service.runtime.prompts.at(3).id].result(timeout=60)
        assert following.source == "pregenerated" and service.batches.generation_calls == made
    finally:
        service.close_all()


def test_when_the_next_prompt_cannot_be_taken_with_the_answer_the_answer_stands(service, monkeypatch):
    screen = service.join(A, "ada")
    real = queue.take
    calls = []

    def fails_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("lease table trouble")
        return real(*args, **kwargs)

    monkeypatch.setattr(queue, "take", fails_once)
    done = service.answer(A, "batch", screen.batch.batch_id, golden=[screen.batch.seeds[0]])
    assert [r.kind for r in service.store.read().records] == ["judgement"]  # saved, savepoint undone alone
    assert len(calls) == 2 and done.screen.state == "batch"  # the next prompt was taken on its own afterwards
    assert done.screen.prompt.id != screen.prompt.id
