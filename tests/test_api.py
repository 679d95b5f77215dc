"""The API as a script meets it: keywords only, structured answers, refusals with reasons, per-user authority, and
the design's four endpoints (init, next prompt, generate, submit) labelling a campaign end to end."""

from __future__ import annotations

import pytest
from gradio_client import Client

from goldennoise.store.campaign import Campaign
from tests.serve import make_service, serving


def _app(tmp):
    (tmp / "p.txt").write_text("".join(f"api prompt {i}\n" for i in range(8)))
    service = make_service(tmp / "out", Campaign(name="api", model="tiny-flux", height=64, width=64,
                                                 prompts=str(tmp / "p.txt"), seed_strategy="sequential",
                                                 start_seed=500, min_view_ms=0, blind=False),
                           auth=["ada:pw-a", "bob:pw-b", "boss:pw-c:admin", "cy:pw-y"])
    with serving(service) as url:
        yield url, service
    service.close_all()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """One app for the tests that leave prompts for the others."""
    yield from _app(tmp_path_factory.mktemp("api"))


@pytest.fixture
def own_app(tmp_path):
    """An app of the test's own (it labels everything, or switches the campaign)."""
    yield from _app(tmp_path)


def client(url, user):
    return Client(url, auth=(user, {"boss": "pw-c", "cy": "pw-y"}.get(user, f"pw-{user[0]}")), verbose=False)


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
    assert reply["next"]["batch_id"] != screen["batch_id"] and reply["message"].startswith("Saved")
    row = c.predict(api_name="/history")["rows"][0]
    assert row["golden"] == [screen["seeds"][1]] and row["record_id"] == record["record_id"]  # seeds, as ints
    with pytest.raises(Exception, match="Already recorded"):  # skip after submit: refused, not recorded twice
        c.predict(batch_id=screen["batch_id"], api_name="/skip_prompt")
    undone = c.predict(api_name="/undo_last")
    assert undone["record"]["retracts"] == record["record_id"] and undone["screen"]["ticks"] == [screen["seeds"][1]]
    assert c.predict(api_name="/history")["rows"] == []  # the answer was undone


def test_the_designs_four_endpoints_label_a_campaign_end_to_end(own_app):
    """init_model -> (get_next_prompt -> generate_batch -> submit_selection) repeated, as the design names them."""
    url, service = own_app
    boss, cy = client(url, "boss"), client(url, "cy")
    loaded = boss.predict(model="tiny-flux", num_inference_steps=2, height=64, width=64, api_name="/init_model")
    assert loaded["settings"]["num_inference_steps"] == 2 and loaded["prompts"] == 8
    labelled = set()
    for _ in range(20):
        held = cy.predict(api_name="/get_next_prompt")  # joins as its login on the first call
        if held["state"] == "done":
            break
        assert held["state"] in ("held", "batch") and held["campaign"] == loaded["id"]
        batch = cy.predict(api_name="/generate_batch")
        assert batch["prompt"] == held["prompt"] and len(batch["noise"]) == len(batch["seeds"])
        assert all(n["sha256"] and n["family"] == "flux1" for n in batch["noise"])  # provenance of every seed
        assert batch["parameters"]["num_inference_steps"] == 2
        reply = cy.predict(batch_id=batch["batch_id"], golden_seeds=batch["seeds"][:1], api_name="/submit_selection")
        labelled.add(reply["record"]["prompt_id"])
    assert held["state"] == "done" and len(labelled) == 8
    mine = [r for r in service.store.live(loaded["id"]) if r.annotator == "cy"]
    assert {r.prompt.id for r in mine} == labelled and len(mine) == len(labelled) > 0
    with pytest.raises(Exception, match="Only an administrator may generate"):
        cy.predict(prompt="my own prompt", seeds=[1, 2], api_name="/generate_batch")
    boss.predict(api_name="/start")
    made = boss.predict(prompt="an administrator's prompt", seeds=[7, 2**40],
                        parameters={"num_inference_steps": 1}, api_name="/generate_batch")
    assert made["seeds"] == [7, 2**40] and made["parameters"]["num_inference_steps"] == 1
    reply = boss.predict(batch_id=made["batch_id"], golden_seeds=[2**40], api_name="/submit_selection")
    assert reply["record"]["golden_seeds"] == [2**40]
    with pytest.raises(Exception, match="num_inference_steps: must be"):
        boss.predict(prompt="x", seeds=[1], parameters={"num_inference_steps": 10_000}, api_name="/generate_batch")


def test_two_clients_are_two_tabs(app):
    url, _ = app
    a, b = client(url, "ada"), client(url, "bob")
    sa = a.predict(api_name="/start")["screen"]
    sb = b.predict(api_name="/start")["screen"]
    assert sa["prompt"]["id"] != sb["prompt"]["id"]
    with pytest.raises(Exception, match="not on your screen"):  # bob cannot answer ada's batch
        b.predict(batch_id=sa["batch_id"], golden_seeds=[], api_name="/submit_selection")


def test_authority_is_enforced_by_the_api(app):
    url, _ = app
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
    everyone = boss.predict(everyone=True, api_name="/history")["rows"]
    assert any(row["annotator"] == "ada" for row in everyone)


def test_an_administrators_switch_leaves_no_session_broken(own_app):
    url, _ = own_app
    ada, bob, boss = client(url, "ada"), client(url, "bob"), client(url, "boss")
    old = ada.predict(api_name="/start")["screen"]
    bob.predict(api_name="/start")
    boss.predict(api_name="/start")
    switched = boss.predict(model="tiny-sd", api_name="/switch_campaign")
    assert switched["id"] != old["campaign"] and switched["settings"]["guidance_scale"] == 5.0  # tiny-sd's default
    with pytest.raises(Exception, match="not on your screen"):  # the old batch: refused politely, not recorded
        ada.predict(batch_id=old["batch_id"], golden_seeds=[], api_name="/submit_selection")
    for c in (ada, bob):
        screen = c.predict(api_name="/screen")
        assert screen["state"] == "batch" and "switched" in screen["notice"] and screen["campaign"] == switched["id"]
        reply = c.predict(batch_id=screen["batch_id"], golden_seeds=[], api_name="/submit_selection")
        assert reply["record"]["campaign"] == switched["id"]
    assert ada.predict(api_name="/campaign")["model"] == "tiny-sd"


def test_annotators_of_a_campaign_with_a_noise_source_are_not_told_which_candidates_it_made(tmp_path):
    (tmp_path / "p.txt").write_text("".join(f"a handwritten {d}\n" for d in range(4)))
    service = make_service(tmp_path / "out", Campaign(name="blind-noise", model="digits", prompts=str(tmp_path / "p.txt"),
                                                      min_view_ms=0, noise_source="redenoise", noise_share=0.5),
                           auth=["ada:pw-a", "boss:pw-c:admin"])
    try:
        with serving(service) as url:
            ada, boss = client(url, "ada"), client(url, "boss")
            ada.predict(api_name="/start")
            made = ada.predict(api_name="/generate_batch")
            assert len(made["seeds"]) == 4 and "noise" not in made and made["parameters"]
            assert not any(k.startswith("noise") for k in ada.predict(api_name="/campaign"))
            boss.predict(api_name="/start")
            blocks = boss.predict(api_name="/generate_batch")["noise"]
            assert sum(1 for b in blocks if b.get("source")) == 2  # administrators see the provenance
            settings = boss.predict(api_name="/campaign")
            assert settings["noise_source"] == "redenoise" and settings["noise_share"] == 0.5
    finally:
        service.close_all()


def test_the_queue_does_not_summarise_its_events_after_each_one(tmp_path, monkeypatch):
    """Gradio 6's queue builds a pandas summary of up to 10,000 past events after every event (2-11 ms of the
    interpreter while the browser fetches the next images). The app keeps it to a small window, computed rarely."""
    import pandas as pd

    from goldennoise import ui

    for name in ui.layout.QUEUE_ANALYTICS:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "p.txt").write_text("a prompt\n")
    service = make_service(tmp_path / "out", Campaign(name="q", model="tiny-flux", height=64, width=64,
                                                      prompts=str(tmp_path / "p.txt")))
    try:
        queue = ui.build_demo(service)._queue
        built = []
        monkeypatch.setattr(pd, "DataFrame", lambda *a, **k: built.append(1))
        events = [{"time": 0.0, "status": "success", "process_time": 0.01, "function": "act_batch",
                   "session_hash": "s"}] * 100
        for _ in range(500):  # as the queue does after each finished event
            queue.events_recorded += 1
            queue.compute_analytics_summary(events)
        assert built == [] and queue.ANALYTICS_MAX_EVENTS <= 100
    finally:
        service.close_all()


def test_the_endpoints_keep_their_plain_names_and_their_placeholders_come_after_the_page(tmp_path):
    """The browser finds a component by walking the page's tree in order, on every update of an answer; the API's
    parameter placeholders (one hidden component each) sit after everything the page shows, not ahead of it."""
    from goldennoise import ui

    (tmp_path / "p.txt").write_text("a prompt\n")
    service = make_service(tmp_path / "out", Campaign(name="q", model="tiny-flux", height=64, width=64,
                                                      prompts=str(tmp_path / "p.txt")))
    try:
        demo = ui.build_demo(service)
        config = demo.get_config_file()
        kinds = {c["id"]: c["type"] for c in config["components"]}
        order = []

        def walk(node):
            order.append(kinds.get(node["id"]))
            for child in node.get("children") or []:
                walk(child)

        walk(config["layout"])
        placeholders = [i for i, kind in enumerate(order) if kind == "api"]
        shown = [i for i, kind in enumerate(order) if kind not in ("api", "column", None)]
        assert len(placeholders) >= 20 and max(shown) < min(placeholders)
        public = {f.api_name for f in demo.fns.values() if f.api_visibility != "private"}
        assert {"start", "history", "init_model", "get_next_prompt", "generate_batch", "submit_selection",
                "undo_last", "relabel"} <= public
    finally:
        service.close_all()
