"""The records as analysis data: tables of live answers, keyed by campaign and generation configuration.

Each takes a RecordStore (and streams it, a chunk of records at a time, with text columns
categorical: memory follows the number of rows, not Python objects per row) or a list of records.

- `sample_table`: one row per seed shown in a live judgement: (record, seed) -> golden, CLIP score,
  prompt, annotator, pre-filter slot and propensity, and the full generation configuration.
- `candidate_table`: for pre-filtered judgements, one row per candidate, shown or hidden.
- `pair_table`: one row per live pairwise answer.
- `noises`: re-makes each row's noise from its record and verifies it (exactly, or within the
  fingerprint's tolerance on another CPU), one at a time, so memory stays bounded.

Noises of different models, sizes or dtypes are not comparable: every table carries
`configuration` (a hash of model id + revision, pipeline class, dtype, size, steps,
guidance, scheduler) and `campaign`; `groups` splits a table by both, and pooling
happens only when asked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import numpy as np
import pandas as pd

from goldennoise.generation.latents import check_block, initial_noise, made_noise, verify
from goldennoise.generation.noises import NoiseStore, source_name
from goldennoise.store.configuration import configuration as store_configuration
from goldennoise.store.configuration import configuration_id, configuration_label  # noqa: F401
from goldennoise.store import schema
from goldennoise.store.live import live

CONFIG_KEYS = ("model_id", "revision", "pipeline_class", "dtype", "height", "width", "num_inference_steps",
               "guidance_scale", "scheduler", "max_sequence_length")


CHUNK = 5_000  # records turned into rows at a time: a million answers never sit in memory as objects
CATEGORICAL = ("record_id", "created_at", "annotator", "campaign", "configuration", "configuration_label",
               "model_id", "revision", "pipeline_class", "dtype", "scheduler", "prompt_id", "prompt", "seed_strategy",
               "batch_id", "verdict", "second_opinion_of", "slot", "noise_shape", "family", "packing",
               "pipeline_dtype", "noise_sha256", "latents_sha256", "noise_source", "left_noise_source",
               "right_noise_source", "image_path", "winner", "left_image",
               "right_image", "torch_version")


def _data(record) -> dict:
    return record if isinstance(record, dict) else schema.dump(record)


def configuration(record) -> dict:
    """The generation configuration of a record (a schema model or its JSON data): what makes two noises'
    images comparable."""
    data = _data(record)
    return store_configuration(data.get("model") or {}, data.get("parameters") or {})


def configurations(table: pd.DataFrame) -> list[dict] | list[None]:
    """Each row's generation configuration (CONFIG_KEYS) as the plain dict `latents.check_block` takes; None per
    row for a table without those columns."""
    keys = [k for k in CONFIG_KEYS if k in table]
    if not keys:
        return [None] * len(table)
    return [{k: (None if v is None or v != v else v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
            for row in table[keys].astype(object).to_dict("records")]


def live_data(source, campaign=..., kinds=("judgement", "pairwise")) -> Iterator[dict]:
    """The live answers (of `kinds`) as JSON data: streamed from a RecordStore (one campaign, or every one with
    `...`; None: records made without one), or from a list of records (schema models or dicts; the live rules
    applied)."""
    if hasattr(source, "iter_data"):
        yield from source.iter_data(campaign, live_only=True, kinds=kinds)
        return
    records = [r for r in source if campaign is ... or (_data(r).get("campaign")) == campaign]
    if records and isinstance(records[0], dict):
        records = [schema.parse(r) for r in records]
    for record in live(records):
        if record.kind in kinds:
            yield schema.dump(record)


class _Interned:
    """One dict per distinct noise block (a seed of a pool repeats in every batch it is in)."""

    def __init__(self):
        self.blocks: dict[tuple, dict] = {}

    def __call__(self, seed: int, block: dict | None) -> dict | None:
        if block is None:
            return None
        fp = block.get("fingerprint") or {}
        key = (seed, tuple((k, tuple(v) if isinstance(v, list) else tuple(sorted(v.items())) if isinstance(v, dict)
                            else v) for k, v in block.items() if k != "fingerprint"),
               tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in fp.items()))  # the whole block, exactly
        return self.blocks.setdefault(key, block)


def _base(d: dict) -> dict:
    config = configuration(d)
    prompt, timing = d["prompt"], d.get("timing") or {}
    return {"record_id": d["record_id"], "created_at": d["created_at"], "annotator": d["annotator"],
            "campaign": d.get("campaign") or "(none)", "configuration": configuration_id(config),
            "configuration_label": configuration_label(config), **config,
            "prompt_id": prompt["id"], "prompt": prompt["text"], "prompt_index": prompt["index"],
            "seed_strategy": (d.get("seed_strategy") or {}).get("name"), "n_shown": len(d.get("seeds") or []),
            "visible_ms": timing.get("visible_ms"), "shown_scores": d.get("shown_scores"),
            "batch_id": d.get("batch_id"), "torch_version": str((d.get("versions") or {}).get("torch") or "") or None}


def _noise_columns(sample: dict, intern: _Interned) -> dict:
    n = sample.get("noise")
    return {"noise_shape": "x".join(map(str, n["shape"])) if n else None, "family": n.get("family") if n else None,
            "packing": n.get("packing") if n else None, "pipeline_dtype": n.get("pipeline_dtype") if n else None,
            "noise_sha256": n.get("sha256") if n else None, "latents_sha256": n.get("latents_sha256") if n else None,
            "noise_source": source_name(sample.get("noise")),
            "source_share": (n.get("source") or {}).get("share") if n else None,
            "noise": intern(int(sample["seed"]), n)}


NUMBERS = ("clip_score", "rank_score", "propensity", "left_clip_score", "right_clip_score", "source_share")  # None: NaN


def _scores(sample: dict, prefix: str = "") -> dict:
    """A sample's verifier scores as columns: `score_<name>` (`left_score_<name>` ... in the pair table)."""
    return {f"{prefix}score_{name}": value for name, value in (sample.get("scores") or {}).items()}


def _note_verifiers(attrs: dict, d: dict) -> None:
    """Which weights made the table's verifier scores: attrs["verifiers"][name] = the distinct `Verifier.info`s."""
    for name, info in (d.get("verifiers") or {}).items():
        seen = attrs.setdefault("verifiers", {}).setdefault(name, [])
        if info not in seen:
            seen.append(info)


def _numeric(column: str) -> bool:
    return column in NUMBERS or column.removeprefix("left_").removeprefix("right_").startswith("score_")


def _compact(rows: list[dict]) -> dict[str, pd.Series]:
    """A chunk's rows as columns, text categorical and numbers float (kept apart: joined column by column)."""
    frame = pd.DataFrame(rows)
    out = {}
    for column in list(frame.columns):
        values = frame.pop(column)
        if column in CATEGORICAL:
            values = values.astype("category")
        elif _numeric(column):
            values = pd.to_numeric(values, errors="coerce").astype("float64")
        out[column] = values.reset_index(drop=True)
    return out


def _tables(source, campaign, makers: dict) -> dict[str, pd.DataFrame]:
    """Tables made in one pass over the live answers: `makers` = {name: (kinds, rows_of)}, where
    `rows_of(data, attrs) -> list of rows` for each answer of its kinds. Rows are kept a chunk of records at a time as
    columns (text categorical), so memory grows with the tables' numbers, not with Python objects per row."""
    chunks = {name: [] for name in makers}
    rows = {name: [] for name in makers}
    attrs = {name: {} for name in makers}
    kinds = tuple(dict.fromkeys(k for wanted, _ in makers.values() for k in wanted))
    for data in live_data(source, campaign, kinds):
        for name, (wanted, rows_of) in makers.items():
            if data["kind"] in wanted:
                rows[name] += rows_of(data, attrs[name])
                if len(rows[name]) >= CHUNK:
                    chunks[name].append(_compact(rows[name]))
                    rows[name] = []
    tables = {}
    for name in makers:
        if rows[name] or not chunks[name]:
            chunks[name].append(_compact(rows[name]))
        tables[name] = _concat(chunks.pop(name))
        tables[name].attrs.update(attrs[name])
    return tables


def _table(source, campaign, kinds, rows_of) -> pd.DataFrame:
    return _tables(source, campaign, {"table": (kinds, rows_of)})["table"]


def _as_one_kind(parts: list[pd.Series]) -> list[pd.Series]:
    """A number column whose chunk held only None (a model without that parameter) is NaN there, as the table made
    at once has it, not an object column of numbers and None."""
    empty = [p.dtype == object and bool(p.isna().all()) for p in parts]
    filled = [p for p, e in zip(parts, empty) if not e]
    if any(empty) and filled and all(pd.api.types.is_numeric_dtype(p.dtype) and not pd.api.types.is_bool_dtype(p.dtype)
                                     for p in filled):
        return [p.astype("float64") if e else p for p, e in zip(parts, empty)]
    return parts


def _union(parts: list[pd.Series]) -> pd.Series:
    """Categorical chunks as one categorical column: categories in order of appearance (as union_categoricals
    gives), held as plain objects and looked up once per chunk. (union_categoricals lets pandas infer an Arrow string
    index for the union and converts all of it back for every chunk it recodes: quadratic over a million record
    ids.)"""
    cats = [p.cat.categories.to_numpy(dtype=object) for p in parts]
    union = pd.Index(pd.unique(np.concatenate(cats)) if cats else [], dtype=object)
    codes = []
    for part, own in zip(parts, cats):
        where = union.get_indexer(own) if len(own) else np.zeros(0, dtype=np.intp)
        mapped = np.append(where, -1)[part.cat.codes.to_numpy()]  # code -1 (missing) stays -1
        codes.append(mapped)
    return pd.Series(pd.Categorical.from_codes(np.concatenate(codes), categories=union))  # codes made small by pandas


def _concat(chunks: list[dict[str, pd.Series]]) -> pd.DataFrame:
    """Chunks' columns joined, categorical columns kept categorical (the union of their categories); each column's
    chunks are let go as soon as it is joined, so the peak is the table and one column, not the table twice."""
    columns = list(dict.fromkeys(c for chunk in chunks for c in chunk))
    sizes = [len(next(iter(chunk.values()))) if chunk else 0 for chunk in chunks]
    out = {}
    for column in columns:
        missing = (lambda n: pd.Series(np.full(n, np.nan))) if _numeric(column) else (lambda n: pd.Series([None] * n))
        parts = [chunk.pop(column) if column in chunk else missing(n) for chunk, n in zip(chunks, sizes)]
        if len(parts) == 1:
            out[column] = parts[0]
        elif all(isinstance(p.dtype, pd.CategoricalDtype) for p in parts):
            out[column] = _union(parts)
        else:
            out[column] = pd.concat(_as_one_kind(parts), ignore_index=True)
        del parts
    return pd.DataFrame(out)


def _sample_rows(intern: _Interned):
    def rows_of(d: dict, attrs: dict) -> list[dict]:
        _note_verifiers(attrs, d)
        base = {**_base(d), "verdict": d["verdict"], "n_golden": len(d["golden_seeds"]),
                "prefiltered": d.get("prefilter") is not None, "second_opinion_of": d.get("second_opinion_of")}
        out = []
        for position, sample in enumerate(d["samples"]):
            if sample.get("noise") is None:
                attrs["without_noise"] = attrs.get("without_noise", 0) + 1
                continue
            out.append({**base, "seed": int(sample["seed"]), "position": position, "golden": bool(sample["golden"]),
                        "clip_score": sample.get("clip_score"), "image_path": sample.get("image_path"),
                        "slot": sample.get("slot") or "shown", "propensity": 1.0 if sample.get("propensity") is None
                        else sample["propensity"], "rank_score": sample.get("rank_score"), **_scores(sample),
                        **_noise_columns(sample, intern)})
        return out
    return ("judgement",), rows_of


def _samples_done(table: pd.DataFrame) -> pd.DataFrame:
    table.attrs.setdefault("without_noise", 0)
    if not table.empty:
        table["seed"] = table["seed"].astype("int64")
    return table


def _candidate_rows(intern: _Interned):
    def rows_of(d: dict, attrs: dict) -> list[dict]:
        if d.get("prefilter") is None:
            return []
        base = _base(d)
        out = [{**base, "seed": int(s["seed"]), "shown": True, "golden": bool(s["golden"]), "slot": s.get("slot"),
                "propensity": s.get("propensity"), "rank_score": s.get("rank_score"),
                "clip_score": s.get("clip_score"), **_scores(s), **_noise_columns(s, intern)} for s in d["samples"]]
        out += [{**base, "seed": int(s["seed"]), "shown": False, "golden": None, "slot": "hidden",
                 "propensity": s.get("propensity"), "rank_score": s.get("rank_score"),
                 "clip_score": s.get("clip_score"), **_scores(s), **_noise_columns(s, intern)}
                for s in d["prefilter"]["hidden"]]
        return out
    return ("judgement",), rows_of


def _pair_rows(intern: _Interned):
    def rows_of(d: dict, attrs: dict) -> list[dict]:
        left, right = d["samples"]
        _note_verifiers(attrs, d)
        return [{**_base(d), "left_seed": int(left["seed"]), "right_seed": int(right["seed"]),
                 "winner": d["preference"]["winner"], "left_image": left.get("image_path"),
                 "right_image": right.get("image_path"), "left_clip_score": left.get("clip_score"),
                 "right_clip_score": right.get("clip_score"), **_scores(left, "left_"), **_scores(right, "right_"),
                 "left_noise": intern(int(left["seed"]), left.get("noise")),
                 "right_noise": intern(int(right["seed"]), right.get("noise")),
                 "left_noise_source": source_name(left.get("noise")),
                 "right_noise_source": source_name(right.get("noise")),
                 "noise_shape": "x".join(map(str, left["noise"]["shape"])) if left.get("noise") else None}]
    return ("pairwise",), rows_of


def sample_table(source, campaign=...) -> pd.DataFrame:
    """One row per seed shown in a live judgement (retractions and relabels applied), from a RecordStore
    (streamed) or a list of records.

    Samples recorded without a noise block (schema-1 lines written by hand, say) cannot be
    re-made: they are left out, and `table.attrs["without_noise"]` counts them.
    """
    return _samples_done(_table(source, campaign, *_sample_rows(_Interned())))


def candidate_table(source, campaign=...) -> pd.DataFrame:
    """Pre-filtered judgements: every candidate, shown (with its label) or hidden (label unknown)."""
    return _table(source, campaign, *_candidate_rows(_Interned()))


def pair_table(source, campaign=...) -> pd.DataFrame:
    """One row per live pairwise answer: left and right seeds, their images, scores and noises, the winner."""
    return _table(source, campaign, *_pair_rows(_Interned()))


def tables(source, campaign=...) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """`sample_table`, `pair_table` and `candidate_table` in one pass over the store (a million answers are
    decoded once, not three times)."""
    intern = _Interned()
    made = _tables(source, campaign, {"samples": _sample_rows(intern), "pairs": _pair_rows(intern),
                                      "candidates": _candidate_rows(intern)})
    return _samples_done(made["samples"]), made["pairs"], made["candidates"]


def groups(table: pd.DataFrame, pool: bool = False) -> dict[str, pd.DataFrame]:
    """The table split by (campaign, configuration): "<campaign>/<configuration>" -> rows; one group if `pool`."""
    if table.empty:
        return {}
    if pool:
        return {"pooled": table.reset_index(drop=True)}
    keys = table[["campaign", "configuration"]].drop_duplicates()
    if len(keys) == 1:  # one group: the table itself, not a copy of it (a million answers are gigabytes of rows)
        campaign, config = keys.iloc[0]
        return {f"{campaign}/{config}": table}
    return {f"{campaign}/{config}": part.reset_index(drop=True)
            for (campaign, config), part in table.groupby(["campaign", "configuration"], sort=True, observed=True)}


class Verified:
    """Counts of how the noises of a table were verified ("exact" / "tolerance"), and of what the configuration
    check could not check (reason -> noises)."""

    def __init__(self):
        self.counts = Counter()
        self.unchecked = Counter()

    def note(self) -> str | None:
        notes = [f"{n} noise(s) verified without checking their {reason}." for reason, n in self.unchecked.items()]
        if self.counts["tolerance"]:
            notes.insert(0, f"{self.counts['tolerance']} of {sum(self.counts.values())} noises were verified within "
                            "the fingerprint tolerance, not by hash: they were recorded on a CPU with other kernels.")
        return " ".join(notes) or None


def noises(table: pd.DataFrame, verified: Verified | None = None, column: str = "noise",
           seed_column: str = "seed", store: NoiseStore | None = None) -> Iterator[np.ndarray]:
    """Each row's float32 noise `(1, C, h, w)`, re-made from its record and verified (against the row's
    configuration too), one at a time: the seed's draw, or for a candidate from a noise source the kept noise
    (`store`: the outputs folder's `NoiseStore`)."""
    for seed, block, config in zip(table[seed_column], table[column], configurations(table)):
        check_block(int(seed), block, config)
        noise = initial_noise(int(seed), tuple(block["shape"]))
        result = verify(int(seed), block, noise, store=store)
        if verified is not None:
            verified.counts[result.status] += 1
        yield (noise if block.get("source") is None else made_noise(int(seed), block, store)).numpy()


def load_noises(table: pd.DataFrame, verified: Verified | None = None, store: NoiseStore | None = None) -> np.ndarray:
    """All rows' noises stacked `(n, 1, C, h, w)` (for small tables; `noises` streams)."""
    return np.stack(list(noises(table, verified, store=store)))
