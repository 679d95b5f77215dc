"""`goldennoise verify` and the exports' own checks: exact here, tolerance on other CPU kernels, a changed seed caught.

Records are made here (AVX2/AVX512 kernels); a subprocess with
`ATEN_CPU_CAPABILITY=default` (plain kernels, float32 draws differ by ~1e-6) must
accept them by the fingerprint tolerance, while a record whose seed was edited
(still schema-valid) is a mismatch for verify and left out by export.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from goldennoise.research import export, verify
from goldennoise.store.records import RecordStore
from tests.test_export import copy_outputs, corpus  # noqa: F401  (the shared outputs folder)

ROOT = Path(__file__).resolve().parent.parent


def edit_record(records: list, pick, change) -> str:
    """Change (in place) the first record that `pick(data)` accepts with `change(data)`; its record id."""
    for data in records:
        if pick(data):
            change(data)
            return data["record_id"]
    raise AssertionError("no record to edit")


def alter_seed(data: dict) -> None:
    """Give the first shown seed another value everywhere the record names it (the noise block stays)."""
    old = data["seeds"][0]
    new = old + 10**12

    def swap(seeds):
        return [new if s == old else s for s in seeds]

    data["seeds"], data["golden_seeds"], data["bad_seeds"] = (swap(data[k]) for k in ("seeds", "golden_seeds",
                                                                                        "bad_seeds"))
    data["samples"][0]["seed"] = new


def sd_judgement(taken: set):
    return lambda d: (d["kind"] == "judgement" and d["model"]["pipeline_class"] == "StableDiffusionPipeline"
                      and d["record_id"] not in taken)


@pytest.fixture(scope="module")
def tampered(corpus, tmp_path_factory):  # noqa: F811
    """A copy of the corpus: one seed changed, one record without noise, one image path outside (and odd timing)."""
    ids = {}

    def tamper(records):
        ids["changed"] = edit_record(records, sd_judgement(set()), alter_seed)
        ids["no_noise"] = edit_record(records, sd_judgement({ids["changed"]}),
                                      lambda d: [s.pop("noise") for s in d["samples"]])
        ids["outside"] = edit_record(records, lambda d: d["kind"] == "judgement" and
                                     d["campaign"].startswith("prefiltered"),
                                     lambda d: (d["samples"][0].update(image_path="../secret.png"),
                                                d["timing"].update(visible_ms="soon")))  # timing is a free dict
        return records

    outputs = copy_outputs(corpus, tmp_path_factory.mktemp("tampered") / "outputs", tamper)
    (outputs.parent / "secret.png").write_bytes(b"SECRET-BYTES-OUTSIDE-OUTPUTS")
    assert not RecordStore(outputs).read().warnings  # every edited line is still a valid record
    return {"outputs": outputs, **ids}


def expected_counts(outputs: Path) -> dict:
    counts = {}
    for record in RecordStore(outputs).read().records:
        hidden = record.prefilter.hidden if getattr(record, "prefilter", None) else []
        counts[record.campaign] = counts.get(record.campaign, 0) + len(getattr(record, "samples", [])) + len(hidden)
    return counts


def test_verify_counts_every_noise_exact_here(corpus, capsys):  # noqa: F811
    assert verify.main(corpus) == 0
    out = capsys.readouterr().out
    for campaign, n in expected_counts(corpus).items():
        assert f"{campaign}: {n} exact, 0 tolerance, 0 mismatch, 0 missing" in out
    prefiltered = next(c for c in expected_counts(corpus) if c.startswith("prefiltered"))
    assert expected_counts(corpus)[prefiltered] == 3 * 6  # hidden candidates are verified too


def test_changed_seed_is_a_mismatch_and_left_out_of_every_export(tampered, tmp_path, capsys):
    assert verify.main(tampered["outputs"]) == 1
    captured = capsys.readouterr()
    assert f"MISMATCH record {tampered['changed']}" in captured.err
    assert " 1 mismatch, 4 missing" in captured.out
    result = export.export(tampered["outputs"], tmp_path, export.FORMATS)
    assert [e["record_id"] for e in result["excluded"]] == [tampered["changed"]]
    assert any("left out" in w for w in result["warnings"])
    import pandas as pd

    for group in result["groups"]:
        table = pd.read_parquet(tmp_path / "table" / group / "samples.parquet")
        assert tampered["changed"] not in set(table["record_id"])
        hub = pd.read_parquet(next((tmp_path / "hub" / "data" / f"samples-{group}").glob("*.parquet")))
        assert tampered["changed"] not in set(hub["record_id"])
        if tampered["no_noise"] in set(hub["record_id"]):  # kept as a judgement, without provenance
            rows = hub[hub["record_id"] == tampered["no_noise"]]
            assert rows["noise_sha256"].isna().all() and (rows["noise_check"] == "missing").all()
            index = [json.loads(line) for line in open(tmp_path / "npz" / group / "index.jsonl")]
            assert tampered["no_noise"] not in {r["record_id"] for r in index}
        for line in open(tmp_path / "npnet" / group / "index.jsonl"):
            assert json.loads(line)["record_id"] != tampered["changed"]


def test_a_line_that_is_no_longer_a_record_fails_verification(corpus, tmp_path, capsys):  # noqa: F811
    outputs = copy_outputs(corpus, tmp_path / "outputs", lambda records: [
        *records[:1], {**records[1], "samples": [*records[1]["samples"][:2], {**records[1]["samples"][2], "seed": 5},
                                                  *records[1]["samples"][3:]]}, *records[2:]])  # seeds disagree
    assert len(RecordStore(outputs).read().warnings) == 1
    assert verify.main(outputs) == 1
    err = capsys.readouterr().err
    assert "UNREADABLE: 1 line(s)" in err and "line 2" in err


def test_a_repeated_record_is_counted_once_and_fails_verification(corpus, tmp_path, capsys):  # noqa: F811
    """A copied, merged or restored records file with a line twice: the judgement counts once everywhere, and
    verify says so and exits non-zero."""
    outputs = copy_outputs(corpus, tmp_path / "outputs", lambda records: records[:5] + [records[2]] + records[5:])
    read = RecordStore(outputs).read()
    assert len({r.record_id for r in read.records}) == len(read.records) == len(RecordStore(corpus).read().records)
    assert any("duplicate of record" in w and "line 6" in w for w in read.warnings)
    assert verify.main(outputs) == 1
    err = capsys.readouterr().err
    assert "DUPLICATE: 1 line(s)" in err
    assert verify.checked(outputs).samples["record_id"].value_counts().max() == 4  # never twice in an export


def test_image_outside_the_outputs_folder_is_not_embedded(tampered, tmp_path):
    result = export.export(tampered["outputs"], tmp_path, ["hub"])
    assert any("outside the outputs folder" in w for w in result["warnings"])
    for path in result["files"]:
        assert b"SECRET-BYTES-OUTSIDE-OUTPUTS" not in Path(path).read_bytes()


SCRIPT = """
import json, sys, torch
from goldennoise.research import export, verify
found = {"capability": torch.backends.cpu.get_cpu_capability()}
for outputs in sys.argv[1:]:
    rc = verify.main(outputs)
    result = export.export(outputs, outputs + "-export", ["npz", "hub"])
    excluded = [e["record_id"] for e in result["excluded"]]
    found[outputs] = {"rc": rc, "verified": result["verified"], "excluded": excluded}
print(json.dumps(found))
"""


def test_other_cpu_kernels_pass_by_tolerance_and_a_changed_seed_still_fails(corpus, tampered, tmp_path):  # noqa: F811
    clean = copy_outputs(corpus, tmp_path / "clean")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_CACHE": str(tmp_path / "cache")}
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(clean), str(tampered["outputs"])], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["capability"] == "DEFAULT"
    here = found[str(clean)]
    assert here["rc"] == 0 and here["excluded"] == []
    assert here["verified"].get("tolerance", 0) > 0 and "mismatch" not in here["verified"]
    assert "tolerance" in run.stdout
    there = found[str(tampered["outputs"])]
    assert there["rc"] == 1 and there["excluded"] == [tampered["changed"]]
    arrays = np.load(str(clean) + "-export/npz/" + os.listdir(str(clean) + "-export/npz")[0] + "/noises.npz")
    assert arrays["seeds"].dtype == np.int64


def test_group_names_are_plain_and_bounded():
    for campaign in ("../../etc", "/abs", "x" * 300, "Ünï cödé", "(none)", "planted-719b21b9d6"):
        name = verify.group_name(campaign, "bcb20c03cae1")
        assert len(name) <= 80 and all(c.isalnum() and c.isascii() or c == "-" for c in name)
    assert verify.group_name("planted-719b21b9d6", "bcb20c03cae1") == "planted-719b21b9d6-bcb20c03cae1"
    assert verify.group_name("../a", "x") != verify.group_name("a", "x")


# A block edited to fit another layout: its hashes re-made, so only the configuration can tell --------------------


def forged(block: dict, seed: int, family: str, shape, scale) -> dict:
    """The provenance block `seed` would have had under another family, shape or scale: every hash consistent."""
    import torch

    from goldennoise.generation import latents

    layout = latents.Layout(family, tuple(shape), scale)
    return latents.provenance(seed, latents.initial_noise(seed, tuple(shape)), layout,
                              getattr(torch, block["pipeline_dtype"]))


EDITS = {  # field -> (the model whose record is edited, the edit of a sample's noise block)
    "shape": ("tiny-sd", lambda b, s: forged(b, s, "sd", [1, 16, 4, 4], b["scale"])),  # same bytes as (1, 4, 8, 8)
    "latents_shape": ("tiny-sd", lambda b, s: {**b, "latents_shape": [1, 16, 4, 4]}),
    "family": ("tiny-sd", lambda b, s: forged(b, s, "sd3", b["shape"], 1.0)),
    "scale": ("tiny-sd", lambda b, s: forged(b, s, "sd", b["shape"], 1.0)),
    "packing": ("tiny-flux", lambda b, s: {**b, "packing": "none"}),
}


def _first_sample(outputs: Path, model: str) -> tuple[dict, dict]:
    """(record, its configuration) of the first live judgement made by `model`."""
    from goldennoise.research import dataset
    from goldennoise.store.live import live

    record = next(r for r in live(RecordStore(outputs).read().records)
                  if r.kind == "judgement" and r.model.id == model)
    return record, dataset.configuration(record)


@pytest.mark.parametrize("field", sorted(EDITS))
def test_an_edited_layout_is_refused_naming_the_field(corpus, tmp_path, capsys, field):  # noqa: F811
    from goldennoise.errors import NoiseMismatch
    from goldennoise.generation import latents

    model, edit = EDITS[field]
    record, config = _first_sample(corpus, model)
    seed, block = record.samples[0].seed, record.samples[0].noise.model_dump()
    clean = latents.verify(seed, block, configuration=config)
    assert clean.status == "exact" and clean.unchecked == ()  # everything checkable for the tiny models
    edited = edit(block, seed)
    if field in ("shape", "family"):  # a hash over raw bytes cannot see these: the old verification said exact
        assert latents._verify_hashes(seed, edited, None).status == "exact"
    with pytest.raises(NoiseMismatch) as refused:
        latents.verify(seed, edited, configuration=config)
    assert refused.value.field == field and repr(field) in str(refused.value)

    outputs = copy_outputs(corpus, tmp_path / "outputs", lambda records: [
        records, edit_record(records, lambda d: d["record_id"] == record.record_id,
                             lambda d: d["samples"][0].update(noise=edited))][0])
    assert not RecordStore(outputs).read().warnings  # still a valid record
    assert verify.main(outputs) == 1
    err = capsys.readouterr().err
    assert f"MISMATCH record {record.record_id} seed {seed}" in err and repr(field) in err
    result = export.export(outputs, tmp_path / "export", ["npz"])
    assert [e["record_id"] for e in result["excluded"]] == [record.record_id]
    assert repr(field) in result["excluded"][0]["reason"]


def test_viewing_times_of_a_number_column_are_each_cells_whole_milliseconds_or_none():
    """A million rows' viewing times are done at once (shared int objects); the oracle is the per-cell rule."""
    import pandas as pd

    columns = [pd.Series([1200, 5, 1200, 0], dtype="int32"), pd.Series([1.5, np.nan, -3.0, 7.0, 1e20, np.inf, 2.0]),
               pd.Series([True, 3, "soon", None, 4.0], dtype=object), pd.Series([], dtype=float)]
    for column in columns:
        made = verify._milliseconds_column(column)
        assert made.dtype == object and made.tolist() == [verify._milliseconds(v) for v in column]
    shared = verify._milliseconds_column(pd.Series([1200.0] * 3))
    assert shared[0] is shared[2]  # one object per distinct value
