"""Bad input is harmless: a corpus of broken and hostile files, impossible values, OOM, no login."""

import json
from pathlib import Path

import pytest
import torch
from gradio_client import Client, handle_file

from goldennoise import access, push, session, ui
from goldennoise.prompts import PromptFileError, load_prompts
from goldennoise.records import RecordStore

CORPUS = Path(__file__).parent / "corpus"
REFUSED = {
    "binary.txt": "binary file", "latin1.csv": "line 2: not UTF-8", "nested.json": "nested too deeply",
    "nested_objects.jsonl": "line 2: JSON nested too deeply", "not_a_list.json": "expected a JSON list",
    "wrong_types.json": "item 0: \"prompt\" must be a string", "no_prompt_column.csv": "no 'prompt' column",
    "ragged.csv": "unclosed quote", "empty.txt": "no prompts found", "only_blank.jsonl": "no prompts found",
    "spreadsheet.xlsx": "unsupported file type", "truncated.json": "line 1 column 33: invalid JSON",
}
ACCEPTED = {"hostile.jsonl": 11, "utf16.txt": 2}


def test_corpus_is_complete():
    assert {p.name for p in CORPUS.iterdir()} == set(REFUSED) | set(ACCEPTED)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_broken_files_are_refused_with_a_reason(name):
    with pytest.raises(PromptFileError, match=REFUSED[name]):
        load_prompts(CORPUS / name)


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_odd_but_valid_files_load(name):
    assert len(load_prompts(CORPUS / name).prompts) == ACCEPTED[name]


@pytest.fixture
def app(engine):
    store = RecordStore(engine.outputs)
    demo = ui.build_demo(engine, store, load_prompts(CORPUS / "hostile.jsonl"), session.default_settings("tiny-flux"))
    _, url, _ = ui.launch(demo, engine.outputs, prevent_thread_lock=True, quiet=True, server_name="127.0.0.1")
    yield url, store, engine
    demo.close()


def init(client, **changes):
    values = dict(model="tiny-flux", steps=4, guidance=0.0, scheduler="pipeline default", width=128, height=128,
                  batch_size=2, seed_strategy="sequential", start_seed=0, max_sequence_length=64, use_clip=True)
    values.update(changes)
    return client.predict(*values.values(), "tester", api_name="/init_model")


def test_every_corpus_file_through_the_upload_endpoint(app):
    url, _, _ = app
    client = Client(url, verbose=False)
    for name, reason in REFUSED.items():
        if name == "spreadsheet.xlsx":
            continue  # refused by type in the browser's file picker; the parser test covers it
        with pytest.raises(Exception, match=reason.replace("(", r"\(").replace(")", r"\)")):
            client.predict(handle_file(str(CORPUS / name)), api_name="/load_prompts")
    assert client.predict(handle_file(str(CORPUS / "utf16.txt")), api_name="/load_prompts").startswith("2 prompts")


def test_oversized_upload_is_refused(app, tmp_path):
    url, _, _ = app
    big = tmp_path / "big.txt"
    big.write_bytes(b"a prompt\n" * (21 * 2**20 // 9))
    with pytest.raises(Exception, match="(?i)file.*(too large|size|exceed)|limit"):
        Client(url, verbose=False).predict(handle_file(str(big)), api_name="/load_prompts")


def test_hostile_prompts_run_through_the_whole_loop(app):
    url, store, engine = app
    client = Client(url, verbose=False)
    init(client)
    expected = [p.text for p in load_prompts(CORPUS / "hostile.jsonl").prompts]
    for text in expected:
        shown, _ = client.predict(api_name="/get_next_prompt")
        assert shown == text  # returned as plain text, unchanged
        _, choices, _ = client.predict(api_name="/generate_batch")
        client.predict([choices["choices"][0][1]], api_name="/submit_selection")
    records = store.read().records
    assert [r.prompt["text"] for r in records] == expected
    images_root = (engine.outputs / "images").resolve()
    for record in records:
        for sample in record.samples:
            path = (engine.outputs / sample["image_path"]).resolve()
            assert path.is_relative_to(images_root) and path.is_file()


@pytest.mark.parametrize(
    "changes,message",
    [(dict(start_seed=-1), "start_seed must keep seeds"), (dict(start_seed=2**64 + 5), "start_seed must keep seeds"),
     (dict(batch_size=10_000), "batch_size must lie"), (dict(width=1000), "multiple of 16"),
     (dict(steps=0), "num_inference_steps"), (dict(model="../../etc/passwd"), "Could not load model|neither")],
)
def test_impossible_values(app, changes, message):
    url, _, _ = app
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match=message):
        init(client, **changes)
    assert init(client)[0].startswith("Loaded tiny-flux")


class _OutOfMemoryPipe:
    """The tiny pipeline, except that calling it runs out of memory like a too-big batch would."""

    def __init__(self, pipe):
        self._pipe = pipe

    def __getattr__(self, name):
        return getattr(self._pipe, name)

    def __call__(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def test_out_of_memory_is_answered_and_the_app_goes_on(app):
    url, store, engine = app
    client = Client(url, verbose=False)
    init(client, batch_size=8)
    client.predict(api_name="/get_next_prompt")
    real = engine.model.pipe
    engine.model.pipe = _OutOfMemoryPipe(real)
    try:
        with pytest.raises(Exception, match="Out of memory generating 8 images at 128x128: try a batch of 4"):
            client.predict(api_name="/generate_batch")
    finally:
        engine.model.pipe = real
    _, choices, _ = client.predict(api_name="/generate_batch")
    client.predict([], api_name="/submit_selection")
    assert len(store.read().records) == 1


def test_auth_refuses_strangers_and_names_the_annotator(engine, three_prompts):
    store = RecordStore(engine.outputs)
    demo = ui.build_demo(engine, store, three_prompts, session.default_settings("tiny-flux"))
    _, url, _ = ui.launch(demo, engine.outputs, prevent_thread_lock=True, quiet=True, server_name="127.0.0.1",
                          auth=[("alice", "s3cret")])
    try:
        with pytest.raises(Exception):
            Client(url, verbose=False).predict(api_name="/get_next_prompt")
        with pytest.raises(Exception):
            Client(url, auth=("alice", "wrong"), verbose=False)
        client = Client(url, auth=("alice", "s3cret"), verbose=False)
        status, _ = init(client)  # the typed annotator name is "tester"
        assert "Annotator: **alice** (logged in)" in status
        client.predict(api_name="/get_next_prompt")
        client.predict(api_name="/generate_batch")
        client.predict([], api_name="/submit_selection")
        assert [r.annotator for r in store.read().records] == ["alice"]
    finally:
        demo.close()


def test_auth_sources(tmp_path):
    auth_file = tmp_path / "users.txt"
    auth_file.write_text("# annotators\nbob:pw1\n\ncarol:pw:with:colons\n")
    pairs = access.collect(["alice:pw0"], str(auth_file), {"GOLDENNOISE_AUTH": "dave:pw3, erin:pw4"})
    assert pairs == [("alice", "pw0"), ("bob", "pw1"), ("carol", "pw:with:colons"), ("dave", "pw3"), ("erin", "pw4")]
    with pytest.raises(access.AuthError, match="expected 'user:password'"):
        access.collect(["nopassword"])
    with pytest.raises(access.AuthError, match="given more than once"):
        access.collect(["a:1", "a:2"])


def test_model_loading_never_trusts_remote_code():
    import re

    source = "".join(p.read_text() for p in (Path(__file__).parent.parent / "goldennoise").glob("*.py"))
    assert not re.search(r"trust_remote_code\s*=|custom_pipeline\s*=", source)


def test_push_dry_run_lists_records_and_images(engine, tmp_path, capsys):
    outputs = tmp_path / "out"
    (outputs / "images" / "a-1").mkdir(parents=True)
    (outputs / "images" / "a-1" / "1.png").write_bytes(b"png")
    (outputs / "records.jsonl").write_text(json.dumps({"x": 1}) + "\n")
    (outputs / "images" / "a-1" / "x.png.tmp").write_bytes(b"partial")
    assert push.main([str(outputs), "me/golden-noise", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "2 files" in printed and "records.jsonl" in printed and ".tmp" not in printed
    assert push.main([str(tmp_path / "empty"), "me/x", "--dry-run"]) == 2


def test_share_without_auth_warns_at_start_and_in_the_page(tmp_path):
    """`app.py --share` with no auth: a loud log line and a banner; offline it keeps serving locally."""
    import subprocess
    import sys
    import urllib.request

    from tests.test_browser import free_port

    port = free_port()
    app = subprocess.Popen([sys.executable, str(Path(__file__).parent.parent / "app.py"), "--share", "--port", str(port),
                            "--outputs", str(tmp_path / "out")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    try:
        page = ""
        for _ in range(240):
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
                break
            except OSError:
                assert app.poll() is None
                import time
                time.sleep(0.5)
        assert "WITHOUT a password" in page
    finally:
        app.terminate()
        log, _ = app.communicate(timeout=30)
    assert "WARNING goldennoise: !!!" in log and "WITHOUT a password" in log
