"""Memory the record store holds per record, measured with tracemalloc (one run, side by side).

Run: .venv/bin/python benchmarks/memory.py [--records 2000] [--seeds 4]

Writes `--records` judgements of `--seeds` seeds, each seed with a full noise fingerprint
(64 values of the draw, 32 of the initial latents, as recorded by generation/latents.py),
then reads them back with a fresh RecordStore and prints the bytes held per record: as
the store holds fingerprints (arrays of doubles) and, beside it, what the same values cost
as Python float lists (the representation before this was changed).
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
import tracemalloc
from array import array
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from goldennoise.store import schema  # noqa: E402
from goldennoise.store.records import RecordStore  # noqa: E402
from tests import factory  # noqa: E402


def judgement(i: int, seeds: int, rng: random.Random):
    """A valid judgement of `seeds` seeds whose noise blocks carry full fingerprints."""
    base = factory.judgement(i).model_dump()
    seed_list = [1000 + 4 * i + k for k in range(seeds)]
    samples = [{**base["samples"][0], "seed": seed, "golden": k == 0, "image_path": f"images/x/{seed}.png",
                "noise": {**factory.noise_block(seed), "latents_shape": [1, 4, 8, 8], "latents_sha256": "c" * 64,
                          "fingerprint": {"draw": [rng.gauss(0, 1) for _ in range(64)], "mean": 0.0, "std": 1.0,
                                          "latents": [rng.gauss(0, 1) for _ in range(32)]}}}
               for k, seed in enumerate(seed_list)]
    return schema.Judgement.model_validate({
        **base, "seeds": seed_list, "golden_seeds": seed_list[:1], "bad_seeds": seed_list[1:],
        "verdict": "some_golden" if seeds > 1 else "all_golden", "samples": samples})


def held(measure) -> int:
    gc.collect()
    tracemalloc.start()
    kept = measure()
    gc.collect()
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        store = RecordStore(Path(tmp))
        for i in range(args.records):
            store.append(judgement(i, args.seeds, rng))
        read = RecordStore(Path(tmp))
        records = held(lambda: read.read().records)
        kept = read.read().records
        values = [(s.noise.fingerprint.draw, s.noise.fingerprint.latents) for r in kept for s in r.samples]
        as_arrays = held(lambda: [(array("d", d), array("d", lat)) for d, lat in values])
        as_lists = held(lambda: [(list(d), list(lat)) for d, lat in values])
        size = (Path(tmp) / "records.jsonl").stat().st_size
    n = args.records
    print(f"record store, {n} judgements of {args.seeds} seeds (file: {size / n / 1e3:.1f} KB per line):")
    print(f"  held by a fresh RecordStore: {records / n / 1e3:.1f} KB per record")
    print(f"  its fingerprints: {as_arrays / n / 1e3:.1f} KB per record as arrays of doubles (as held), "
          f"{as_lists / n / 1e3:.1f} KB as Python float lists; ratio {as_arrays / as_lists:.2f}")

if __name__ == "__main__":
    main()
