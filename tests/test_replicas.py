"""Two app replicas on one PostgreSQL: annotators on both at once, a silent client, an administrator's switch.

Everything goes through the README's command (`goldennoise app --store postgresql://...`) and the API, as
a crowd campaign behind a load balancer would: every answer recorded exactly once, no prompt on two
clients' screens at once, a lease that expires on one replica frees the prompt on the other, and a
switch made on one replica reaches the other. Also the store's kill -9 durability on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from gradio_client import Client

from goldennoise.store.live import live
from goldennoise.store.records import RecordStore
from tests.pg import postgresql
from tests.serve import free_port
from tests.test_store import kill_nine

pytestmark = pytest.mark.slow
USERS = ["ada:pw", "bob:pw", "cy:pw", "dee:pw", "eve:pw", "boss:pw:admin"]


@pytest.fixture(scope="module")
def server():
    with postgresql() as url:
        yield url


def replica(tmp: Path, url: str, log: str):
    port = free_port()
    command = [sys.executable, "-m", "goldennoise.cli", "app", "--prompts", str(tmp / "prompts.txt"), "--outputs",
               str(tmp / "outputs"), "--store", url, "--port", str(port), "--model", "tiny-flux", "--height", "64",
               "--width", "64", "--steps", "2", "--min-view-ms", "0", "--lease-seconds", "6", "--no-prefetch",
               *[a for user in USERS for a in ("--auth", user)]]
    process = subprocess.Popen(command, cwd=tmp, stdout=open(tmp / log, "w"), stderr=subprocess.STDOUT,
                               env={**os.environ, "GOLDENNOISE_NO_BAR": "1"})
    address = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(address, timeout=2)
            return process, address
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, (tmp / log).read_text()[-3000:]
            time.sleep(0.3)


def test_two_replicas_share_the_queue_and_the_campaign(tmp_path, server):
    (tmp_path / "prompts.txt").write_text("".join(f"replicated prompt {i}\n" for i in range(24)))
    a_process, a = replica(tmp_path, server, "a.log")  # the first registers the campaign, the second finds it
    b_process, b = replica(tmp_path, server, "b.log")
    try:
        on_screen: dict[str, tuple] = {}  # client -> (campaign, prompt) it shows now
        acknowledged, clashes, errors = [], [], []
        lock = threading.Lock()

        def show(who: str, screen: dict) -> None:
            with lock:
                on_screen.pop(who, None)
                if screen.get("state") == "batch":
                    key = (screen["campaign"], screen["prompt"]["id"])
                    if key in on_screen.values():
                        clashes.append((who, key))
                    on_screen[who] = key

        # A silent client on replica A holds a prompt and stops; its lease (6 s) runs out on replica B too.
        silent = Client(a, auth=("eve", "pw"), verbose=False)
        held = silent.predict(api_name="/get_next_prompt")["prompt"]["id"]

        def annotator(name: str, address: str, rounds: int) -> None:
            try:
                client = Client(address, auth=(name, "pw"), verbose=False)
                screen = client.predict(api_name="/start")["screen"]
                for _ in range(rounds):
                    show(name, screen)
                    if screen["state"] != "batch":
                        time.sleep(0.5)
                        screen = client.predict(api_name="/screen")
                        continue
                    reply = client.predict(batch_id=screen["batch_id"], golden_seeds=screen["seeds"][:1],
                                           api_name="/submit_selection")
                    with lock:
                        acknowledged.append(reply["record"]["record_id"])
                    screen = reply["next"]
                show(name, {"state": "gone"})
            except Exception as error:  # noqa: BLE001 - counted: a refusal here is a failure of the test
                errors.append(f"{name}: {error}")

        threads = [threading.Thread(target=annotator, args=(name, address, 5))
                   for name, address in (("ada", a), ("bob", b), ("cy", a), ("dee", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and clashes == []

        store = RecordStore(tmp_path / "outputs", server)
        first = store.campaign_ids()[0]
        time.sleep(6.5)  # eve's lease has run out
        late = Client(b, auth=("ada", "pw"), verbose=False)
        late.predict(api_name="/start")
        taken = set()
        for _ in range(24):
            screen = late.predict(api_name="/screen")
            if screen["state"] != "batch":
                break
            taken.add(screen["prompt"]["id"])
            reply = late.predict(batch_id=screen["batch_id"], golden_seeds=[], api_name="/submit_selection")
            acknowledged.append(reply["record"]["record_id"])
        assert held in taken  # the silent client's prompt, freed on the other replica
        with pytest.raises(Exception, match="no longer held|not on your screen"):
            batch = silent.predict(api_name="/generate_batch")
            silent.predict(batch_id=batch["batch_id"], golden_seeds=[], api_name="/submit_selection")

        boss = Client(a, auth=("boss", "pw"), verbose=False)
        switched = boss.predict(height=128, width=128, api_name="/switch_campaign")["id"]
        assert switched != first
        watcher = Client(b, auth=("bob", "pw"), verbose=False)
        deadline = time.monotonic() + 15
        while watcher.predict(api_name="/campaign")["id"] != switched:  # replica B follows
            assert time.monotonic() < deadline, "replica B did not follow the switch"
            time.sleep(0.5)
        screen = watcher.predict(api_name="/start")["screen"]
        assert screen["campaign"] == switched
        reply = watcher.predict(batch_id=screen["batch_id"], golden_seeds=[], api_name="/submit_selection")
        acknowledged.append(reply["record"]["record_id"])
        assert reply["record"]["campaign"] == switched

        stored = [r.record_id for r in store.read().records if r.kind == "judgement"]
        assert sorted(stored) == sorted(acknowledged)  # every answer recorded, exactly once
        counted = [r for r in live(store.read().records) if r.kind == "judgement" and r.campaign == first]
        prompts = [r.prompt.id for r in counted]
        assert len(prompts) == len(set(prompts))  # overlap 0: one judgement per prompt, replicas or not
        store.close()
    finally:
        for process in (a_process, b_process):
            process.terminate()
            process.wait(timeout=30)


def test_acknowledged_answers_survive_kill_9_on_postgresql(tmp_path, server):
    acknowledged, stored = kill_nine(tmp_path, server, rounds=3)
    assert acknowledged and acknowledged <= set(stored) and len(stored) == len(set(stored))
