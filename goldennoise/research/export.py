"""Exports of the live answers: a Hugging Face dataset, tables, NPNet preference pairs, noise arrays.

    goldennoise export OUTPUTS [DEST] [--formats hub,table,npnet,npz] [--campaign-id ID] [--pool]

Rows are the live answers (retractions and relabels applied, second opinions kept),
every noise re-made from its seed and checked (`verify.checked`): a record whose
noise does not match is left out and listed, never exported with the wrong noise.
Everything is split by (campaign, generation configuration), a *group*, unless
`pool`; noises of different models are never stacked together.

- hub: `DEST/hub/` = `README.md` (the dataset card, `configs`, features) and
  `data/<config>/train-00000-of-00001.parquet`, configs `samples-<group>` and
  `pairwise-<group>` (Pick-a-Pic layout); `datasets.load_dataset("DEST/hub", config)`.
- table: `DEST/table/<group>/{samples,pairwise,candidates}.{parquet,csv}`, provenance flattened.
- npnet: `DEST/npnet/<group>/npz/<n>.npz` (`arr_0` loser noise, `arr_1` winner noise,
  `arr_2` prompt index), `prompts.txt`, `index.jsonl`: what NPNet's `NoiseDataset(pick=True)`
  loads. They are human-preference pairs (winner vs loser noise under one prompt), NOT
  the re-denoised target noises of NPNet's own data.
- npz: `DEST/npz/<group>/noises.npz` (`noises` (n, C, h, w) float32, `golden` bool,
  `seeds` int64) and `index.jsonl` (model, packing, scale, dtype per row).

Every path written is built from group names (slugs and hashes), indexes and fixed
names, never from a prompt id or other user text, and checked to resolve inside
DEST. Each format is written to a fresh folder and swapped in, so an export never
mixes with an earlier one. Noises are streamed: memory stays bounded.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from goldennoise.errors import UserError
from goldennoise.generation.images import confined
from goldennoise.generation.latents import initial_noise
from goldennoise.generation.noises import source_name
from goldennoise.research import card, dataset
from goldennoise.research.verify import Checked, Checker, Group, checked
from goldennoise.store.campaign import read_written
from goldennoise.store.records import RecordStore
from goldennoise.research.analysis.inference import ClusterBootstrap, weighted_mean

FORMATS = ("hub", "table", "npnet", "npz", "jsonl")
VERIFIED = ("exact", "tolerance")
SAFE_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
ROW_GROUP = 100  # rows per parquet row group: bounded memory with embedded images
MARKER = ".goldennoise-export.json"  # in DEST: the format folders an export wrote (and may replace)
CONFIG_COLUMNS = ("campaign", "configuration", "configuration_label", *dataset.CONFIG_KEYS)


def spreadsheet_safe(table):
    """A copy whose text cells cannot run as spreadsheet formulas (a leading = + - @ gets a quote mark)."""
    def cell(value):
        return "'" + value if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") else value

    def column_of(column):
        text = column.dtype == object or pd.api.types.is_string_dtype(column)
        return column.map(cell) if text else column

    return table.apply(column_of)


def safe_path(root: Path, *parts: str) -> Path:
    """`root/parts...`: each part a plain name (`[A-Za-z0-9._-]`, at most 80), resolving inside `root`."""
    for part in parts:
        if not SAFE_PART.fullmatch(part):
            raise ValueError(f"unsafe export path part {part[:40]!r}")
    path = confined(root, "/".join(parts))
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _py(value):
    """A table cell as a plain Python value (numpy scalars unwrapped, NaN as None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _write_jsonl(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)


def provenance(block: dict | None, suffix: str = "") -> dict:
    """A noise block as flat columns (shapes as lists); `suffix` names a side ("_0", "_1")."""
    b = block or {}
    return {f"noise_shape{suffix}": b.get("shape"), f"latents_shape{suffix}": b.get("latents_shape"),
            f"family{suffix}": b.get("family"), f"packing{suffix}": b.get("packing"), f"scale{suffix}": b.get("scale"),
            f"pipeline_dtype{suffix}": b.get("pipeline_dtype"), f"noise_order{suffix}": b.get("order"),
            f"noise_sha256{suffix}": b.get("sha256"), f"latents_sha256{suffix}": b.get("latents_sha256"),
            f"noise_source{suffix}": source_name(block),
            f"source_sha256{suffix}": b.get("source_sha256"),
            f"noise_provenance{suffix}": json.dumps(block, sort_keys=True) if block else None}


def _config(row: dict) -> dict:
    return {k: _py(row.get(k)) for k in (*CONFIG_COLUMNS, "seed_strategy")}


# hub ----------------------------------------------------------------------------------------------


def scored(table: pd.DataFrame) -> list[str]:
    """The verifiers with a score in `table` (sample table `score_<name>`, pair table `left_score_<name>`)."""
    return sorted(c.removeprefix("left_").removeprefix("score_") for c in table.columns
                  if c.startswith(("score_", "left_score_")) and table[c].notna().any())


def features(verifiers: list[str] = ()):
    """(samples, pairwise) `datasets.Features` of the hub configs; a float32 `score_<name>` column per verifier
    (`score_<name>_0` / `_1` in pairwise), as the verifiers computed them."""
    from datasets import ClassLabel, Features, Image, List, Value

    s, i, f, b = Value("string"), Value("int64"), Value("float64"), Value("bool")
    config = {"campaign": s, "configuration": s, "configuration_label": s, "model_id": s, "revision": s,
              "pipeline_class": s, "dtype": s, "height": i, "width": i, "num_inference_steps": i, "guidance_scale": f,
              "scheduler": s, "max_sequence_length": i, "seed_strategy": s}
    noise = {"noise_shape": List(i), "latents_shape": List(i), "family": s, "packing": s, "scale": f,
             "pipeline_dtype": s, "noise_order": s, "noise_sha256": s, "latents_sha256": s, "noise_source": s,
             "source_sha256": s, "noise_provenance": s}
    answer = {"prompt_id": s, "prompt_index": i, "annotator": s, "record_id": s, "created_at": s, "visible_ms": i,
              "shown_scores": b}
    samples = Features({"image": Image(), "golden": ClassLabel(names=["bad", "golden"]), "seed": i, "prompt": s,
                        **answer, "clip_score": f, "verdict": s, "position": i, "n_shown": i, "slot": s,
                        "propensity": f, "rank_score": f, "second_opinion_of": s, "image_path": s, **config, **noise,
                        "noise_check": s, "torch_version": s,
                        **{f"score_{n}": Value("float32") for n in verifiers}})
    sides = {f"{k}_{n}": v for n in (0, 1) for k, v in (("noise_sha256", s), ("latents_sha256", s),
                                                         ("noise_source", s), ("source_sha256", s),
                                                         ("noise_provenance", s))}
    pairwise = Features({"caption": s, "image_0": Image(), "image_1": Image(), "label_0": f, "label_1": f,
                         "winner": s, "seed_0": i, "seed_1": i, "clip_score_0": f, "clip_score_1": f, **answer,
                         **config, **{k: v for k, v in noise.items() if not k.endswith(("sha256", "provenance"))},
                         **sides, "noise_check": s, "torch_version": s,
                         **{f"score_{n}_{side}": Value("float32") for n in verifiers for side in (0, 1)}})
    return samples, pairwise


def _image(path, name: str) -> dict | None:
    return {"bytes": Path(path).read_bytes(), "path": name} if path is not None else None


def sample_rows(table: pd.DataFrame):
    for row in table.to_dict("records"):
        row = {k: _py(v) for k, v in row.items()}
        yield {**{k: row.get(k) for k in ("seed", "prompt", "prompt_id", "prompt_index", "annotator", "record_id",
                                           "created_at", "visible_ms", "shown_scores", "clip_score", "verdict",
                                           "position", "n_shown", "slot", "propensity", "rank_score",
                                           "second_opinion_of", "image_path", "noise_check", "torch_version")},
               **{k: v for k, v in row.items() if k.startswith("score_")},
               "image": _image(row["image_file"], f"{row['record_id']}-{row['seed']}.png"),
               "golden": int(bool(row["golden"])), **_config(row), **provenance(row["noise"])}


LABELS = {"left": (1.0, 0.0), "right": (0.0, 1.0), "tie": (0.5, 0.5), "both_bad": (0.0, 0.0)}


def pair_rows(table: pd.DataFrame):
    for row in table.to_dict("records"):
        row = {k: _py(v) for k, v in row.items()}
        left, right = provenance(row["left_noise"], "_0"), provenance(row["right_noise"], "_1")
        label_0, label_1 = LABELS[row["winner"]]
        yield {"caption": row["prompt"], "image_0": _image(row["left_file"], f"{row['record_id']}-0.png"),
               "image_1": _image(row["right_file"], f"{row['record_id']}-1.png"), "label_0": label_0,
               "label_1": label_1, "winner": row["winner"], "seed_0": row["left_seed"], "seed_1": row["right_seed"],
               "clip_score_0": row["left_clip_score"], "clip_score_1": row["right_clip_score"],
               **{f"{k.removeprefix(side)}_{n}": v for k, v in row.items() for n, side in ((0, "left_"), (1, "right_"))
                  if k.startswith(f"{side}score_")},
               **{k: row.get(k) for k in ("prompt_id", "prompt_index", "annotator", "record_id", "created_at",
                                           "visible_ms", "shown_scores", "noise_check", "torch_version")},
               **_config(row), **{k[:-2]: v for k, v in left.items()}, **left, **right,
               # both sides' sources: "seed" only when both started from their seed's draw ("redenoise vs seed")
               "noise_source": " vs ".join(dict.fromkeys(
                   x for x in (left["noise_source_0"], right["noise_source_1"]) if x)) or None}


def write_parquet(path: Path, feats, rows) -> tuple[int, int]:
    """Stream `rows` into one parquet file of `feats`, ROW_GROUP rows at a time; (rows, bytes)."""
    import pyarrow.parquet as pq

    schema, count, size, batch = feats.arrow_schema, 0, 0, []
    with pq.ParquetWriter(path, schema) as writer:
        for row in rows:
            batch.append(feats.encode_example({k: row.get(k) for k in feats}))
            if len(batch) == ROW_GROUP:
                size += _flush(writer, batch, schema)
                count, batch = count + len(batch), []
        if batch:
            size += _flush(writer, batch, schema)
            count += len(batch)
    return count, size


def _flush(writer, batch: list[dict], schema) -> int:
    import pyarrow as pa

    table = pa.Table.from_pylist(batch, schema=schema)
    writer.write_table(table)
    return table.nbytes


def _label(group: Group) -> str:
    labels = sorted({*group.samples.get("configuration_label", []), *group.pairs.get("configuration_label", [])})
    return labels[0] if len(labels) == 1 else f"pooled: {len(labels)} generation configurations"


def weighted_rate(samples: pd.DataFrame, draws: int = 1000, seed: int = 0) -> dict:
    """The golden rate of every generated candidate from pre-filtered rows: Hajek, sum(golden / propensity) /
    sum(1 / propensity), with a 95% interval resampling whole prompts (and seeds where they repeat)."""
    y = samples["golden"].to_numpy(float)
    w = 1.0 / samples["propensity"].astype(float).clip(lower=1e-6).to_numpy()
    prompts = list(zip(samples["campaign"], samples["prompt_id"]))
    repeat = bool(samples.groupby("seed")["prompt_id"].nunique().max() > 1)
    boot = ClusterBootstrap([f"{c}\x00{p}" for c, p in prompts], samples["seed"] if repeat else None, draws, seed)
    low, high = boot.interval(lambda m: weighted_mean(y, m), base=w)
    return {"rate": weighted_mean(y, w), "ci_low": low, "ci_high": high,
            "resampled": "prompts and seeds" if repeat else "prompts"}


def summary(data: Checked, groups: dict[str, Group], configs: dict[str, dict], repo_id: str | None) -> dict:
    """What the card states: record counts, checks, per-group counts (with the pre-filter-weighted golden rate
    where rows were pre-filtered), campaign definitions."""
    def count(name: str, s: pd.DataFrame, p: pd.DataFrame) -> dict:
        prompts = set(zip(s.get("campaign", []), s.get("prompt_id", []))) | set(zip(p.get("campaign", []),
                                                                                  p.get("prompt_id", [])))
        seeds = set(s.get("seed", [])) | set(p.get("left_seed", [])) | set(p.get("right_seed", []))
        prefiltered = bool(len(s) and s["prefiltered"].any())
        return {"config": name, "rows": len(s), "golden": int(s["golden"].sum()) if len(s) else 0,
                "prompts": len(prompts), "seeds": len(seeds),
                "annotators": len(set(s.get("annotator", [])) | set(p.get("annotator", []))),
                "judgements": s["record_id"].nunique() if len(s) else 0, "pairwise": len(p),
                "weighted": weighted_rate(s) if prefiltered else None}

    campaign_ids = set(data.samples.get("campaign", [])) | set(data.pairs.get("campaign", []))
    return {"records": data.record_counts, "checks": dict(data.statuses),
            "excluded": len(data.excluded), "pool": data.pool, "repo_id": repo_id, "configs": configs,
            "counts": [count(name, g.samples, g.pairs) for name, g in groups.items()],
            "totals": count("all", data.samples, data.pairs), "campaigns": read_written(data.outputs),
            "verifiers": {**data.pairs.attrs.get("verifiers", {}), **data.samples.attrs.get("verifiers", {})},
            "campaign_ids": sorted(campaign_ids)}


def write_hub(data: Checked, groups: dict[str, Group], root: Path, repo_id: str | None = None) -> None:
    """The Hugging Face dataset folder: parquet per config and the generated card."""
    configs = {}
    for name, g in groups.items():
        sample_features, pair_features = features(sorted(set(scored(g.samples)) | set(scored(g.pairs))))
        for kind, table, feats, rows in (("samples", g.samples, sample_features, sample_rows),
                                         ("pairwise", g.pairs, pair_features, pair_rows)):
            if table.empty:
                continue
            config = f"{kind}-{name}"
            count, size = write_parquet(safe_path(root, "data", config, "train-00000-of-00001.parquet"), feats,
                                        rows(table))
            configs[config] = {"features": feats, "num_rows": count, "num_bytes": size, "label": _label(g),
                               "path": f"data/{config}/train-*.parquet"}
    text = card.front_matter(configs) + card.body(summary(data, groups, configs, repo_id))
    safe_path(root, "README.md").write_text(text, encoding="utf-8")


# table ----------------------------------------------------------------------------------------------


TABLE_CHUNK = 20_000  # rows flattened and written at a time: the table export's memory does not grow with the campaign


def flat(table: pd.DataFrame, kind: str) -> pd.DataFrame:
    """A table without dict or path-object columns: provenance flattened, shapes as "1x4x8x8"."""
    sides = {"pairwise": (("left_noise", "left_"), ("right_noise", "right_"))}.get(kind, (("noise", ""),))
    replaced = {"noise", "left_noise", "right_noise", "image_file", "left_file", "right_file",
                *(prefix + name for _, prefix in sides for name in provenance(None))}
    out = table.drop(columns=[c for c in table.columns if c in replaced])
    for column, prefix in sides:
        made: dict[int, dict] = {}  # one flattening per distinct block (the tables share one object per noise)
        cols = pd.DataFrame([made.get(id(b)) or made.setdefault(id(b), _flat_block(b)) for b in table[column]],
                            index=table.index)
        out = out.join(cols.add_prefix(prefix))
    return out


def _flat_block(block: dict | None) -> dict:
    cols = provenance(block)
    for shape in ("noise_shape", "latents_shape"):
        cols[shape] = "x".join(map(str, cols[shape])) if cols[shape] else None
    return cols


def _arrow_schema(table: pd.DataFrame, kind: str):
    """The parquet schema of the whole flattened table, from a few rows that hold a value of every column that
    has one (a column empty throughout is a string column of nulls)."""
    import pyarrow as pa

    rows = {0, *(i for i in (table[c].first_valid_index() for c in table.columns) if i is not None)}
    sample = flat(table.loc[sorted(rows)], kind)
    schema = pa.Schema.from_pandas(sample, preserve_index=False)
    return pa.schema([field.with_type(pa.string()) if pa.types.is_null(field.type) else field for field in schema])


def _own_categories(part: pd.DataFrame) -> pd.DataFrame:
    """A chunk whose categorical columns hold only the categories it uses: each chunk of a million-answer table
    otherwise carried all million record ids into its Arrow dictionary, and the CSV's formula guard mapped them all."""
    for column in part.columns:
        if isinstance(part[column].dtype, pd.CategoricalDtype):
            part[column] = part[column].cat.remove_unused_categories()
    return part


def write_table(group: Group, root: Path) -> None:
    """`<group>/<kind>.parquet` and `.csv` per table, flattened and written TABLE_CHUNK rows at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for kind, table in (("samples", group.samples), ("pairwise", group.pairs), ("candidates", group.candidates)):
        if table.empty:
            continue
        schema = _arrow_schema(table, kind)
        csv = safe_path(root, group.name, f"{kind}.csv")
        with pq.ParquetWriter(safe_path(root, group.name, f"{kind}.parquet"), schema) as writer:
            for start in range(0, len(table), TABLE_CHUNK):
                part = _own_categories(flat(table.iloc[start:start + TABLE_CHUNK], kind))
                writer.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False))
                spreadsheet_safe(part).to_csv(csv, index=False, header=start == 0, mode="w" if start == 0 else "a")


# npz and npnet ----------------------------------------------------------------------------------------


def _by_shape(name: str, rows: list[dict], block: str) -> list[tuple[str, list[dict]]]:
    """Rows split by noise shape (only a pooled group can mix them): (folder name, rows)."""
    shapes: dict[str, list[dict]] = {}
    for row in rows:
        shapes.setdefault("x".join(map(str, row[block]["shape"])), []).append(row)
    if len(shapes) == 1:
        return [(name, next(iter(shapes.values())))]
    return [(f"{name}-{shape}", part) for shape, part in sorted(shapes.items())]


def _index_columns(row: dict, block: dict) -> dict:
    p = provenance(block)
    return {**{k: _py(row.get(k)) for k in CONFIG_COLUMNS},
            **{k: p[k] for k in ("family", "packing", "scale", "pipeline_dtype", "noise_shape", "latents_shape")}}


def stream_npz(path: Path, shape: tuple, noises, **small: np.ndarray) -> None:
    """An .npz that `np.load` reads, with `noises` of `shape` written one noise at a time."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        with archive.open("noises.npy", "w", force_zip64=True) as handle:
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False,
                      "shape": tuple(int(n) for n in shape)}
            np.lib.format.write_array_header_2_0(handle, header)
            for noise in noises:
                handle.write(np.ascontiguousarray(noise, dtype="<f4").tobytes())
        for name, array in small.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.asarray(array), allow_pickle=False)


def write_npz(group: Group, root: Path, checker: Checker) -> None:
    s = group.samples
    rows = s[s["noise_check"].isin(VERIFIED)].to_dict("records") if not s.empty else []
    for name, part in _by_shape(group.name, rows, "noise") if rows else []:
        shape = (len(part), *part[0]["noise"]["shape"][1:])
        stream_npz(safe_path(root, name, "noises.npz"), shape,
                   (checker.noise(r["seed"], r["noise"])[0] for r in part),
                   golden=np.array([bool(r["golden"]) for r in part], dtype=bool),
                   seeds=np.array([int(r["seed"]) for r in part], dtype=np.int64))
        _write_jsonl(safe_path(root, name, "index.jsonl"), [
            {"row": i, "record_id": r["record_id"], "annotator": r["annotator"], "prompt_id": r["prompt_id"],
             "prompt": r["prompt"], "seed": int(r["seed"]), "golden": bool(r["golden"]),
             "noise_sha256": r["noise"]["sha256"], "latents_sha256": r["noise"].get("latents_sha256"),
             "noise_source": source_name(r["noise"]),
             "source_sha256": r["noise"].get("source_sha256"),
             "noise_check": r["noise_check"], **_index_columns(r, r["noise"])} for i, r in enumerate(part)])


def preference_pairs(group: Group) -> list[dict]:
    """(winner, loser) noises under one prompt: golden x bad within a judgement, and pairwise winners."""
    found = []
    s = group.samples
    if not s.empty:
        for _, rows in s[s["noise_check"].isin(VERIFIED)].groupby("record_id", sort=False):
            records = rows.to_dict("records")
            for w in (r for r in records if r["golden"]):
                for lose in (r for r in records if not r["golden"]):
                    found.append({**w, "source": "judgement: golden x bad", "winner_seed": int(w["seed"]),
                                  "loser_seed": int(lose["seed"]), "winner_noise": w["noise"],
                                  "loser_noise": lose["noise"]})
    p = group.pairs
    if not p.empty:  # a same-seed pair (x_T against x'_T) is NPNet's own pair: in `-redenoise-compared/`, not here
        for r in p[p["noise_check"].isin(VERIFIED) & (p["left_seed"] != p["right_seed"])].to_dict("records"):
            if r["winner"] in ("left", "right"):
                win, lose = ("left", "right") if r["winner"] == "left" else ("right", "left")
                found.append({**r, "source": f"pairwise: {r['winner']} won", "winner_seed": int(r[f"{win}_seed"]),
                              "loser_seed": int(r[f"{lose}_seed"]), "winner_noise": r[f"{win}_noise"],
                              "loser_noise": r[f"{lose}_noise"]})
    return found


def prompt_line(index: int, caption: str) -> str:
    """One line of NPNet's prompt file: JSON that Python's `eval` reads back exactly, else a Python literal."""
    entry = {"index": int(index), "caption": caption}
    line = json.dumps(entry, ensure_ascii=False)
    try:
        if "\n" not in line and "\r" not in line and ast.literal_eval(line) == entry:
            line.encode("utf-8")
            return line
    except (ValueError, SyntaxError, UnicodeEncodeError):
        pass
    return repr(entry)  # escapes what JSON leaves raw (lone surrogates, line breaks)


def _int_or_none(value):
    return None if value is None or pd.isna(value) else int(value)


def npnet_prompt_numbers(pairs: list[dict]) -> dict[tuple, int]:
    """(prompt id, text) -> the number NPNet's loader keys captions by (`arr_2`, `index` in prompts.txt).

    The campaign's own prompt index (as `prompt_index` in every other export) wherever it names one prompt
    in this folder; only where it cannot (pooled campaigns, records without an index) are prompts numbered
    0, 1, ... in order of first pair. `index.jsonl` always carries both."""
    keys = list(dict.fromkeys((p["prompt_id"], p["prompt"]) for p in pairs))
    campaign = {}
    for p in pairs:
        campaign.setdefault((p["prompt_id"], p["prompt"]), _int_or_none(p.get("prompt_index")))
    numbers = list(campaign.values())
    if None not in numbers and len(set(numbers)) == len(numbers):
        return campaign
    return {key: k for k, key in enumerate(keys)}


def redenoise_pairs(group: Group) -> list[dict]:
    """Candidates that started from a re-denoised noise: (their seed's draw, the re-denoised noise, the people's
    label), NPNet's (x_T, x'_T) with a human judgement in place of its reward model."""
    s = group.samples
    if s.empty or "noise_source" not in s:
        return []
    rows = s[s["noise_check"].isin(VERIFIED) & (s["noise_source"].astype(object) == "redenoise")]
    return rows.to_dict("records")


def compared_pairs(group: Group) -> list[dict]:
    """Same-seed pairwise answers (`[noise] pairing = "same_seed"`) of a re-denoised noise against its own seed's
    draw: NPNet's (x_T, x'_T) with people's side-by-side preference in place of its reward model. Each row is the
    answer's with `seed`, `noise` (the re-denoised side's block), `preferred` (x'_T's image won) and `answer`."""
    p = group.pairs
    if p.empty or "left_noise_source" not in p:
        return []
    found = []
    rows = p[p["noise_check"].isin(VERIFIED) & (p["left_seed"] == p["right_seed"])]
    for r in rows.to_dict("records"):
        sides = {r["left_noise_source"]: "left", r["right_noise_source"]: "right"}
        if set(sides) != {"seed", "redenoise"}:
            continue
        side = sides["redenoise"]
        answer = {side: "redenoise", sides["seed"]: "seed"}.get(r["winner"], r["winner"])
        found.append({**r, "seed": int(r["left_seed"]), "noise": r[f"{side}_noise"],
                      "preferred": answer == "redenoise", "answer": answer})
    return found


def _write_npnet_folder(root: Path, folder: str, rows: list[dict], arrays, describe) -> None:
    """One folder NPNet's `NoiseDataset(pick=True)` loads: `npz/<n>.npz` (`arrays(row)` as arr_0 and arr_1, arr_2
    the prompt's number), `prompts.txt`, and `index.jsonl` (each file and numbers, then `describe(row)`)."""
    prompts = npnet_prompt_numbers(rows)  # (prompt id, text) -> `index` in prompts.txt and arr_2
    index = []
    for n, row in enumerate(rows):
        number = prompts[(row["prompt_id"], row["prompt"])]
        np.savez(safe_path(root, folder, "npz", f"{n}.npz"), *arrays(row), np.array(number, dtype=np.int64))
        index.append({"file": f"npz/{n}.npz", "npnet_index": number,
                      "prompt_index": _int_or_none(row.get("prompt_index")), "prompt_id": row["prompt_id"],
                      **describe(row)})
    lines = [prompt_line(number, text) + "\n" for (_, text), number in prompts.items()]
    safe_path(root, folder, "prompts.txt").write_text("".join(lines), encoding="utf-8")
    _write_jsonl(safe_path(root, folder, "index.jsonl"), index)


def write_redenoise(group: Group, root: Path, checker: Checker) -> None:
    """`<name>-redenoise/` (the pairs people marked golden: NPNet's dataset, human-filtered) and
    `<name>-redenoise-all/` (every pair, its label in index.jsonl); from same-seed comparisons,
    `<name>-redenoise-compared/` (the pairs whose x'_T image people preferred) and `-compared-all/`; each
    loadable by NPNet's NoiseDataset."""
    rows = redenoise_pairs(group)
    for name, part in _by_shape(group.name, rows, "noise") if rows else []:
        passed = [r for r in part if r["golden"]]
        for folder, chosen in ((f"{name}-redenoise", passed), (f"{name}-redenoise-all", part)):
            if not chosen:
                continue
            _write_npnet_folder(
                root, folder, chosen,
                lambda r: (initial_noise(int(r["seed"]), tuple(r["noise"]["shape"])).numpy(),
                           checker.noise(r["seed"], r["noise"])),
                lambda r: {"record_id": r["record_id"], "annotator": r["annotator"], "seed": int(r["seed"]),
                           "golden": bool(r["golden"]), "method": r["noise"]["source"],
                           "noise_sha256": r["noise"]["sha256"], "source_sha256": r["noise"]["source_sha256"],
                           **_index_columns(r, r["noise"])})
            safe_path(root, folder, "README.md").write_text(card.redenoise_readme(
                len(part), len(passed), folder.endswith("-all")), encoding="utf-8")
    compared = compared_pairs(group)
    for name, part in _by_shape(group.name, compared, "noise") if compared else []:
        passed = [r for r in part if r["preferred"]]
        answers = [r["answer"] for r in part]
        for folder, chosen in ((f"{name}-redenoise-compared", passed), (f"{name}-redenoise-compared-all", part)):
            if not chosen:
                continue
            _write_npnet_folder(
                root, folder, chosen,
                lambda r: (initial_noise(r["seed"], tuple(r["noise"]["shape"])).numpy(),
                           checker.noise(r["seed"], r["noise"])),
                lambda r: {"record_id": r["record_id"], "annotator": r["annotator"], "seed": r["seed"],
                           "winner": r["answer"], "preferred": r["preferred"], "method": r["noise"]["source"],
                           "noise_sha256": r["noise"]["sha256"], "source_sha256": r["noise"]["source_sha256"],
                           **_index_columns(r, r["noise"])})
            safe_path(root, folder, "README.md").write_text(card.redenoise_compared_readme(
                len(part), len(passed), answers.count("tie"), answers.count("both_bad"), folder.endswith("-all")),
                encoding="utf-8")


def _array_sha256(block: dict) -> str:
    """The sha256 of the float32 array a block's image started from: its kept noise's, else its seed's draw's."""
    return block.get("source_sha256") or block["sha256"]


def write_npnet(group: Group, root: Path, checker: Checker) -> None:
    write_redenoise(group, root, checker)
    pairs = preference_pairs(group)
    for name, part in _by_shape(group.name, pairs, "winner_noise") if pairs else []:
        _write_npnet_folder(
            root, name, part,
            lambda p: (checker.noise(p["loser_seed"], p["loser_noise"]),
                       checker.noise(p["winner_seed"], p["winner_noise"])),
            lambda p: {"source": p["source"], "record_id": p["record_id"], "annotator": p["annotator"],
                       "winner_seed": p["winner_seed"], "loser_seed": p["loser_seed"],
                       # the arrays' own hashes: a candidate from a noise source started from its kept noise
                       "winner_noise_sha256": _array_sha256(p["winner_noise"]),
                       "loser_noise_sha256": _array_sha256(p["loser_noise"]),
                       "winner_noise_source": source_name(p["winner_noise"]),
                       "loser_noise_source": source_name(p["loser_noise"]),
                       **_index_columns(p, p["winner_noise"])})


# export ---------------------------------------------------------------------------------------------


def _check_formats(formats) -> list[str]:
    chosen = [f.strip() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip()]
    unknown = sorted(set(chosen) - set(FORMATS))
    if unknown or not chosen:
        raise UserError(f"formats: {', '.join(unknown) or 'none given'}; choose from {', '.join(FORMATS)}.",
                        "formats")
    return list(dict.fromkeys(chosen))


def _ours(dest: Path) -> set[str]:
    """The format folders under `dest` that an earlier export wrote (listed in its marker file)."""
    try:
        return set(json.loads((dest / MARKER).read_text(encoding="utf-8"))["formats"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _swap_in(dest: Path, name: str, write) -> list[Path]:
    """Run `write(folder)` on a fresh folder, then put it at `dest/name` in place of an earlier export's.

    A `dest/name` that no export wrote (a folder of the user's) is never replaced.
    """
    final = confined(dest, name)
    if final.is_symlink() or (final.exists() and (not final.is_dir() or name not in _ours(dest))):
        raise UserError(f"dest: it already holds a {name!r} that GoldenNoise did not export; choose another "
                        "export folder or move it away.", "dest")
    fresh = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=dest))
    try:
        write(fresh)
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}-old-", dir=dest))
            os.replace(final, old / name)
        os.replace(fresh, final)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    (dest / MARKER).write_text(json.dumps({"formats": sorted(_ours(dest) | {name})}) + "\n", encoding="utf-8")
    return sorted(p for p in final.rglob("*") if p.is_file())


def _check_installed(formats: list[str]) -> None:
    needs = {"hub": ("datasets", "pyarrow"), "table": ("pyarrow",)}
    for fmt in formats:
        for module in needs.get(fmt, ()):
            try:
                __import__(module)
            except ImportError:
                raise UserError(f"formats: {fmt} needs the {module} package; install goldennoise[analysis].",
                                "formats") from None


def export(outputs: str | Path, dest: str | Path, formats=FORMATS, campaign: str | None = None, pool: bool = False,
           repo_id: str | None = None, store=None) -> dict:
    """Write `formats` of the live answers of `outputs` under `dest`.

    Returns {"written": {format: folder}, "files": [every file written], "formats", "groups",
    "excluded": [{record_id, seed, reason}], "verified": {status: count}, "warnings": [...]}.
    `store`: a RecordStore or a store URL (default: the outputs folder's). "jsonl" is the journal: every record
    (of the campaign), as its JSON line, in the order written.
    Raises UserError for unknown formats, an unknown campaign or nothing to export.
    """
    formats = _check_formats(formats)
    _check_installed(formats)
    outputs, dest = Path(outputs), Path(dest)
    records = store if isinstance(store, RecordStore) else RecordStore(outputs, store)
    data = checked(outputs, campaign, pool, records)
    groups = data.groups()
    dest.mkdir(parents=True, exist_ok=True)
    writers = {
        "hub": lambda root: write_hub(data, groups, root, repo_id),
        "table": lambda root: [write_table(g, root) for g in groups.values()],
        "npnet": lambda root: ([write_npnet(g, root, data.checker) for g in groups.values()],
                               safe_path(root, "README.md").write_text(card.NPNET_README, encoding="utf-8")),
        "npz": lambda root: [write_npz(g, root, data.checker) for g in groups.values()],
        "jsonl": lambda root: records.export_jsonl(safe_path(root, "records.jsonl"),
                                                   ... if campaign is None else (None if campaign == "(none)"
                                                                                 else campaign)),
    }
    written, files = {}, []
    for fmt in formats:
        files += _swap_in(dest, fmt, writers[fmt])
        written[fmt] = dest / fmt
    return {"written": written, "files": files, "formats": formats, "groups": list(groups),
            "excluded": data.excluded, "verified": dict(data.statuses), "warnings": data.warnings}
