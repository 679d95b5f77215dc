"""Every noise is re-made from its seed and checked before it is used.

Records made here are analysed again in a process whose CPU kernels differ
(`ATEN_CPU_CAPABILITY=default`: float32 randn then differs by ~1e-6, so hashes differ
and the fingerprint tolerance decides), and a record whose seed was edited is
excluded and named, never silently analysed with the wrong noise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from goldennoise.research import analysis
from goldennoise.store.records import RecordStore
from tests import factory, planted
from tests.planted import one_thread

ROOT = Path(__file__).resolve().parents[1]




@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verify")
    with one_thread():
        service = planted.make_dataset(tmp / "outputs", tmp, prompts=10, strategy="random", annotators=("ann",))
        service.close_all()
    return tmp / "outputs"


@pytest.mark.slow
def test_records_from_another_cpu_are_verified_within_tolerance(outputs):
    code = ("import torch; from goldennoise.research import analysis; "
            "print('capability', torch.backends.cpu.get_cpu_capability()); "
            f"print('\\n'.join(analysis.run({str(outputs)!r}, with_selector=False)['summary']))")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    if torch.backends.cpu.get_cpu_capability() == "DEFAULT":
        pytest.skip("this machine already runs the default kernels: nothing differs")
    assert "capability DEFAULT" in done.stdout
    assert "noises were verified within the fingerprint tolerance, not by hash" in done.stdout
    assert "excluded" not in done.stdout


def test_a_record_whose_seed_was_edited_is_excluded_and_named(outputs, tmp_path):
    edited_records = []

    def edit(records):
        record = records[3]
        old = record["samples"][0]["seed"]
        new = old + 1_000_003  # a valid seed, not the one whose noise the block describes
        record["seeds"] = [new if s == old else s for s in record["seeds"]]
        record["samples"][0]["seed"] = new
        record["golden_seeds"] = [new if s == old else s for s in record["golden_seeds"]]
        record["bad_seeds"] = [new if s == old else s for s in record["bad_seeds"]]
        edited_records.append(record)
        return records

    edited = factory.rewrite(outputs, tmp_path / "outputs", edit)
    record, new = edited_records[0], edited_records[0]["samples"][0]["seed"]
    lines = (edited / "records.jsonl").read_text().splitlines()
    read = RecordStore(edited).read()
    assert not read.warnings and len(read.records) == len(lines)  # still a schema-valid line
    result = analysis.run(edited, with_selector=False)
    named = [line for line in result["summary"] if record["record_id"] in line]
    assert named and "excluded from every analysis" in named[0] and f"seed {new}" in named[0]
    html = result["report"].read_text()
    judged = len([1 for line in lines if json.loads(line).get("kind") == "judgement"])
    assert f"<th>Judgements</th><td style='text-align:left'>{judged - 1} (" in html
    assert record["record_id"] in html


def test_a_record_whose_noise_was_re_read_in_another_shape_is_excluded_naming_the_field(outputs, tmp_path):
    """(1, 4, 8, 8) re-read as (1, 16, 4, 4): the same bytes, every hash re-made; only the configuration tells."""
    from goldennoise.generation import latents

    shape, forged_records = (1, 16, 4, 4), []

    def forge(records):
        record = records[3]
        seed = record["samples"][0]["seed"]
        forged = latents.provenance(seed, latents.initial_noise(seed, shape), latents.Layout("flux1", shape, 1.0),
                                    torch.float32)
        assert forged["sha256"] == record["samples"][0]["noise"]["sha256"]  # the draw's bytes do not change
        record["samples"][0]["noise"] = forged
        forged_records.append(record)
        return records

    edited = factory.rewrite(outputs, tmp_path / "outputs", forge)
    record = forged_records[0]
    assert not RecordStore(edited).read().warnings
    result = analysis.run(edited, with_selector=False)
    named = [line for line in result["summary"] if record["record_id"] in line]
    assert named and "excluded from every analysis" in named[0] and "'shape'" in named[0]
