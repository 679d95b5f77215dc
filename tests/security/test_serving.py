"""Findings 1, 3, 7, 8, 9: what the server hands out, to whom; paths confined; text shown as text."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import httpx
import pytest
from gradio_client import Client

from goldennoise.annotation.access import collect
from goldennoise.annotation.engine import Engine
from goldennoise.generation import images
from goldennoise.store.campaign import Campaign
from goldennoise.ui import render
from goldennoise.ui.handlers import Browser
from tests.serve import serving

HOSTILE_IDS = ["/etc/passwd", "../../outside", "x" * 300, "..", "con", "a/b\\c"]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serving")
    rows = [{"id": pid, "prompt": f"hostile id {i} <img src=x onerror=alert(1)>"} for i, pid in enumerate(HOSTILE_IDS)]
    rows += [{"id": f"plain-{i}", "prompt": f"a plain prompt {i}"} for i in range(6)]
    (tmp / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    engine = Engine(tmp / "out")
    engine.start(Campaign(name="serve", model="tiny-flux", height=64, width=64, prompts=str(tmp / "p.jsonl"),
                          min_view_ms=0))
    with serving(engine, auth=["ada:pw-a", "bob:pw-b", "boss:pw-c:admin"]) as (url, ctx):
        yield url, ctx, tmp
    engine.close()


def login(url: str, user: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=url, follow_redirects=True)
    assert client.post("login", data={"username": user, "password": password}).status_code == 200
    return client


def test_generated_images_stay_inside_images_whatever_the_prompt_id(app):
    url, ctx, tmp = app
    ada = Client(url, auth=("ada", "pw-a"), verbose=False)
    screen = ada.predict(api_name="/start")["screen"]
    outputs = (tmp / "out").resolve()
    for _ in range(len(HOSTILE_IDS) - 1):
        for image in screen["images"]:
            path = (outputs / image["image_path"]).resolve()
            assert (outputs / "images") in path.parents and path.is_file()
            assert all(len(part) <= images.MAX_NAME for part in image["image_path"].split("/"))
        screen = ada.predict(batch_id=screen["batch_id"], golden_seeds=[], api_name="/submit_selection")["next"]
    assert not (tmp.parent / "outside").exists()
    with pytest.raises(ValueError, match="outside"):
        images.confined(outputs, "../escape.png")


def test_image_urls_hide_the_outputs_folder_and_uploads_are_for_administrators(app):
    url, ctx, tmp = app
    bob = Client(url, auth=("bob", "pw-b"), verbose=False)
    screen = bob.predict(api_name="/start")["screen"]
    link = screen["images"][0]["image_url"]
    assert link.startswith("/gn-images/") and str(tmp) not in link
    session = login(url, "ada", "pw-a")
    assert session.get(link.lstrip("/")).status_code == 200
    assert session.get("gn-images/../records.jsonl").status_code in (403, 404)
    assert httpx.get(url + link.lstrip("/")).status_code in (401, 403)  # still needs a login
    refused = session.post("gradio_api/upload", files={"files": ("x.txt", b"x" * 1000)})
    assert refused.status_code == 403
    boss = login(url, "boss", "pw-c")
    assert boss.post("gradio_api/upload", files={"files": ("x.txt", b"prompt\n")}).status_code == 200


def test_guessing_passwords_is_throttled():
    from goldennoise.ui.guard import MAX_FAILURES, Logins

    clock = [0.0]
    logins = Logins((("carol", "right"),), clock=lambda: clock[0])
    assert all(not logins("carol", f"wrong{i}") for i in range(MAX_FAILURES))
    assert not logins("carol", "right")  # locked for the window
    clock[0] += 301
    assert logins("carol", "right")


def test_only_generated_images_are_served(app):
    url, ctx, tmp = app
    outputs = (tmp / "out").resolve()
    ada = login(url, "ada", "pw-a")
    image = next((outputs / "images").rglob("*.png"))
    assert ada.get(f"gradio_api/file={image}").status_code == 200
    campaign_json = next((outputs / "campaigns").rglob("campaign.json"))
    for secret in (outputs / "records.jsonl", campaign_json, outputs / "records.jsonl.lock", tmp / "p.jsonl"):
        assert ada.get(f"gradio_api/file={secret}").status_code in (403, 404), secret
    anonymous = httpx.Client(base_url=url)
    assert anonymous.get(f"gradio_api/file={image}").status_code in (401, 403)


def test_without_a_login_the_api_refuses(app):
    url, ctx, tmp = app
    response = httpx.post(f"{url}gradio_api/call/start", json={"data": ["eve"]})
    assert response.status_code in (401, 403)
    with pytest.raises(Exception):
        Client(url, verbose=False)  # cannot even read the API without logging in


def test_reachable_without_logins_warns():
    assert collect([], environ={}, host="127.0.0.1").warning() is None
    assert "WITHOUT logins" in collect([], environ={}, host="0.0.0.0").warning()
    assert "WITHOUT logins" in collect([], environ={}, share=True).warning()
    assert collect(["a:b"], environ={}, host="0.0.0.0").warning() is None


def test_text_is_text_in_every_screen():
    from types import SimpleNamespace

    prompt = '<img src="http://example.invalid/x.png"> & <script>alert(1)</script>'
    for html in (render.message(prompt), render.idle("batch", prompt), render.done("batch", prompt, None)):
        assert "<img" not in html and "<script" not in html and "&lt;img" in html
    record = SimpleNamespace(prompt=SimpleNamespace(text=prompt), kind="skip")
    assert "<img" not in render.message(render.saved_text(record, None))


def test_upload_is_parsed_then_deleted_and_metadata_is_stored_once(app, tmp_path):
    url, ctx, tmp = app
    from types import SimpleNamespace

    upload = tmp_path / "upload.csv"
    upload.write_text("prompt,category,notes\n" + "".join(f"upload prompt {i},animals,{'n' * 6000}\n"
                                                          for i in range(3)))
    browser = Browser(ctx)
    boss_tab = ctx.tabs.get("boss-tab")
    boss_tab.annotator, boss_tab.is_admin = "boss", True
    request = SimpleNamespace(session_hash="boss-tab", username="boss")
    progress = lambda *a, **k: None  # noqa: E731
    cleared, summary, note = browser.upload(str(upload), request, progress)[:3]
    assert cleared is None and not upload.exists()  # the raw upload is not kept
    assert "3 prompts loaded" in note
    active = ctx.engine.active
    stored = (tmp / "out" / "campaigns" / active.id / "prompts.jsonl").read_text()
    assert stored.count("n" * 6000) == 3  # metadata once, in the campaign's prompt list
    too_big = tmp_path / "big.csv"
    too_big.write_text("prompt,notes\nhuge," + "n" * 9000 + "\n")
    _, _, refused = browser.upload(str(too_big), request, progress)[:3]
    assert "over 8 KiB" in refused and "line 2" in refused and not too_big.exists()
    ada = Client(url, auth=("ada", "pw-a"), verbose=False)
    screen = ada.predict(api_name="/start")["screen"]
    reply = ada.predict(batch_id=screen["batch_id"], golden_seeds=[], api_name="/submit_selection")
    line = (tmp / "out" / "records.jsonl").read_text().splitlines()[-1]
    assert json.loads(line)["record_id"] == reply["record"]["record_id"]
    assert "n" * 100 not in line and len(line) < 20_000  # records refer to the metadata by hash


def test_a_non_administrator_cannot_upload_or_switch(app, tmp_path):
    url, ctx, tmp = app
    from types import SimpleNamespace

    upload = tmp_path / "u.txt"
    upload.write_text("x\n")
    tab = ctx.tabs.get("ada-tab")
    tab.annotator, tab.is_admin, tab.epoch = "ada", False, ctx.engine.epoch
    before = ctx.engine.active.id
    _, _, note = Browser(ctx).upload(str(upload), SimpleNamespace(session_hash="ada-tab", username="ada"),
                                     lambda *a, **k: None)[:3]
    assert "Only an administrator" in note and ctx.engine.active.id == before


def test_the_urllib_path_is_refused_too(app):
    url, ctx, tmp = app
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"{url}gradio_api/file={(tmp / 'out' / 'records.jsonl').resolve()}")


def test_logins_come_from_passwords_or_hugging_face_oauth():
    from types import SimpleNamespace

    from goldennoise.ui.context import login_of

    assert login_of(SimpleNamespace(username="ada")) == "ada"
    session = {"oauth_info": {"userinfo": {"preferred_username": "hf-user"}}}
    raw = SimpleNamespace(scope={"session": session}, session=session)
    assert login_of(SimpleNamespace(username=None, request=raw)) == "hf-user"
    assert login_of(SimpleNamespace(username=None, request=SimpleNamespace(scope={}))) is None
