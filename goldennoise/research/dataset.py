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

import math
from array import array
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pandas as pd

from goldennoise.generation.latents import check_block, initial_noise, made_noise, verify
from goldennoise.generation.noises import NoiseStore, source_name
from goldennoise.store.configuration import configuration as store_configuration
from goldennoise.store.configuration import configuration_id, configuration_label  # noqa: F401
from goldennoise.store import schema
from goldennoise.store.codec import unpacked_noise
from goldennoise.store.live import live

CONFIG_KEYS = ("model_id", "revision", "pipeline_class", "dtype", "height", "width", "num_inference_steps",
               "guidance_scale", "scheduler", "max_sequence_length")


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
    """Each row's generation configuration (CONFIG_KEYS) as the plain dict `latents.check_block` takes (not to be
    changed: rows of one configuration share one dict, so a million rows hold a few dicts); None per row for a
    table without those columns."""
    keys = [k for k in CONFIG_KEYS if k in table]
    if not keys:
        return [None] * len(table)
    frame = table[keys]
    # rows of one configuration: its id (a hash of these values) where the table has it
    same = (pd.factorize(table["configuration"])[0] if "configuration" in table
            else frame.groupby(keys, dropna=False, sort=False, observed=True).ngroup().to_numpy())
    first = np.unique(same, return_index=True)[1]
    shared = {same[position]: {k: (None if v is None or v != v else v.item() if isinstance(v, np.generic) else v)
                               for k, v in row.items()}
              for position, row in zip(first, frame.iloc[first].astype(object).to_dict("records"))}
    return [shared[group] for group in same]


def live_data(source, campaign=..., kinds=("judgement", "pairwise"), packed: bool = False) -> Iterator[dict]:
    """The live answers (of `kinds`) as JSON data: streamed from a RecordStore (one campaign, or every one with
    `...`; None: records made without one), or from a list of records (schema models or dicts; the live rules
    applied). `packed`: a store's fingerprint lists may stay packed (`codec.unpacked_noise`)."""
    if hasattr(source, "iter_data"):
        yield from source.iter_data(campaign, live_only=True, kinds=kinds, packed=packed)
        return
    records = [r for r in source if campaign is ... or (_data(r).get("campaign")) == campaign]
    if records and isinstance(records[0], dict):
        records = [schema.parse(r) for r in records]
    for record in live(records):
        if record.kind in kinds:
            yield schema.dump(record)


def _frozen(value):
    """A JSON value as a hashable key (lists as tuples, objects as sorted item tuples), exactly."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    return value


class _Interned:
    """One dict per distinct noise block (a seed of a pool repeats in every batch it is in), its fingerprint
    unpacked once (a store's blocks arrive packed: `codec.unpacked_noise`)."""

    def __init__(self):
        self.blocks: dict[tuple, dict] = {}

    def __call__(self, seed: int, block: dict | None) -> dict | None:
        if block is None:
            return None
        key = (seed, _frozen(block))  # the whole block, exactly (packed text stands for its numbers one to one)
        found = self.blocks.get(key)
        if found is None:
            found = self.blocks[key] = unpacked_noise(block)
        return found


class _Configurations:
    """A record's configuration columns, its id and label computed once per distinct configuration."""

    def __init__(self):
        self.known: dict[tuple, dict] = {}

    def __call__(self, d: dict) -> dict:
        config = configuration(d)
        key = tuple((k, _frozen(v)) for k, v in config.items())
        found = self.known.get(key)
        if found is None:
            found = self.known[key] = {"configuration": configuration_id(config),
                                       "configuration_label": configuration_label(config), **config}
        return found


def _base(d: dict, configured: _Configurations | None = None) -> dict:
    config = (configured or _Configurations())(d)
    prompt, timing = d["prompt"], d.get("timing") or {}
    return {"record_id": d["record_id"], "created_at": d["created_at"], "annotator": d["annotator"],
            "campaign": d.get("campaign") or "(none)", **config,
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


class _Shared:
    """What the tables made in one pass share: one copy of each noise block and each configuration's columns."""

    def __init__(self):
        self.intern = _Interned()
        self.configured = _Configurations()


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


SEEDS = ("seed", "left_seed", "right_seed")  # 64-bit from the start; other whole numbers 32-bit until one is not
WIDEST = {"b": 127, "h": 32767, "i": 2**31 - 1}  # the largest code each width of `array` holds
WIDER = {"b": "h", "h": "i", "i": "q"}


class _Column:
    """One column built value by value, typed as it goes (no Python object kept per row): text as category codes,
    `NUMBERS` and scores as float64 (None: NaN), and anything else as pandas would infer it for the whole column
    (whole numbers int, with None float; booleans bool, with None object; else object)."""

    def __init__(self, name: str, rows_before: int):
        self.name, self.kind, self.nones = name, None, []
        if name in CATEGORICAL:  # codes one byte wide until there are more categories (a million rows: 4 MB, not 16)
            self.kind, self.values, self.codes = "category", {}, array("b", [-1]) * rows_before
        elif _numeric(name):
            self.kind, self.values = "number", array("d", [math.nan]) * rows_before
        else:
            self.values = None
            self.nones = list(range(rows_before))
        self.n = self.absent = rows_before  # rows before this column's first row: NaN where pandas has NaN

    def _null(self, row: int):
        return math.nan if row < self.absent else None

    def add(self, value) -> None:
        kind = self.kind
        if kind == "category":
            if value is None or value != value:  # None, or NaN for a row without this column
                self.codes.append(-1)
            else:
                code = self.values.get(value)
                if code is None:
                    code = self.values[value] = len(self.values)
                    if code > WIDEST[self.codes.typecode]:
                        self.codes = array(WIDER[self.codes.typecode], self.codes)
                self.codes.append(code)
        elif kind == "number":
            try:
                self.values.append(math.nan if value is None else float(value))
            except (TypeError, ValueError):  # as pd.to_numeric(errors="coerce")
                self.values.append(math.nan)
        elif value is None:
            self.nones.append(self.n)
            if kind is not None and kind != "object":
                self.values.append(0)
            elif kind == "object":
                self.values.append(None)
        else:
            self._add_inferred(value)
        self.n += 1

    def _add_inferred(self, value) -> None:
        kind = ("bool" if isinstance(value, bool) else "int" if isinstance(value, int) and -2**63 <= value < 2**63
                else "float" if isinstance(value, float) else "object")
        if self.kind is None:
            self._start(kind)
        elif kind != self.kind:
            wider = "float" if {kind, self.kind} <= {"int", "float"} else "object"
            if wider != self.kind:  # once: a float column takes whole numbers, an object column anything
                self._widen(wider)
        try:
            self.values.append(value)
        except OverflowError:  # a whole number beyond 32 bits: the column becomes 64-bit
            self.values = array("q", self.values)
            self.values.append(value)

    def _start(self, kind: str) -> None:
        self.kind = kind
        fill = {"int": array("q" if self.name in SEEDS else "i"), "float": array("d"), "bool": array("b"),
                "object": []}[kind]
        self.values = fill
        for row in range(self.n):  # rows before the first value were None (or absent)
            self.values.append(self._null(row) if kind == "object" else 0)

    def _widen(self, kind: str) -> None:
        if kind == "float":
            self.values = array("d", self.values)
        else:
            old, nones = self.values, set(self.nones)
            self.values = [self._null(i) if i in nones else (bool(v) if self.kind == "bool" else v)
                           for i, v in enumerate(old)]
        self.kind = kind

    def series(self) -> pd.Series:
        """The column (its builder's memory let go as it is made)."""
        if self.kind == "category":
            codes = np.frombuffer(self.codes, dtype=self.codes.typecode)
            categories = pd.Index(list(self.values)) if self.values else pd.Index([], dtype=object)
            self.codes = self.values = None
            column = pd.Categorical.from_codes(codes, categories=categories)  # codes narrowed by pandas
            # checking that the categories are unique built their hash table over a Python string each (a million
            # record ids: 200 MB kept for the table's life); the check is done, let it go (rebuilt if ever needed)
            getattr(column.categories, "_cache", {}).pop("_engine", None)
            return pd.Series(column, copy=False)
        if self.kind is None:  # None throughout
            return pd.Series([self._null(row) for row in range(self.n)], dtype=object)
        if self.kind == "object":
            values = np.empty(self.n, dtype=object)
            values[:] = self.values
            self.values = None
            return pd.Series(values, dtype=object, copy=False)
        values = np.frombuffer(self.values, dtype=self.values.typecode)  # the builder's buffer, not a copy
        self.values = None
        if self.kind == "bool":
            values = values.astype(bool)
        if self.nones:
            if self.kind == "bool":
                values = values.astype(object)
                for row in self.nones:
                    values[row] = self._null(row)
            else:
                values = values.astype(np.float64)
                values[self.nones] = np.nan
        return pd.Series(values, copy=False)  # pandas copies an array it is given unless told not to


class _Builder:
    """A table built row by row into typed columns (`_Column`): memory follows the table's numbers, not a Python
    object per row; the columns in order of first appearance, as `pd.DataFrame(rows)` has them."""

    def __init__(self):
        self.columns: dict[str, _Column] = {}
        self.n = 0

    def add(self, row: dict) -> None:
        columns = self.columns
        for name, value in row.items():
            column = columns.get(name)
            if column is None:
                column = columns[name] = _Column(name, self.n)
            column.add(value)
        self.n += 1
        if len(row) != len(columns):  # a column this row lacks (a verifier it was not scored by): NaN, as pandas
            for column in columns.values():
                if column.n < self.n:
                    column.add(math.nan)

    def frame(self) -> pd.DataFrame:
        out = {}
        for name in list(self.columns):
            out[name] = self.columns.pop(name).series()
        return pd.DataFrame(out, copy=False) if out else pd.DataFrame()  # copy=False: not consolidated (a 2nd copy)


def _tables(source, campaign, makers: dict) -> dict[str, pd.DataFrame]:
    """Tables made in one pass over the live answers: `makers` = {name: (kinds, rows_of)}, where
    `rows_of(data, attrs) -> list of rows` for each answer of its kinds. Each row goes straight into typed columns
    (`_Builder`), so a million answers never sit in memory as objects."""
    builders = {name: _Builder() for name in makers}
    attrs = {name: {} for name in makers}
    kinds = tuple(dict.fromkeys(k for wanted, _ in makers.values() for k in wanted))
    for data in live_data(source, campaign, kinds, packed=True):
        for name, (wanted, rows_of) in makers.items():
            if data["kind"] in wanted:
                builder = builders[name]
                for row in rows_of(data, attrs[name]):
                    builder.add(row)
    tables = {}
    for name in makers:
        tables[name] = builders.pop(name).frame()
        tables[name].attrs.update(attrs[name])
    return tables


def _table(source, campaign, kinds, rows_of) -> pd.DataFrame:
    return _tables(source, campaign, {"table": (kinds, rows_of)})["table"]


def _sample_rows(shared: _Shared):
    def rows_of(d: dict, attrs: dict) -> list[dict]:
        _note_verifiers(attrs, d)
        base = {**_base(d, shared.configured), "verdict": d["verdict"], "n_golden": len(d["golden_seeds"]),
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
                        **_noise_columns(sample, shared.intern)})
        return out
    return ("judgement",), rows_of


def _samples_done(table: pd.DataFrame) -> pd.DataFrame:
    table.attrs.setdefault("without_noise", 0)
    if not table.empty:
        table["seed"] = table["seed"].astype("int64")
    return table


def _candidate_rows(shared: _Shared):
    def rows_of(d: dict, attrs: dict) -> list[dict]:
        if d.get("prefilter") is None:
            return []
        base = _base(d, shared.configured)
        out = [{**base, "seed": int(s["seed"]), "shown": True, "golden": bool(s["golden"]), "slot": s.get("slot"),
                "propensity": s.get("propensity"), "rank_score": s.get("rank_score"),
                "clip_score": s.get("clip_score"), **_scores(s), **_noise_columns(s, shared.intern)} for s in d["samples"]]
        out += [{**base, "seed": int(s["seed"]), "shown": False, "golden": None, "slot": "hidden",
                 "propensity": s.get("propensity"), "rank_score": s.get("rank_score"),
                 "clip_score": s.get("clip_score"), **_scores(s), **_noise_columns(s, shared.intern)}
                for s in d["prefilter"]["hidden"]]
        return out
    return ("judgement",), rows_of


def _pair_rows(shared: _Shared):
    def rows_of(d: dict, attrs: dict) -> list[dict]:
        left, right = d["samples"]
        _note_verifiers(attrs, d)
        return [{**_base(d, shared.configured), "left_seed": int(left["seed"]), "right_seed": int(right["seed"]),
                 "winner": d["preference"]["winner"], "left_image": left.get("image_path"),
                 "right_image": right.get("image_path"), "left_clip_score": left.get("clip_score"),
                 "right_clip_score": right.get("clip_score"), **_scores(left, "left_"), **_scores(right, "right_"),
                 "left_noise": shared.intern(int(left["seed"]), left.get("noise")),
                 "right_noise": shared.intern(int(right["seed"]), right.get("noise")),
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
    return _samples_done(_table(source, campaign, *_sample_rows(_Shared())))


def candidate_table(source, campaign=...) -> pd.DataFrame:
    """Pre-filtered judgements: every candidate, shown (with its label) or hidden (label unknown)."""
    return _table(source, campaign, *_candidate_rows(_Shared()))


def pair_table(source, campaign=...) -> pd.DataFrame:
    """One row per live pairwise answer: left and right seeds, their images, scores and noises, the winner."""
    return _table(source, campaign, *_pair_rows(_Shared()))


def tables(source, campaign=...) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """`sample_table`, `pair_table` and `candidate_table` in one pass over the store (a million answers are
    decoded once, not three times)."""
    shared = _Shared()
    made = _tables(source, campaign, {"samples": _sample_rows(shared), "pairs": _pair_rows(shared),
                                      "candidates": _candidate_rows(shared)})
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
