"""A full annotation session through gradio_client against a launched app (loopback only)."""

import pytest
from gradio_client import Client

from goldennoise import session, ui
from goldennoise.records import RecordStore

SETTINGS = dict(model="tiny-flux", steps=4, guidance=0.0, scheduler="pipeline default", width=128, height=128,
                batch_size=4, seed_strategy="sequential", start_seed=500, max_sequence_length=64, use_clip=True)


def init(client, annotator="remote-ann", **changes):
    values = {**SETTINGS, **changes}
    return client.predict(*values.values(), annotator, api_name="/init_model")


@pytest.fixture
def app(engine, three_prompts):
    store = RecordStore(engine.outputs)
    demo = ui.build_demo(engine, store, three_prompts, session.default_settings("tiny-flux"))
    _, url, _ = ui.launch(demo, engine.outputs, prevent_thread_lock=True, quiet=True, server_name="127.0.0.1")
    yield url, store
    demo.close()


def test_named_endpoints(app):
    url, _ = app
    endpoints = Client(url, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/init_model", "/get_next_prompt", "/generate_batch", "/submit_selection", "/load_prompts"} <= set(endpoints)


def test_full_session_through_the_client(app, three_prompts):
    url, store = app
    client = Client(url, verbose=False)
    status, _ = init(client)
    assert status.startswith("Loaded tiny-flux")
    for index in range(3):
        text, progress = client.predict(api_name="/get_next_prompt")
        assert text == three_prompts.prompts[index].text and progress.startswith(f"Prompt {index + 1} of 3")
        gallery, choices, hint = client.predict(api_name="/generate_batch")
        seeds = [value for _, value in choices["choices"]]
        assert seeds == [500 + 4 * index + k for k in range(4)]
        assert [item["caption"].split(" · ")[0] for item in gallery] == [f"seed {s}" for s in seeds]
        assert all(item["image"].endswith(".png") for item in gallery)
        assert hint.startswith("Best by CLIP")
        message = client.predict(seeds[:2], api_name="/submit_selection")
        assert message.startswith("Saved: 2 golden, 2 bad")
    records = store.read().records
    assert [r.prompt["index"] for r in records] == [0, 1, 2]
    assert all(r.annotator == "remote-ann" and len(r.bad_seeds) == 2 for r in records)


def test_sessions_are_isolated(app):
    url, store = app
    first, second = Client(url, verbose=False), Client(url, verbose=False)
    init(first, "one")
    init(second, "two")
    first.predict(api_name="/get_next_prompt")
    first.predict(api_name="/get_next_prompt")
    text, progress = second.predict(api_name="/get_next_prompt")
    assert progress.startswith("Prompt 1 of 3")
    _, choices, _ = second.predict(api_name="/generate_batch")
    second.predict([choices["choices"][0][1]], api_name="/submit_selection")
    assert [r.annotator for r in store.read().records] == ["two"]


@pytest.mark.parametrize(
    "changes,message",
    [
        (dict(model="nobody/no-such-model"), "Could not load model 'nobody/no-such-model'"),
        (dict(model="not a model"), "neither a known model"),
        (dict(steps=0), "num_inference_steps must be"),
        (dict(width=100), "width must be a multiple of 16"),
        (dict(batch_size=0), "batch_size must lie in 1..64"),
        (dict(batch_size=10000), "batch_size must lie in 1..64"),
        (dict(start_seed=-3), "start_seed must keep seeds"),
        (dict(steps=600), "num_inference_steps must be a whole number in 1..500"),
    ],
)
def test_bad_settings_get_clear_errors_and_the_app_keeps_serving(app, changes, message):
    url, _ = app
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match=message):
        init(client, **changes)
    status, _ = init(client)  # still serving, and the model still loads
    assert status.startswith("Loaded tiny-flux")


def test_generate_before_load_is_refused(app):
    url, _ = app
    with pytest.raises(Exception, match="press Load first|choose settings and press Load"):
        Client(url, verbose=False).predict(api_name="/generate_batch")


def test_bad_prompt_file_upload_is_refused(app, tmp_path):
    from gradio_client import handle_file

    url, _ = app
    bad = tmp_path / "bad.jsonl"
    bad.write_text('"ok"\n{broken\n')
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match=r"bad\.jsonl, line 2: invalid JSON"):
        client.predict(handle_file(str(bad)), api_name="/load_prompts")
    good = tmp_path / "good.txt"
    good.write_text("first\nsecond\n")
    assert client.predict(handle_file(str(good)), api_name="/load_prompts").startswith("2 prompts from good.txt")
