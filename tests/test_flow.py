"""Skip, undo, resume, relabel, pairwise, prefetch and streaming, at the session level."""

import pytest

from goldennoise import answers, history, session
from goldennoise.prompts import parse_prompts
from goldennoise.records import RecordStore

FIVE = parse_prompts(b"one\ntwo\nthree\nfour\nfive\n", "five.txt")


@pytest.fixture
def loaded(engine, small_settings):
    store = RecordStore(engine.outputs)
    state = session.new_session(FIVE, annotator="kim")
    session.apply_settings(engine, state, small_settings, store)
    return engine, store, state


def shown(engine, state):
    return session.generate(engine, state)


def test_skip_undo_none_all_tell_the_story(loaded):
    engine, store, state = loaded
    batch = shown(engine, state)
    answers.submit(store, state, batch.seeds[:1])  # one: some golden
    session.advance(state)
    shown(engine, state)
    answers.skip(store, state)  # two: skipped
    session.advance(state)
    batch = shown(engine, state)
    answers.submit(store, state, [])  # three: none golden
    answers.undo(store, state)  # ...undone: three is back with its images
    assert session.current_prompt(state).text == "three" and state.batch.seeds == batch.seeds
    answers.submit(store, state, batch.seeds)  # three: all golden
    records = store.read().records
    assert [r.kind for r in records] == ["judgement", "skip", "judgement", "retraction", "judgement"]
    assert records[3].retracts == records[2].record_id
    now = history.live(records)
    assert [(r.prompt["text"], r.kind, r.verdict) for r in now] == [
        ("one", "judgement", "some_golden"), ("two", "skip", None), ("three", "judgement", "all_golden")]
    assert records[1].golden_seeds == [] and records[1].bad_seeds == [] and len(records[1].seeds) == 4
    assert session.counts(state) == {"total": 5, "judged": 2, "skipped": 1, "remaining": 2}


def test_resume_continues_at_first_unanswered_prompt(loaded, small_settings):
    engine, store, state = loaded
    for _ in range(2):
        session.advance(state)
        batch = shown(engine, state)
        answers.submit(store, state, batch.seeds[:2])
    session.advance(state)
    shown(engine, state)
    answers.skip(store, state)
    restarted = session.new_session(FIVE, annotator="kim")
    session.apply_settings(engine, restarted, small_settings, store)
    assert session.advance(restarted).text == "four"
    assert session.progress_text(restarted).startswith("Prompt 4 of 5 · 2 judged · 1 skipped · 2 remaining")
    other = session.new_session(FIVE, annotator="lee")  # another annotator starts at the beginning
    session.apply_settings(engine, other, small_settings, store)
    assert session.advance(other).text == "one"


def test_undo_of_skip_brings_prompt_back(loaded):
    engine, store, state = loaded
    shown(engine, state)
    answers.skip(store, state)
    answers.undo(store, state)
    assert session.current_prompt(state).text == "one" and "one" not in state.status
    with pytest.raises(ValueError, match="Nothing to undo"):
        answers.undo(store, state)


def test_relabel_supersedes_and_undo_restores(loaded):
    engine, store, state = loaded
    batch = shown(engine, state)
    first = answers.submit(store, state, batch.seeds[:1])
    session.advance(state)
    shown(engine, state)
    answers.reopen(state, first)
    assert state.restored_golden == batch.seeds[:1] and session.current_prompt(state).text == "one"
    second = answers.submit(store, state, batch.seeds[1:3])
    assert second.supersedes == first.record_id
    assert [r.record_id for r in history.live(store.read().records)] == [second.record_id]
    assert session.advance(state).text == "two"  # back to where the queue was
    answers.undo(store, state)
    assert [r.record_id for r in history.live(store.read().records)] == [first.record_id]


def test_pairwise_records_preference_with_noise(loaded):
    engine, store, state = loaded
    batch = session.generate(engine, state, mode=session.PAIRWISE)
    assert len(batch.seeds) == 2
    with pytest.raises(ValueError, match="made for the pairwise view"):
        answers.submit(store, state, [])
    record = answers.submit_pair(store, state, "right")
    assert record.kind == "pairwise" and record.preference == {"left": batch.seeds[0], "right": batch.seeds[1],
                                                               "winner": "right"}
    assert all(sample["noise"]["sha256"] for sample in record.samples)


def test_prefetch_is_used_and_stale_prefetch_discarded(loaded, small_settings):
    engine, store, state = loaded
    batch = shown(engine, state)
    assert not batch.prefetched
    answers.submit(store, state, [])
    session.advance(state)
    assert shown(engine, state).prefetched  # made while "one" was being judged
    answers.submit(store, state, [])
    changed = session.Settings(**{**small_settings.__dict__, "num_inference_steps": 3})
    session.apply_settings(engine, state, changed, store)  # settings changed: prefetch is stale
    session.advance(state)
    assert not shown(engine, state).prefetched


def test_slow_batches_stream_in_chunks_with_the_same_noise(loaded):
    engine, store, state = loaded
    whole = session.generate(engine, state)
    engine.seconds_per_image = 1.0  # pretend a slow GPU: 4 images would take 4 s
    assert engine.stream_chunk_size(4) == 1
    state.batch = None  # show prompt "one" again, from scratch
    parts = list(session.generate_stream(engine, state))
    assert [len(p.seeds) for p in parts] == [1, 2, 3, 4]
    assert parts[-1].noise == whole.noise and parts[-1].seeds == whole.seeds
