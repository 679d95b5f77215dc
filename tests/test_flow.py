"""The annotation loop without a browser: what gets recorded, for whom, and what is refused."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from goldennoise.annotation import flow
from goldennoise.annotation.engine import Engine
from goldennoise.annotation.tabs import Tabs
from goldennoise.errors import CampaignError, NotSaved, Refused, UserError
from goldennoise.store.campaign import Campaign
from goldennoise.store.live import live


@pytest.fixture
def campaign(tmp_path) -> Campaign:
    prompts = tmp_path / "p.txt"
    prompts.write_text("".join(f"prompt number {i}\n" for i in range(6)))
    return Campaign(name="flow", model="tiny-flux", height=64, width=64, prompts=str(prompts),
                    seed_strategy="sequential", start_seed=100, min_view_ms=0)


@pytest.fixture
def engine(tmp_path, campaign):
    engine = Engine(tmp_path / "out", prefetch=False)
    engine.start(campaign)
    yield engine
    engine.close()


def kinds(engine) -> list[str]:
    return [r.kind for r in engine.records.read().records]


def test_answers_name_their_batch_and_count_once(engine):
    tab = Tabs().get("t")
    first = flow.join(engine, tab, "ada")
    record, second = flow.answer(engine, tab, "batch", first.batch.batch_id, golden=[first.batch.seeds[2]])
    assert record.golden_seeds == [first.batch.seeds[2]] and record.batch_id == first.batch.batch_id
    assert second.prompt.text == "prompt number 1"
    for again in (dict(golden=[]), dict(skip=True)):  # a double Enter; skip-after-submit
        with pytest.raises(Refused, match="Already recorded"):
            flow.answer(engine, tab, "batch", first.batch.batch_id, **again)
    with pytest.raises(Refused, match="not on your screen"):
        flow.answer(engine, tab, "batch", "f" * 32, golden=[])
    with pytest.raises(UserError, match="not in the batch"):
        flow.answer(engine, tab, "batch", second.batch.batch_id, golden=[1])
    assert kinds(engine) == ["judgement"]


def test_minimum_viewing_time_is_enforced(engine):
    engine.active.campaign = replace(engine.active.campaign, min_view_ms=300)
    tab = Tabs().get("t")
    screen = flow.join(engine, tab, "ada")
    with pytest.raises(Refused, match="Too quick"):
        flow.answer(engine, tab, "batch", screen.batch.batch_id, golden=[])
    time.sleep(0.35)
    with pytest.raises(Refused, match="Too quick"):  # the browser says it was visible only 100 ms
        flow.answer(engine, tab, "batch", screen.batch.batch_id, golden=[], visible_ms=100)
    record, _ = flow.answer(engine, tab, "batch", screen.batch.batch_id, golden=[], visible_ms=320)
    assert record.timing["visible_ms"] == 320 and record.timing["elapsed_ms"] >= 300
    flow.answer(engine, tab, "batch", _.batch.batch_id, skip=True)  # a skip needs no viewing time


def test_tabs_never_share_a_prompt_and_closing_frees_it(engine):
    tabs = Tabs()
    a1, a2, b = tabs.get("a1"), tabs.get("a2"), tabs.get("b")
    seen = {flow.join(engine, a1, "ada").prompt.id, flow.join(engine, a2, "ada").prompt.id,
            flow.join(engine, b, "bob").prompt.id}
    assert len(seen) == 3  # the same annotator's two tabs included
    held = a1.views["batch"].screen.prompt.id
    flow.close(engine, a1)
    c = tabs.get("c")
    assert flow.join(engine, c, "cy").prompt.id == held  # freed at once


def test_a_silent_api_client_loses_its_lease(engine):
    clock = [0.0]
    engine.active.assigner.clock = lambda: clock[0]
    tabs = Tabs()
    held = flow.join(engine, tabs.get("quiet"), "ada").prompt.id
    clock[0] += engine.active.assigner.lease_seconds + 1
    assert flow.join(engine, tabs.get("late"), "bob").prompt.id == held


def test_undo_retracts_your_last_answer_and_restores_the_screen(engine):
    tab = Tabs().get("t")
    first = flow.join(engine, tab, "ada")
    flow.answer(engine, tab, "batch", first.batch.batch_id, golden=first.batch.seeds[:2])
    retraction, back = flow.undo(engine, tab)
    assert back.batch.batch_id == first.batch.batch_id and back.ticks == tuple(first.batch.seeds[:2])
    with pytest.raises(Refused, match="Nothing to undo"):
        flow.undo(engine, tab)
    record, nxt = flow.answer(engine, tab, "batch", back.batch.batch_id, golden=[])
    assert nxt.prompt.text == "prompt number 1"  # the queue goes on where it was
    assert [r.kind for r in live(engine.records.read().records)] == ["judgement"]
    assert kinds(engine) == ["judgement", "retraction", "judgement"]


def test_relabel_supersedes_your_own_and_seconds_someone_elses(engine):
    tabs = Tabs()
    ada, bob = tabs.get("ada"), tabs.get("bob")
    screen = flow.join(engine, ada, "ada")
    original, _ = flow.answer(engine, ada, "batch", screen.batch.batch_id, golden=[screen.batch.seeds[0]])
    flow.join(engine, bob, "bob")
    other = flow.relabel(engine, bob, original.record_id)
    assert other.ticks == () and other.second_opinion_of == original.record_id
    second, back = flow.answer(engine, bob, "batch", other.batch.batch_id, golden=[screen.batch.seeds[1]])
    assert back.prompt.id == bob.views["batch"].screen.prompt.id  # back to bob's queue prompt
    mine = flow.relabel(engine, ada, original.record_id)
    assert mine.ticks == (screen.batch.seeds[0],) and mine.supersedes == original.record_id
    relabelled, _ = flow.answer(engine, ada, "batch", mine.batch.batch_id, golden=[])
    counted = {r.record_id for r in live(engine.records.read().records)}
    assert counted == {second.record_id, relabelled.record_id}  # ada's old answer replaced, bob's kept
    assert second.samples[0].noise == original.samples[0].noise  # the same noise, re-judged


def test_a_failed_write_keeps_the_screen_for_a_retry(engine, monkeypatch):
    tab = Tabs().get("t")
    screen = flow.join(engine, tab, "ada")

    def full(record):
        raise NotSaved("Not saved: the disk holding the records is full.")

    monkeypatch.setattr(engine.records, "append", full)
    with pytest.raises(NotSaved):
        flow.answer(engine, tab, "batch", screen.batch.batch_id, golden=[screen.batch.seeds[0]])
    assert tab.views["batch"].screen is screen
    monkeypatch.undo()
    record, _ = flow.answer(engine, tab, "batch", screen.batch.batch_id, golden=[screen.batch.seeds[0]])
    assert record.golden_seeds == [screen.batch.seeds[0]]


def test_the_end_of_the_queue_is_a_done_screen(engine):
    tab = Tabs().get("t")
    screen = flow.join(engine, tab, "ada")
    while screen.state == "batch":
        _, screen = flow.answer(engine, tab, "batch", screen.batch.batch_id, skip=True)
    assert screen.state == "done"
    assert flow.progress(engine, tab) == {"total": 6, "judged": 0, "skipped": 6, "remaining_for_you": 0}


def test_overlap_prompts_show_both_annotators_the_same_batch(tmp_path, campaign):
    engine = Engine(tmp_path / "o2", prefetch=False)
    engine.start(replace(campaign, overlap=1.0, seed_strategy="random"))
    tabs = Tabs()
    a = flow.join(engine, tabs.get("a"), "ada")
    flow.answer(engine, tabs.get("a"), "batch", a.batch.batch_id, golden=[])
    calls = engine.generation_calls
    b = flow.join(engine, tabs.get("b"), "bob")
    assert b.batch.batch_id == a.batch.batch_id and b.batch.seeds == a.batch.seeds
    assert engine.generation_calls == calls  # not generated twice
    engine.close()


def test_switching_campaigns_moves_every_tab_without_errors(engine, campaign):
    tab = Tabs().get("t")
    old = flow.join(engine, tab, "ada")
    with pytest.raises(UserError):
        engine.switch(replace(campaign, model="nobody/no-such-model"))
    assert flow.show(engine, tab).batch.batch_id == old.batch.batch_id  # a failed switch changes nothing
    engine.switch(replace(campaign, height=128, width=128))
    with pytest.raises(Refused):  # the old batch is gone, politely
        flow.answer(engine, tab, "batch", old.batch.batch_id, golden=[])
    screen = flow.show(engine, tab)
    assert "switched" in screen.notice and screen.batch.parameters["height"] == 128
    record, _ = flow.answer(engine, tab, "batch", screen.batch.batch_id, golden=[])
    assert record.campaign == engine.active.id != old.batch.campaign


def test_huge_seeds_stay_exact(tmp_path, campaign):
    engine = Engine(tmp_path / "o3", prefetch=False)
    start = 2**62 + 12345
    engine.start(replace(campaign, start_seed=start))
    tab = Tabs().get("t")
    screen = flow.join(engine, tab, "ada")
    record, _ = flow.answer(engine, tab, "batch", screen.batch.batch_id, golden=[str(start + 1)])
    assert record.seeds[0] == start and record.golden_seeds == [start + 1]
    engine.close()


def test_prefiltering_records_exploration_and_propensities(tmp_path, campaign):
    engine = Engine(tmp_path / "o4", prefetch=False)
    engine.start(replace(campaign, batch_size=4, candidates=10, prefilter="clip", explore=1))
    tab = Tabs().get("t")
    screen = flow.join(engine, tab, "ada")
    record, _ = flow.answer(engine, tab, "batch", screen.batch.batch_id, golden=[])
    slots = sorted(s.slot for s in record.samples)
    assert slots == ["explore", "ranked", "ranked", "ranked"]
    assert {s.propensity for s in record.samples if s.slot == "explore"} == {1 / 7}
    assert len(record.prefilter.hidden) == 6 and all(h.propensity == 1 / 7 for h in record.prefilter.hidden)
    ranked = [s.rank_score for s in record.samples if s.slot == "ranked"]
    assert min(ranked) >= max(h.rank_score for h in record.prefilter.hidden)
    engine.close()


def test_a_campaign_needs_its_prompt_file_and_known_keys(tmp_path):
    from goldennoise.store import campaign as campaigns

    with pytest.raises(CampaignError, match="does not exist"):
        Engine(tmp_path / "o").start(Campaign(prompts=str(tmp_path / "missing.txt")))
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[generation]\nsteps = 4\n')
    with pytest.raises(CampaignError, match="unknown key 'steps'"):
        campaigns.load(bad)
    bad.write_text('name = "x"\n[seeds]\nbatch_size = 0\n')
    with pytest.raises(CampaignError, match="batch_size"):
        campaigns.load(bad)


def test_one_worker_per_device_and_chunks_spread_over_them(tmp_path, campaign):
    engine = Engine(tmp_path / "o5", prefetch=False, device_list=["cpu", "cpu"])  # two devices, as two GPUs
    active = engine.start(campaign)
    assert len(active.workers) == 2 and active.pool.size == 2
    used = []
    with active.pool.take() as first:
        with active.pool.take() as second:  # both at once: a second request does not wait for the first
            used = [first.index, second.index]
    assert sorted(used) == [0, 1]
    tabs = Tabs()
    a, b = flow.join(engine, tabs.get("a"), "ada"), flow.join(engine, tabs.get("b"), "bob")
    assert a.state == b.state == "batch"
    engine.close()


def test_hostile_answer_values_are_refused_with_reasons(engine):
    tab = Tabs().get("t")
    screen = flow.join(engine, tab, "ada")
    for bad in (2**64, -1, 10**30, True, 1.5):
        with pytest.raises(UserError, match="visible_ms"):
            flow.answer(engine, tab, "batch", screen.batch.batch_id, golden=[], visible_ms=bad)
    for golden in ("12", 1.5, [1.5], ["٣"], ["１２"], [True], ["9" * 40]):
        with pytest.raises(UserError, match="golden_seeds"):
            flow.answer(engine, tab, "batch", screen.batch.batch_id, golden=golden)
    with pytest.raises(UserError, match="batch_id"):
        flow.answer(engine, tab, "batch", [1], golden=[])
    with pytest.raises(UserError) as caught:
        flow.show(engine, tab, "m" * 1_000_000)
    assert len(str(caught.value)) < 200  # a megabyte of input is not echoed
    assert kinds(engine) == []


def test_a_saved_answer_whose_next_batch_fails_is_never_recorded_twice(engine, monkeypatch):
    from goldennoise.errors import GenerationError

    tab = Tabs().get("t")
    screen = flow.join(engine, tab, "ada")
    real = engine.batch

    def broken(*args, **kwargs):
        raise GenerationError("The images could not be saved (disk full).")

    monkeypatch.setattr(engine, "batch", broken)
    record, after = flow.answer(engine, tab, "batch", screen.batch.batch_id, golden=[])
    assert after.state == "idle" and "Saved" in after.notice and "could not be made" in after.notice
    with pytest.raises(Refused, match="Already recorded"):  # the retry of the same answer
        flow.answer(engine, tab, "batch", screen.batch.batch_id, golden=[])
    monkeypatch.setattr(engine, "batch", real)
    assert flow.show(engine, tab).state == "batch"  # Try again
    assert kinds(engine) == ["judgement"]


def test_one_annotator_cannot_hold_the_whole_queue(engine):
    from goldennoise.annotation.assignment import MAX_HELD

    tabs = Tabs()
    for i in range(6):
        flow.join(engine, tabs.get(f"hoard-{i}"), "alice")
    assert flow.join(engine, tabs.get("bob"), "bob").state == "batch"  # 6 prompts, alice holds at most 4
    held = sum(who == "alice" for leases in engine.active.assigner._leases.values() for who, _ in leases.values())
    assert held <= MAX_HELD


def test_requests_of_tabs_that_never_joined_register_nothing():
    tabs = Tabs()
    for i in range(50):
        tabs.get(f"drive-by-{i}", create=False)
    assert len(tabs) == 0


def test_one_annotators_judgement_counts_once(engine):
    tabs = Tabs()
    ada, ada2, bob = tabs.get("a1"), tabs.get("a2"), tabs.get("b")
    screen = flow.join(engine, ada, "ada")
    original, _ = flow.answer(engine, ada, "batch", screen.batch.batch_id, golden=[])
    flow.join(engine, ada2, "ada")
    opened = [(tab, flow.relabel(engine, tab, original.record_id)) for tab in (ada, ada2)]  # in two tabs at once
    for tab, relabel in opened:
        flow.answer(engine, tab, "batch", relabel.batch.batch_id, golden=[relabel.batch.seeds[0]])
    latest = [r for r in live(engine.records.read().records) if r.annotator == "ada"][-1]
    flow.join(engine, bob, "bob")
    for _ in range(3):  # three second opinions on ada's answer
        second = flow.relabel(engine, bob, latest.record_id)
        bobs, _ = flow.answer(engine, bob, "batch", second.batch.batch_id, golden=[])
    counted = [r for r in live(engine.records.read().records) if r.prompt.id == original.prompt.id]
    assert sorted(r.annotator for r in counted) == ["ada", "bob"]
    # ada opens bob's second opinion of her answer: she relabels her own answer, never adds a second one
    again = flow.relabel(engine, ada, bobs.record_id)
    assert again.supersedes is not None and again.second_opinion_of is None
    flow.answer(engine, ada, "batch", again.batch.batch_id, golden=[again.batch.seeds[1]])
    counted = [r for r in live(engine.records.read().records) if r.prompt.id == original.prompt.id]
    assert sorted(r.annotator for r in counted) == ["ada", "bob"]
    assert [r.golden_seeds for r in counted if r.annotator == "ada"] == [[again.batch.seeds[1]]]


def test_a_batch_judged_twice_by_one_annotator_counts_once_whoever_wrote_it(engine):
    tabs = Tabs()
    ada = tabs.get("ada")
    screen = flow.join(engine, ada, "ada")
    first, _ = flow.answer(engine, ada, "batch", screen.batch.batch_id, golden=[])
    engine.records.append(first.model_copy(update={"record_id": "f" * 32, "golden_seeds": [], "verdict": "none_golden"}))
    counted = [r.record_id for r in live(engine.records.read().records) if r.batch_id == first.batch_id]
    assert counted == ["f" * 32]  # the later line of the same annotator and batch


def test_campaigns_that_could_not_run_are_refused_at_start(tmp_path, campaign):
    for bad, field in ((dict(model="tiny-flux\n"), "model"), (dict(prompts=5), "prompts"),
                       (dict(scheduler="os.system"), "scheduler"), (dict(revision=["x"]), "revision")):
        with pytest.raises(CampaignError, match=field):
            replace(campaign, **bad).check()
    engine = Engine(tmp_path / "o6", prefetch=False)
    with pytest.raises(CampaignError, match="would pass 2\\^63-1"):
        engine.start(replace(campaign, start_seed=2**63 - 1, batch_size=64))


def test_a_name_too_long_is_refused_not_cut():
    from goldennoise.annotation.access import Access

    access = Access(local_only=True)
    assert access.identify(None, "  ada   lovelace ") == ("ada lovelace", True)
    with pytest.raises(UserError, match="1..64 characters"):
        access.identify(None, "x" * 500)
