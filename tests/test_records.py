"""Records round-trip through JSON Lines; the store survives truncation and concurrent appends."""

import json
import threading

from goldennoise.records import Record, RecordStore, new_record_id, utc_now


def make_record(index: int = 0, annotator: str = "ann") -> Record:
    return Record(
        record_id=new_record_id(),
        created_at=utc_now(),
        annotator=annotator,
        prompt={"text": f"prompt «{index}»", "id": f"p{index}", "index": index, "source": "x.txt", "metadata": {}},
        model={"id": "tiny-flux", "revision": "sha256:0", "dtype": "float32", "pipeline_class": "FluxPipeline"},
        parameters={"num_inference_steps": 4, "guidance_scale": 0.0, "height": 128, "width": 128,
                    "max_sequence_length": 64, "scheduler": None},
        seeds=[1, 2, 3],
        golden_seeds=[2],
        bad_seeds=[1, 3],
        samples=[{"seed": s, "golden": s == 2, "clip_score": 1.5 * s, "image_path": f"images/x/{s}.png",
                  "noise": {"generator": "cpu", "dtype": "float32", "shape": [1, 4, 16, 16], "sha256": "ab"}}
                 for s in (1, 2, 3)],
    )


def test_round_trip(tmp_path):
    store = RecordStore(tmp_path)
    written = [make_record(i) for i in range(3)]
    for record in written:
        store.append(record)
    result = store.read()
    assert result.warnings == [] and result.records == written
    lines = store.path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["schema_version"] == 1
    assert "«0»" in lines[0]  # UTF-8, not \u escapes


def test_truncated_last_line_is_skipped_and_next_append_is_intact(tmp_path):
    store = RecordStore(tmp_path)
    store.append(make_record(0))
    whole = make_record(1).to_json()
    with open(store.path, "a", encoding="utf-8") as handle:
        handle.write(whole[: len(whole) // 2])  # a crash mid-write
    result = store.read()
    assert len(result.records) == 1
    assert len(result.warnings) == 1 and "line 2 skipped (truncated last line)" in result.warnings[0]
    later = make_record(2)
    store.append(later)
    result = store.read()
    assert [r.record_id for r in result.records][-1] == later.record_id and len(result.records) == 2


def test_corrupt_lines_never_break_reading(tmp_path):
    store = RecordStore(tmp_path)
    store.append(make_record(0))
    with open(store.path, "ab") as handle:
        handle.write(b'{"not": "a record"}\n[1,2]\n\xff\xfe\n')
    store.append(make_record(1))
    result = store.read()
    assert len(result.records) == 2 and len(result.warnings) == 3


def test_concurrent_appends_give_one_complete_line_each(tmp_path):
    store = RecordStore(tmp_path)

    def writer(who: int):
        for i in range(25):
            store.append(make_record(i, annotator=f"a{who}"))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = store.read()
    assert result.warnings == [] and len(result.records) == 200
    assert len({r.record_id for r in result.records}) == 200
