"""How long an annotator waits, and whether the store slows down as it grows.

Run: .venv/bin/python benchmarks/annotation_flow.py [--prompts 12] [--think 1.5]

1. Wait from Submit to the next batch on screen, driving the app's own session
   logic (`answers.submit` -> `advance` -> `generate`) with the tiny model at its
   default size (256², 4 steps, batch 4, CLIP on). The annotator "thinks" for
   `--think` seconds on each batch (the time prefetching has to work in). Run
   once with prefetching and once with it turned off; the ratio is the result.
2. Time per submitted judgement (`RecordStore.append`: one locked write + fsync)
   with 10, 1,000 and 100,000 records already in the file.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from goldennoise import answers, session  # noqa: E402
from goldennoise.engine import Engine  # noqa: E402
from goldennoise.prompts import parse_prompts  # noqa: E402
from goldennoise.records import RecordStore  # noqa: E402


def annotator_waits(prefetch: bool, prompts: int, think: float) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        engine, store = Engine(tmp), RecordStore(tmp)
        prompt_set = parse_prompts("\n".join(f"prompt number {i}" for i in range(prompts + 1)).encode(), "bench.txt")
        state = session.new_session(prompt_set, "bench")
        session.apply_settings(engine, state, session.default_settings("tiny-flux"), store)
        if not prefetch:
            engine.prefetch = lambda *args, **kwargs: None  # the same loop with prefetching switched off
        session.generate(engine, state)  # first batch: nothing to prefetch yet
        waits = []
        for _ in range(prompts):
            time.sleep(think)  # the annotator judges the batch
            start = time.perf_counter()
            answers.submit(store, state, state.batch.seeds[:1])
            session.advance(state)
            session.generate(engine, state)
            waits.append(time.perf_counter() - start)
        engine.close()
        return waits


def submit_latency(existing: int, repeats: int = 200) -> float:
    """Median seconds of one append with `existing` records in the file."""
    from tests.test_records import make_record

    with tempfile.TemporaryDirectory() as tmp:
        store = RecordStore(tmp)
        line = make_record(0).to_json() + "\n"
        with open(store.path, "w", encoding="utf-8") as handle:
            handle.write(line * existing)  # a realistic file size, written fast
        times = []
        for i in range(repeats):
            record = make_record(i)
            start = time.perf_counter()
            store.append(record)
            times.append(time.perf_counter() - start)
        assert len(store.read().records) == existing + repeats
        return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--think", type=float, default=1.5, help="seconds the annotator looks at each batch")
    args = parser.parse_args()
    without = annotator_waits(False, args.prompts, args.think)
    with_prefetch = annotator_waits(True, args.prompts, args.think)
    median_without, median_with = statistics.median(without), statistics.median(with_prefetch)
    print(f"Submit -> next batch shown (tiny-flux 256², batch 4, CLIP on, {args.prompts} prompts, "
          f"{args.think:.1f} s thinking each):")
    print(f"  without prefetch: median {median_without * 1000:.1f} ms (max {max(without) * 1000:.1f})")
    print(f"  with prefetch:    median {median_with * 1000:.1f} ms (max {max(with_prefetch) * 1000:.1f})")
    print(f"  ratio with/without: {median_with / median_without:.3f} (target < 0.05)")
    latencies = {n: submit_latency(n) for n in (10, 1_000, 100_000)}
    print("Time per submitted judgement (append + fsync), median of 200:")
    for n, seconds in latencies.items():
        print(f"  {n:>7,} existing records: {seconds * 1000:.3f} ms")
    print(f"  ratio 100,000 / 10: {latencies[100_000] / latencies[10]:.2f} (target: flat, about 1)")


if __name__ == "__main__":
    main()
