"""The API as a script meets it: keywords only, structured answers, refusals with reasons, per-user authority."""

from __future__ import annotations

import pytest
from gradio_client import Client

from goldennoise.annotation.engine import Engine
from goldennoise.store.campaign import Campaign
from tests.serve import serving


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    (tmp / "p.txt").write_text("".join(f"api prompt {i}\n" for i in range(8)))
    engine = Engine(tmp / "out")
    engine.start(Campaign(name="api", model="tiny-flux", height=64, width=64, prompts=str(tmp / "p.txt"),
                          seed_strategy="sequential", start_seed=500, min_view_ms=0, blind=False))
    with serving(engine, auth=["ada:pw-a", "bob:pw-b", "boss:pw-c:admin"]) as (url, ctx):
        yield url, ctx
    engine.close()


def client(url, user):
    return Client(url, auth=(user, f"pw-{user[0]}" if user != "boss" else "pw-c"), verbose=False)


def test_the_loop_by_keyword_with_structured_answers(app):
    url, _ = app
    c = client(url, "ada")
    params = {p["parameter_name"] for p in c.view_api(return_format="dict")["named_endpoints"]["/submit_selection"]
              ["parameters"]}
    assert {"batch_id", "golden_seeds", "visible_ms"} <= params
    started = c.predict(annotator="ignored, the login wins", api_name="/start")
    assert started["annotator"] == "ada" and started["administrator"] is False
    screen = started["screen"]
    assert screen["state"] == "batch" and len(screen["seeds"]) == 4 and len(screen["batch_id"]) == 32
    assert all(isinstance(score, float) for score in screen["clip_scores"])  # full precision (not blind here)
    reply = c.predict(batch_id=screen["batch_id"], golden_seeds=[screen["seeds"][1]], api_name="/submit_selection")
    record = reply["record"]
    assert record["golden_seeds"] == [screen["seeds"][1]] and len(record["record_id"]) == 32
    assert reply["next"]["batch_id"] != screen["batch_id"]
    row = c.predict(api_name="/history")[0]
    assert row["golden"] == [screen["seeds"][1]] and row["record_id"] == record["record_id"]  # seeds, as ints
    with pytest.raises(Exception, match="Already recorded"):  # skip after submit: refused, not recorded twice
        c.predict(batch_id=screen["batch_id"], api_name="/skip_prompt")
    undone = c.predict(api_name="/undo_last")
    assert undone["record"]["retracts"] == record["record_id"] and undone["screen"]["ticks"] == [screen["seeds"][1]]
    mine = c.predict(api_name="/history")
    assert mine == []  # the answer was undone


def test_two_clients_are_two_tabs(app):
    url, ctx = app
    a, b = client(url, "ada"), client(url, "bob")
    sa = a.predict(api_name="/start")["screen"]
    sb = b.predict(api_name="/start")["screen"]
    assert sa["prompt"]["id"] != sb["prompt"]["id"]
    with pytest.raises(Exception, match="not on your screen"):  # bob cannot answer ada's batch
        b.predict(batch_id=sa["batch_id"], golden_seeds=[], api_name="/submit_selection")


def test_authority_is_enforced_by_the_api(app):
    url, ctx = app
    ada, bob, boss = client(url, "ada"), client(url, "bob"), client(url, "boss")
    screen = ada.predict(api_name="/start")["screen"]
    record = ada.predict(batch_id=screen["batch_id"], golden_seeds=[], api_name="/submit_selection")["record"]
    bob.predict(api_name="/start")
    with pytest.raises(Exception, match="only an administrator"):
        bob.predict(everyone=True, api_name="/history")
    with pytest.raises(Exception, match="Only an administrator"):
        bob.predict(model="tiny-sd", api_name="/switch_campaign")
    second = bob.predict(record_id=record["record_id"], api_name="/relabel")
    assert second["second_opinion_of"] == record["record_id"] and second["ticks"] == []
    boss.predict(api_name="/start")
    everyone = boss.predict(everyone=True, api_name="/history")
    assert any(row["annotator"] == "ada" for row in everyone)



def test_an_administrators_switch_leaves_no_session_broken(app):
    url, ctx = app
    ada, bob, boss = client(url, "ada"), client(url, "bob"), client(url, "boss")
    old = ada.predict(api_name="/start")["screen"]
    bob.predict(api_name="/start")
    with pytest.raises(Exception, match="Only an administrator"):
        bob.predict(model="tiny-sd", api_name="/switch_campaign")
    boss.predict(api_name="/start")
    switched = boss.predict(model="tiny-sd", api_name="/switch_campaign")
    assert switched["id"] != old["campaign"]
    with pytest.raises(Exception, match="not on your screen"):  # the old batch: refused politely, not recorded
        ada.predict(batch_id=old["batch_id"], golden_seeds=[], api_name="/submit_selection")
    for c in (ada, bob):
        screen = c.predict(api_name="/screen")
        assert screen["state"] == "batch" and "switched" in screen["notice"] and screen["campaign"] == switched["id"]
        reply = c.predict(batch_id=screen["batch_id"], golden_seeds=[], api_name="/submit_selection")
        assert reply["record"]["campaign"] == switched["id"]
    assert ada.predict(api_name="/campaign")["model"] == "tiny-sd"
