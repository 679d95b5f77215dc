"""Prompt assignment: different prompts per annotator, configurable overlap, leases."""

import pytest

from goldennoise import answers, session
from goldennoise.assignment import Assigner, is_overlap
from goldennoise.prompts import parse_prompts
from goldennoise.records import RecordStore

TEXTS = [f"prompt {i}" for i in range(200)]


def test_overlap_fraction_is_stable_and_close_to_asked():
    chosen = [t for t in TEXTS if is_overlap(t, 0.1)]
    assert 8 <= len(chosen) <= 35 and chosen == [t for t in TEXTS if is_overlap(t, 0.1)]
    assert not any(is_overlap(t, 0.0) for t in TEXTS) and all(is_overlap(t, 1.0) for t in TEXTS)


def test_claims_keep_annotators_apart_until_the_lease_ends():
    now = [0.0]
    assigner = Assigner(lease_seconds=60, clock=lambda: now[0])
    assert assigner.claim("a", "ann") and not assigner.claim("a", "bob")
    assert assigner.claim("a", "ann")  # the holder may renew
    now[0] = 61.0
    assert assigner.claim("a", "bob")  # a closed tab's claim ran out
    assigner.release("a", "bob")
    assert assigner.available("a", "cid")


def test_overlap_prompts_take_two_and_reuse_the_seeds():
    assigner = Assigner(overlap=1.0)
    assert assigner.claim("x", "ann") and assigner.claim("x", "bob") and not assigner.claim("x", "cid")
    assigner.answered("x", "ann", [5, 6, 7])
    assert assigner.seeds_for("x") == [5, 6, 7] and not assigner.available("x", "ann")
    with pytest.raises(ValueError, match="overlap must lie"):
        Assigner(overlap=1.5)


def test_two_sessions_get_different_prompts_and_overlap_shows_the_same_seeds(engine, small_settings):
    small_settings.seed_strategy = "random"
    store = RecordStore(engine.outputs)
    prompts = parse_prompts("\n".join(TEXTS[:6]).encode(), "six.txt")
    for overlap, expect_same in ((0.0, False), (1.0, True)):
        assigner = Assigner(overlap=overlap)
        ann, bob = session.new_session(prompts, "ann"), session.new_session(prompts, "bob")
        for state in (ann, bob):
            session.apply_settings(engine, state, small_settings, store, assigner)
        first = session.advance(ann, assigner)
        batch = session.generate(engine, ann, assigner=assigner)
        answers.submit(store, ann, batch.seeds[:1], assigner)
        second = session.advance(bob, assigner)
        assert (second.text == first.text) is expect_same
        if expect_same:  # bob judges the very seeds ann judged, so they compare seed by seed
            assert session.generate(engine, bob, assigner=assigner).seeds == batch.seeds
        store.path.unlink()
