"""What the server hands out, to whom; paths confined; text shown as text; sessions bound to their login; memory
bounded against strangers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import httpx
import pytest
from gradio_client import Client

from goldennoise.annotation.access import collect
from goldennoise.annotation.service import Caller
from goldennoise.generation import images
from goldennoise.store.campaign import Campaign
from goldennoise.ui import render
from tests.serve import make_service, serving

HOSTILE_IDS = ["/etc/passwd", "../../outside", "x" * 300, "..", "con", "a/b\\c"]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serving")
    rows = [{"id": pid, "prompt": f"hostile id {i} <img src=x onerror=alert(1)>"} for i, pid in enumerate(HOSTILE_IDS)]
    rows += [{"id": f"plain-{i}", "prompt": f"a plain prompt {i}"} for i in range(6)]
    (tmp / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    service = make_service(tmp / "out", Campaign(name="serve", model="tiny-flux", height=64, width=64,
                                                 prompts=str(tmp / "p.jsonl"), min_view_ms=0),
                           auth=["ada:pw-a", "bob:pw-b", "boss:pw-c:admin"])
    with serving(service) as url:
        yield url, service, tmp
    service.close_all()


def login(url: str, user: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=url, follow_redirects=True)
    assert client.post("login", data={"username": user, "password": password}).status_code == 200
    return client


def test_generated_images_stay_inside_images_whatever_the_prompt_id(app):
    url, service, tmp = app
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
    url, service, tmp = app
    bob = Client(url, auth=("bob", "pw-b"), verbose=False)
    screen = bob.predict(api_name="/start")["screen"]
    link = screen["images"][0]["image_url"]
    assert link.startswith("/gn-images/") and str(tmp) not in link
    session = login(url, "ada", "pw-a")
    assert session.get(link.lstrip("/")).status_code == 200
    for missing in ("gn-images/../goldennoise.db", "gn-images/no/such/image.png"):
        answer = session.get(missing)
        assert answer.status_code == 404 and str(tmp) not in answer.text and "/" not in answer.text  # names nothing
    assert httpx.get(url + link.lstrip("/")).status_code in (401, 403)  # still needs a login
    refused = session.post("gradio_api/upload", files={"files": ("x.txt", b"x" * 1000)})
    assert refused.status_code == 403
    boss = login(url, "boss", "pw-c")
    assert boss.post("gradio_api/upload", files={"files": ("x.txt", b"prompt\n")}).status_code == 200


def test_guessing_passwords_is_throttled_per_address_and_name():
    from goldennoise.ui.guard import CLIENT, MAX_PER_NAME, Logins

    clock = [0.0]
    logins = Logins((("carol", "right"),), clock=lambda: clock[0])
    CLIENT.set("10.0.0.1")
    assert all(not logins("carol", f"wrong{i}") for i in range(MAX_PER_NAME))
    assert not logins("carol", "right")  # locked for the window, from this address
    CLIENT.set("10.0.0.2")
    assert logins("carol", "right")  # a stranger's guesses do not lock carol out everywhere
    clock[0] += 301
    CLIENT.set("10.0.0.1")
    assert logins("carol", "right")


def test_unknown_oversized_login_names_do_not_grow_the_servers_memory(app):
    """The hostile tester's first break: 400 failed logins with 500 KB names raised RSS by 190 MiB, never freed."""
    _, service, tmp = app

    def rss() -> int:
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024
        return 0

    name = "x" * 500_000
    with serving(service) as url, httpx.Client(base_url=url) as client:  # its own server: this address gets throttled
        for i in range(40):  # warm the server's buffers
            client.post("login", data={"username": f"{i}{name}", "password": "no"})
        before = rss()
        for i in range(400):
            assert client.post("login", data={"username": f"{i:04d}{name}", "password": "no"}).status_code != 200
        grown = rss() - before
    assert grown < 40 * 2**20, f"RSS grew {grown / 2**20:.0f} MiB"


def test_the_failure_tables_have_a_fixed_size():
    from goldennoise.ui.guard import CLIENT, MAX_TRACKED, Logins

    logins = Logins((("carol", "right"),))
    for i in range(3 * MAX_TRACKED):
        CLIENT.set(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
        logins(f"stranger-{i}", "no")
    assert logins.tracked() <= 3 * MAX_TRACKED


def test_only_generated_images_are_served(app):
    url, service, tmp = app
    outputs = (tmp / "out").resolve()
    ada = login(url, "ada", "pw-a")
    image = next((outputs / "images").rglob("*.png"))
    assert ada.get(f"gradio_api/file={image}").status_code == 200
    campaign_json = next((outputs / "campaigns").rglob("campaign.json"))
    for secret in (outputs / "goldennoise.db", campaign_json, tmp / "p.jsonl"):
        assert ada.get(f"gradio_api/file={secret}").status_code in (403, 404), secret
    anonymous = httpx.Client(base_url=url)
    assert anonymous.get(f"gradio_api/file={image}").status_code in (401, 403)


def test_without_a_login_the_api_refuses(app):
    url, service, tmp = app
    response = httpx.post(f"{url}gradio_api/call/start", json={"data": ["eve"]})
    assert response.status_code in (401, 403)
    assert httpx.get(url).status_code == 200  # the server is up: the refusal is about the login
    with pytest.raises(ValueError, match="Could not fetch config|login|401|403"):
        Client(url, verbose=False)  # cannot even read the API without logging in


def test_a_session_is_its_logins_alone(app):
    """A leaked session hash does not let another login start, answer in or close that tab."""
    url, service, tmp = app
    ada = Client(url, auth=("ada", "pw-a"), verbose=False)
    screen = ada.predict(api_name="/start")["screen"]
    eve = Client(url, auth=("bob", "pw-b"), verbose=False)
    eve.session_hash = ada.session_hash  # bob sends ada's connection id
    for call in (dict(api_name="/start"), dict(api_name="/screen"), dict(api_name="/undo_last"),
                 dict(batch_id=screen["batch_id"], golden_seeds=[], api_name="/submit_selection")):
        with pytest.raises(Exception, match="another login"):
            eve.predict(**call)
    assert service.close(Caller(ada.session_hash, login="bob")) == 0  # an unload from bob's cookies closes nothing
    assert ada.predict(api_name="/screen")["batch_id"] == screen["batch_id"]  # ada's tab is untouched
    record = ada.predict(batch_id=screen["batch_id"], golden_seeds=[], api_name="/submit_selection")["record"]
    stored, _ = service.store.get(record["record_id"])
    assert stored.session_id != ada.session_hash  # records never carry the live session hash


def test_reachable_without_logins_warns():
    assert collect([], environ={}, host="127.0.0.1").warning() is None
    assert "WITHOUT logins" in collect([], environ={}, host="0.0.0.0").warning()
    assert "WITHOUT logins" in collect([], environ={}, share=True).warning()
    assert collect(["a:b"], environ={}, host="0.0.0.0").warning() is None


def test_text_is_text_in_every_screen():
    prompt = '<img src="http://example.invalid/x.png"> & <script>alert(1)</script>'
    for html in (render.message(prompt), render.idle("batch", prompt), render.done("batch", prompt, None)):
        assert "<img" not in html and "<script" not in html and "&lt;img" in html


def test_upload_is_parsed_then_deleted_and_metadata_is_stored_once(app, tmp_path):
    url, service, tmp = app
    upload = tmp_path / "upload.csv"
    upload.write_text("prompt,category,notes\n" + "".join(f"upload prompt {i},animals,{'n' * 6000}\n"
                                                          for i in range(3)))
    boss = Caller("boss-tab", login="boss")
    service.join(boss)
    runtime = service.upload_prompts(boss, upload)
    assert len(runtime.prompts) == 3
    stored = (tmp / "out" / "campaigns" / runtime.id / "prompts.jsonl").read_text()
    assert stored.count("n" * 6000) == 3  # metadata once, in the campaign's prompt list
    too_big = tmp_path / "big.csv"
    too_big.write_text("prompt,notes\nhuge," + "n" * 9000 + "\n")
    with pytest.raises(Exception, match="over 8 KiB.*|line 2"):
        service.upload_prompts(boss, too_big)
    ada = Client(url, auth=("ada", "pw-a"), verbose=False)
    screen = ada.predict(api_name="/start")["screen"]
    reply = ada.predict(batch_id=screen["batch_id"], golden_seeds=[], api_name="/submit_selection")
    record, _ = service.store.get(reply["record"]["record_id"])
    assert "n" * 100 not in json.dumps(record.model_dump(mode="json"))  # records refer to the metadata by hash


def test_a_non_administrator_cannot_upload_or_switch(app, tmp_path):
    url, service, tmp = app
    upload = tmp_path / "u.txt"
    upload.write_text("x\n")
    ada = Caller("ada-tab", login="ada")
    service.join(ada)
    before = service.campaign.id
    with pytest.raises(Exception, match="Only an administrator"):
        service.upload_prompts(ada, upload)
    client = Client(url, auth=("ada", "pw-a"), verbose=False)
    client.predict(api_name="/start")
    with pytest.raises(Exception, match="Only an administrator"):
        client.predict(model="tiny-sd", api_name="/init_model")
    assert service.campaign.id == before


def test_the_urllib_path_is_refused_too(app):
    url, service, tmp = app
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"{url}gradio_api/file={(tmp / 'out' / 'goldennoise.db').resolve()}")


def test_logins_come_from_passwords_or_hugging_face_oauth():
    from types import SimpleNamespace

    from goldennoise.ui.common import login_of

    assert login_of(SimpleNamespace(username="ada")) == "ada"
    session = {"oauth_info": {"userinfo": {"preferred_username": "hf-user"}}}
    raw = SimpleNamespace(scope={"session": session}, session=session)
    assert login_of(SimpleNamespace(username=None, request=raw)) == "hf-user"
    assert login_of(SimpleNamespace(username=None, request=SimpleNamespace(scope={}))) is None
