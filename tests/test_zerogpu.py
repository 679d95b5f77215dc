"""The ZeroGPU code path under a stand-in `spaces` that enforces ZeroGPU's rules (tests/fake_spaces)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = r"""
import json, sys
from pathlib import Path
import spaces
from goldennoise.generation import gpu
from goldennoise.annotation.service import Caller, Service
from goldennoise.store.campaign import Campaign
tmp = Path(sys.argv[1])
(tmp / "p.txt").write_text("one\ntwo\nthree\nfour\n")
service = Service(tmp / "out")  # models load here, in the main thread
service.start(Campaign(model="tiny-flux", height=64, width=64, prompts=str(tmp / "p.txt"), min_view_ms=0))
for name in ("a", "b"):
    screen = service.join(Caller(name), name)
    service.answer(Caller(name), "batch", screen.batch.batch_id, golden=[])
print(json.dumps({"zero_gpu": gpu.zero_gpu(), "prefetching": service.prefetching, "calls": spaces.CALLS,
                  "records": len(service.store.read().records)}))
"""


def test_zero_gpu_rules_are_kept(tmp_path):
    env = {**os.environ, "SPACES_ZERO_GPU": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "fake_spaces"), str(ROOT)])}
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["zero_gpu"] is True and report["prefetching"] is False  # no speculative GPU work
    calls = report["calls"]
    assert len(calls) == 4 and report["records"] == 2  # every batch went through the GPU function
    assert all(c["bytes_in"] < 4_000 for c in calls)  # small arguments: no pipeline pickled per call
    assert all(c["thread"] == "MainThread" for c in calls)  # from the request, never from a background thread
    assert all(15 <= c["duration"] <= 120 for c in calls)  # a duration computed from the batch
