"""Finding 2: one request cannot monopolise the machine; too much memory is refused, the app keeps serving."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from goldennoise.annotation.runtime import Pool
from goldennoise.annotation.service import Caller, Service
from goldennoise.errors import GenerationError
from goldennoise.generation import budget as budgets
from goldennoise.store.campaign import Campaign
from tests.serve import free_port


def test_chunks_follow_free_memory_and_one_image_too_large_is_refused():
    b = budgets.Budget("cpu", bytes_per_megapixel=450e6)
    assert b.chunk_size(16, 1024, 1024, 4, free=2.0e9) == 2
    assert b.chunk_size(4, 256, 256, 4, free=2.0e9) == 4
    with pytest.raises(GenerationError, match=r"4096x4096 needs about 7.5 GB .* choose at most"):
        b.chunk_size(16, 4096, 4096, 4, free=2.0e9)
    b.observe(4, 1024, 1024, 4, seconds=8.0)  # 0.5 s per megapixel-step: 2 s per image
    assert b.chunk_size(16, 1024, 1024, 4, free=1e12) == 1  # a time slice of about 1.5 s


def test_a_big_request_does_not_hold_the_device_while_others_wait():
    pool = Pool(["only-worker"])
    order = []

    def job(name, chunks):
        for i in range(chunks):
            with pool.take():
                order.append(f"{name}{i}")
                time.sleep(0.05)

    big = threading.Thread(target=job, args=("big", 6))
    big.start()
    time.sleep(0.02)
    small = threading.Thread(target=job, args=("small", 1))
    small.start()
    big.join()
    small.join()
    assert order.index("small0") <= 2  # served between the big request's chunks, not after all six


def test_every_batch_is_made_in_chunks_the_budget_allows(tmp_path, monkeypatch):
    (tmp_path / "p.txt").write_text("x\ny\n")
    service = Service(tmp_path / "out", prefetch=False)
    runtime = service.start(Campaign(model="tiny-flux", height=64, width=64, prompts=str(tmp_path / "p.txt"),
                                     batch_size=4, min_view_ms=0))
    per_image = runtime.budget.per_image_bytes(64, 64)
    monkeypatch.setattr(budgets, "free_bytes", lambda device: per_image * 1.5 / budgets.USABLE_SHARE)
    screen = service.join(Caller("t"), "ada")
    assert service.batches.generation_calls == 4 and len(screen.batch.seeds) == 4  # one image per call
    service.close_all()


def _limited(gib: float):
    def limit():
        size = int(gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
    return limit


@pytest.mark.slow
@pytest.mark.parametrize("bytes_per_megapixel,words", [(None, "choose at most"), ("1000", "Out of memory")])
def test_a_memory_limited_app_answers_clearly_and_keeps_serving(tmp_path, bytes_per_megapixel, words):
    from gradio_client import Client

    (tmp_path / "p.txt").write_text("a\nb\n")
    port = free_port()
    env = {**os.environ}
    if bytes_per_megapixel:
        env["GOLDENNOISE_BYTES_PER_MEGAPIXEL"] = bytes_per_megapixel  # let the request reach the allocator
    log = open(tmp_path / "app.log", "w")
    app = subprocess.Popen([sys.executable, "-m", "goldennoise.cli", "app", "--model", "tiny-flux", "--prompts",
                            str(tmp_path / "p.txt"), "--outputs", str(tmp_path / "out"), "--port", str(port),
                            "--height", "4096", "--width", "4096", "--batch-size", "64", "--no-prefetch",
                            "--max-batch-seconds", "0"],  # the memory path, not the time limit, is tested here
                           env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_limited(5.0))
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                assert app.poll() is None, Path(tmp_path / "app.log").read_text()[-2000:]
                time.sleep(0.5)
        client = Client(url, verbose=False)
        for _ in range(2):
            with pytest.raises(Exception, match=words):
                client.predict(annotator="ada", api_name="/start")
        assert client.predict(api_name="/campaign")["height"] == 4096  # still serving
        assert app.poll() is None
    finally:
        app.terminate()
        app.wait(timeout=30)
        log.close()
