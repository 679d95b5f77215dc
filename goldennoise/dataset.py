"""The records as analysis data: one row per judged seed, and its noise re-made from the record.

`sample_table` flattens live judgements (undos and relabels honoured) into a
pandas table: (record, seed) -> golden, CLIP score, prompt, annotator, model,
parameters, image path. `load_noises` re-makes each row's noise from its record
block and checks the sha256, so an analysis never runs on noise that differs
from what the annotator saw.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from goldennoise.history import live
from goldennoise.noise import remake_noise
from goldennoise.records import Record

COLUMNS = ["record_id", "created_at", "annotator", "prompt_id", "prompt", "model", "parameters", "seed",
           "position", "golden", "clip_score", "image_path", "n_shown", "n_golden", "verdict", "seed_strategy",
           "prefiltered", "noise_shape", "noise"]


def sample_table(records: list[Record]) -> pd.DataFrame:
    """One row per seed shown in a live judgement."""
    rows = []
    for record in live(records):
        if record.kind != "judgement":
            continue
        params = json.dumps(record.parameters, sort_keys=True)
        for position, sample in enumerate(record.samples):
            rows.append({
                "record_id": record.record_id, "created_at": record.created_at, "annotator": record.annotator,
                "prompt_id": record.prompt["id"], "prompt": record.prompt["text"],
                "model": record.model.get("name") or record.model.get("id"), "parameters": params,
                "seed": sample["seed"], "position": position, "golden": bool(sample["golden"]),
                "clip_score": sample.get("clip_score"), "image_path": sample.get("image_path"),
                "n_shown": len(record.seeds), "n_golden": len(record.golden_seeds), "verdict": record.verdict,
                "seed_strategy": record.seed_strategy.get("name"),
                "prefiltered": bool(record.prefilter),
                "noise_shape": "x".join(map(str, sample["noise"]["shape"])), "noise": sample["noise"],
            })
    return pd.DataFrame(rows, columns=COLUMNS)


def main_shape(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the most common noise shape (noises of different shapes do not compare)."""
    if table.empty:
        return table
    shape = table["noise_shape"].value_counts().idxmax()
    return table[table["noise_shape"] == shape].reset_index(drop=True)


def load_noises(table: pd.DataFrame, packed: bool = False) -> np.ndarray:
    """Noises of the rows, `(n, 1, C, h, w)` float32 (or packed as the pipeline used them), verified."""
    return np.stack([remake_noise(int(seed), block, packed=packed).numpy()
                     for seed, block in zip(table["seed"], table["noise"])])
