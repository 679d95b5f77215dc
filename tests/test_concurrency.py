"""Several annotators at once, and writers killed mid-write: nothing acknowledged is lost."""

import json
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gradio_client import Client

from goldennoise import session, ui
from goldennoise.assignment import Assigner
from goldennoise.prompts import parse_prompts
from goldennoise.records import RecordStore

ROOT = Path(__file__).resolve().parent.parent
SESSIONS, SUBMITS = 4, 5


@pytest.fixture
def shared_app(engine):
    store = RecordStore(engine.outputs)
    prompts = parse_prompts("\n".join(f"shared prompt {i}" for i in range(SESSIONS * SUBMITS + 4)).encode(), "p.txt")
    demo = ui.build_demo(engine, store, prompts, session.default_settings("tiny-flux"), assigner=Assigner())
    _, url, _ = ui.launch(demo, engine.outputs, prevent_thread_lock=True, quiet=True, server_name="127.0.0.1")
    yield url, store
    demo.close()


def test_concurrent_sessions_each_submitting(shared_app):
    url, store = shared_app
    errors = []

    def annotate(name: str):
        try:
            client = Client(url, verbose=False)
            client.predict("tiny-flux", 4, 0.0, "pipeline default", 128, 128, 3, "random", 0, 64, True, name,
                           api_name="/init_model")
            for _ in range(SUBMITS):
                client.predict(api_name="/get_next_prompt")
                _, choices, _ = client.predict(api_name="/generate_batch")
                client.predict([choices["choices"][0][1]], api_name="/submit_selection")
        except Exception as error:  # reported below with the annotator's name
            errors.append(f"{name}: {error!r}")

    threads = [threading.Thread(target=annotate, args=(f"annotator-{n}",)) for n in range(SESSIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    result = store.read()
    assert result.warnings == [] and len(result.records) == SESSIONS * SUBMITS
    assert len({r.record_id for r in result.records}) == SESSIONS * SUBMITS
    by_annotator = {}
    for record in result.records:
        by_annotator.setdefault(record.annotator, []).append(record.prompt["text"])
    assert sorted(by_annotator) == [f"annotator-{n}" for n in range(SESSIONS)]
    assert all(len(texts) == SUBMITS for texts in by_annotator.values())
    prompts = [text for texts in by_annotator.values() for text in texts]
    assert len(set(prompts)) == len(prompts)  # no two annotators judged the same prompt


WRITER = """
import sys
sys.path.insert(0, {root!r})
from goldennoise.records import RecordStore
from tests.test_records import make_record
store = RecordStore({outputs!r})
while True:
    record = make_record(0, annotator={name!r})
    store.append(record)
    print(record.record_id, flush=True)  # acknowledged: appended and fsynced
"""

KILLS = 25


def test_writers_killed_mid_write_lose_nothing_acknowledged(tmp_path):
    rng = random.Random(7)
    acknowledged = set()
    for round_number in range(KILLS):
        writers = [subprocess.Popen([sys.executable, "-c", WRITER.format(root=str(ROOT), outputs=str(tmp_path),
                                                                      name=f"w{round_number}-{k}")],
                                    stdout=subprocess.PIPE, text=True) for k in range(2)]
        time.sleep(rng.uniform(0.3, 0.8))
        for writer in writers:
            writer.send_signal(signal.SIGKILL)
        for writer in writers:
            out, _ = writer.communicate(timeout=30)
            lines = out.splitlines()
            # The last line may be cut by the kill; only whole 32-hex ids were acknowledged.
            acknowledged |= {line for line in lines if len(line) == 32}
    result = RecordStore(tmp_path).read()
    found = {r.record_id for r in result.records}
    assert len(acknowledged) > KILLS * 10
    assert acknowledged <= found
    assert len(result.warnings) <= KILLS * 2  # at most one torn line per killed writer
    assert all("skipped" in warning for warning in result.warnings)
    raw = RecordStore(tmp_path).path.read_bytes().split(b"\n")
    whole = [line for line in raw if line]
    assert sum(1 for line in whole if _is_json(line)) == len(found)


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
        return True
    except ValueError:
        return False
