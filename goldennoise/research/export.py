"""Exports that the ecosystem reads, from the live judgements of an outputs folder.

    python -m goldennoise.export OUTPUTS DEST [--formats imagefolder,table,npz,pairs]

- imagefolder: `DEST/imagefolder/{golden,bad}/<file>.png` + `metadata.jsonl`, loadable with
  `datasets.load_dataset("imagefolder", data_dir=...)` (label from the folder name).
- table: `DEST/samples.parquet` and `samples.csv`, one row per (judgement, seed).
- npz: `DEST/noises.npz` with `noises` (n, C, h, w) float32, `golden` (n,), `seeds` (n,),
  and `noises.index.jsonl` (row i -> prompt, seed, record, sha256): the unpacked
  initial latents, NPNet-style.
- pairs: `DEST/pairs.npz` with `winner` / `loser` noises (m, C, h, w) for every golden x bad
  pair within a judgement, and `pairs.index.jsonl`, for preference training.
Only the most common noise shape goes into the arrays (one model and size).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from goldennoise import dataset
from goldennoise.records import RecordStore

FORMATS = ("imagefolder", "table", "npz", "pairs")
TABLE_COLUMNS = [c for c in dataset.COLUMNS if c != "noise"] + ["noise_sha256"]


def _table(outputs: Path):
    table = dataset.sample_table(RecordStore(outputs).read().records)
    if table.empty:
        raise ValueError(f"{outputs}: no judgements to export.")
    return table.assign(noise_sha256=[block["sha256"] for block in table["noise"]])


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def export_imagefolder(outputs: Path, table, dest: Path) -> Path:
    folder = dest / "imagefolder"
    rows = []
    for row in table.itertuples():
        label = "golden" if row.golden else "bad"
        name = f"{row.prompt_id}-{row.record_id[:8]}-{row.seed}.png"
        target = folder / label / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(outputs / row.image_path, target)
        rows.append({"file_name": f"{label}/{name}", "prompt": row.prompt, "seed": int(row.seed),
                     "golden": bool(row.golden), "clip_score": row.clip_score, "annotator": row.annotator,
                     "model": row.model, "parameters": row.parameters, "record_id": row.record_id,
                     "noise_sha256": row.noise_sha256})
    _write_jsonl(folder / "metadata.jsonl", rows)
    return folder


def export_table(table, dest: Path) -> Path:
    flat = table[TABLE_COLUMNS]
    flat.to_parquet(dest / "samples.parquet", index=False)
    flat.to_csv(dest / "samples.csv", index=False)
    return dest / "samples.parquet"


def export_npz(table, dest: Path) -> Path:
    main = dataset.main_shape(table)
    noises = dataset.load_noises(main)[:, 0]  # (n, C, h, w), verified against the records
    np.savez_compressed(dest / "noises.npz", noises=noises, golden=main["golden"].to_numpy(bool),
                        seeds=main["seed"].to_numpy(np.uint64))
    _write_jsonl(dest / "noises.index.jsonl", [
        {"row": i, "prompt": r.prompt, "prompt_id": r.prompt_id, "seed": int(r.seed), "golden": bool(r.golden),
         "record_id": r.record_id, "noise_sha256": r.noise_sha256} for i, r in enumerate(main.itertuples())])
    return dest / "noises.npz"


def export_pairs(table, dest: Path) -> Path:
    main = dataset.main_shape(table)
    noises = dataset.load_noises(main)[:, 0]
    winners, losers, index = [], [], []
    for record_id, group in main.groupby("record_id", sort=False):
        golden, bad = group[group["golden"]], group[~group["golden"]]
        for w in golden.itertuples():
            for lose in bad.itertuples():
                index.append({"pair": len(index), "record_id": record_id, "prompt": w.prompt,
                              "winner_seed": int(w.seed), "loser_seed": int(lose.seed)})
                winners.append(noises[w.Index])
                losers.append(noises[lose.Index])
    shape = noises.shape[1:]
    np.savez_compressed(dest / "pairs.npz", winner=np.array(winners).reshape(-1, *shape),
                        loser=np.array(losers).reshape(-1, *shape))
    _write_jsonl(dest / "pairs.index.jsonl", index)
    return dest / "pairs.npz"


def export(outputs: str | Path, dest: str | Path, formats=FORMATS) -> dict[str, Path]:
    """Write the chosen formats under `dest`; returns format -> main file or folder."""
    outputs, dest = Path(outputs), Path(dest)
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"Unknown export format(s) {sorted(unknown)}; choose from {', '.join(FORMATS)}.")
    table = _table(outputs)
    dest.mkdir(parents=True, exist_ok=True)
    done = {}
    if "imagefolder" in formats:
        done["imagefolder"] = export_imagefolder(outputs, table, dest)
    if "table" in formats:
        done["table"] = export_table(table, dest)
    if "npz" in formats:
        done["npz"] = export_npz(table, dest)
    if "pairs" in formats:
        done["pairs"] = export_pairs(table, dest)
    return done


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Export GoldenNoise data for datasets, pandas and noise training.")
    parser.add_argument("outputs", type=Path)
    parser.add_argument("dest", type=Path, nargs="?", help="default OUTPUTS/exports")
    parser.add_argument("--formats", default=",".join(FORMATS))
    args = parser.parse_args(argv)
    try:
        done = export(args.outputs, args.dest or args.outputs / "exports", args.formats.split(","))
    except ValueError as error:
        print(f"goldennoise.export: {error}", file=sys.stderr)
        return 2
    for name, path in done.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
