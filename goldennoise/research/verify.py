"""Re-make every recorded noise from its seed and check it against its record.

    goldennoise verify OUTPUTS

Every seed of every answer (judgements, pairwise answers, skips; the hidden
candidates of a pre-filter too; retracted answers included, since their noise
was recorded all the same) is re-drawn on a CPU generator and compared with its
record's noise block (`generation.latents.verify`):
- exact: the float32 draw and the initial latents hash to the recorded sha256s;
- tolerance: they do not (another CPU's kernels: AVX2 and plain differ by ~1e-6),
  but the fingerprint (fixed-position values and moments) agrees within the
  documented tolerance, which no other seed, shape or packing can meet;
- mismatch: neither, or the block does not fit its record's configuration (checked first, since
  a hash over raw bytes cannot see a shape re-read: the shape, latents shape, family, packing and
  scale the pipeline class, size and model imply; see `latents.check_block`): a wrong seed, shape
  or record. The exit status is then 1; what could not be checked (a model whose config is not on
  this machine) is printed;
- missing: the record has no noise block (nothing to check).
A line of an imported records.jsonl that cannot be read as a record (hand-edited,
torn) is skipped everywhere, so its noises cannot be verified: `verify` names it and
exits 1 too, rather than pass a file it could not check whole; a line repeating a
record already read (a copied or merged file) counts once everywhere, and `verify`
reports it and exits 1 as well.
`checked` gives the exports the live answers with every noise checked, split by
(campaign, generation configuration): a record with any mismatched noise is left
out of every export and listed, never exported with the wrong noise.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from goldennoise.errors import NoiseMismatch, UserError
from goldennoise.generation.latents import initial_noise, made_noise, verify
from goldennoise.generation.noises import NoiseStore
from goldennoise.ids import slug
from goldennoise.research import dataset
from goldennoise.store.records import RecordStore

STATUSES = ("exact", "tolerance", "mismatch", "missing")
NO_CAMPAIGN = "(none)"  # dataset tables' campaign for records made without one


class Checker:
    """Verifies (seed, noise block, configuration) triples, each distinct one once; remembers why a mismatch failed
    and what the configuration check could not check (`unchecked`: reason -> distinct noises)."""

    def __init__(self, store: NoiseStore | None = None):
        self.store = store  # the outputs folder's kept noises, for candidates from a noise source
        self._seen: dict[str, tuple[str, str | None]] = {}  # key -> (status, reason)
        self._passed: set[str] = set()  # keys of (seed, block) that verified under their configuration
        self.unchecked: Counter = Counter()

    @staticmethod
    def _key(seed: int, block: dict, configuration: dict | None = None) -> str:
        text = json.dumps([int(seed), block, configuration], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def check(self, seed: int, block, configuration: dict | None = None) -> tuple[str, str | None]:
        """(status, reason): status one of STATUSES; reason says why for a mismatch. `configuration`: the record's
        (`dataset.configuration`), which the block's shape, latents shape, family, packing and scale must fit."""
        if block is None:
            return "missing", "the record has no noise block"
        block = block if isinstance(block, dict) else block.model_dump()
        key = self._key(seed, block, configuration)
        if key not in self._seen:
            try:
                result = verify(int(seed), block, configuration=configuration, store=self.store)
                self._seen[key] = (result.status, None)
                self._passed.add(self._key(seed, block))
                self.unchecked.update(result.unchecked)
            except NoiseMismatch as error:
                self._seen[key] = ("mismatch", str(error))
            except (KeyError, TypeError, ValueError, RuntimeError) as error:  # a block too broken to re-make
                self._seen[key] = ("mismatch", f"seed {seed}: cannot re-make the noise ({error.__class__.__name__})")
        return self._seen[key]

    def noise(self, seed: int, block: dict) -> np.ndarray:
        """The float32 noise `(1, C, h, w)` a block that `check` passed started from: its seed's draw, or the kept
        noise of its source."""
        if self._key(seed, block) not in self._passed:
            status, reason = self.check(seed, block)
            if status not in ("exact", "tolerance"):
                raise NoiseMismatch(reason or f"seed {seed}: no verified noise")
        if block.get("source") is not None:
            return made_noise(int(seed), block, self.store).numpy()
        return initial_noise(int(seed), tuple(block["shape"])).numpy()


def _samples(record) -> list:
    """Every seed's sample in a record: shown, then the pre-filter's hidden candidates."""
    hidden = record.prefilter.hidden if getattr(record, "prefilter", None) is not None else []
    return list(getattr(record, "samples", [])) + list(hidden)


def check_outputs(outputs: str | Path, checker: Checker | None = None, store=None) -> dict:
    """Counts per campaign ({campaign: Counter(status)}), mismatches, and the store's warnings; the records are
    streamed from the store (a million of them are never in memory at once)."""
    records = store if isinstance(store, RecordStore) else RecordStore(outputs, store)
    checker = checker or Checker(NoiseStore(outputs))
    counts: dict[str, Counter] = defaultdict(Counter)
    mismatches = []
    for data in records.iter_data(kinds=("judgement", "pairwise", "skip")):  # retractions have no noise
        config = dataset.configuration(data)
        hidden = (data.get("prefilter") or {}).get("hidden") or []
        for sample in list(data.get("samples") or []) + list(hidden):
            status, reason = checker.check(sample["seed"], sample.get("noise"), config)
            counts[data.get("campaign") or NO_CAMPAIGN][status] += 1
            if status == "mismatch":
                mismatches.append({"record_id": data["record_id"], "campaign": data.get("campaign"),
                                   "seed": int(sample["seed"]), "reason": reason})
    return {"counts": dict(counts), "mismatches": mismatches, "warnings": records.warnings(),
            "unchecked": dict(checker.unchecked)}


def plain(text, limit: int = 80) -> str:
    """A user string fit for a terminal line: printable characters only, bounded."""
    text = "".join(c if c.isprintable() else "?" for c in str(text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


# The exports' data ------------------------------------------------------------------------------


def group_name(campaign: str, configuration: str) -> str:
    """A folder and config name for (campaign, configuration): `[a-z0-9-]`, at most 73 characters.

    Campaign ids are already slugs with a hash; any other text is slugged and hashed.
    """
    if campaign == NO_CAMPAIGN:
        part = "no-campaign"
    elif re.fullmatch(r"[a-z0-9][a-z0-9-]{0,59}", campaign):
        part = campaign
    else:
        part = f"{slug(campaign, 40)}-{hashlib.sha256(campaign.encode()).hexdigest()[:8]}"
    if not re.fullmatch(r"[0-9a-f]{12}", configuration):
        configuration = hashlib.sha256(configuration.encode()).hexdigest()[:12]
    return f"{part}-{configuration}"


@dataclass
class Group:
    """One (campaign, configuration)'s rows, or all rows when pooled."""

    name: str
    samples: pd.DataFrame
    pairs: pd.DataFrame
    candidates: pd.DataFrame


@dataclass
class Checked:
    """The live answers of an outputs folder, every noise checked; records with a mismatch left out."""

    outputs: Path
    record_counts: dict  # answers recorded, retracted, superseded, live (the store's counts, for the card)
    samples: pd.DataFrame  # dataset.sample_table + noise_check, image_file, torch_version
    pairs: pd.DataFrame  # dataset.pair_table + the same
    candidates: pd.DataFrame  # dataset.candidate_table (pre-filtered judgements) + noise_check
    excluded: list[dict]  # {record_id, seed, reason}: left out of every export
    statuses: Counter  # how the kept noises were verified
    warnings: list[str]
    checker: Checker = field(default_factory=Checker)
    pool: bool = False

    def groups(self) -> dict[str, Group]:
        """name -> Group, split by (campaign, configuration) unless pooled; names sorted."""
        if self.pool:
            return {"pooled": Group("pooled", self.samples, self.pairs, self.candidates)}
        keys = set()
        for table in (self.samples, self.pairs, self.candidates):
            if not table.empty:
                keys |= set(zip(table["campaign"], table["configuration"]))
        found = {}
        for campaign, configuration in sorted(keys):
            parts = [t if t.empty or len(keys) == 1 else  # one group: the tables themselves, not copies of them
                     t[(t["campaign"] == campaign) & (t["configuration"] == configuration)].reset_index(drop=True)
                     for t in (self.samples, self.pairs, self.candidates)]
            name = group_name(campaign, configuration)
            found[name] = Group(name, *parts)
        return found


def image_file(outputs: Path, relative) -> Path | None:
    """The image a record points to, only if it is a file inside `outputs` (a record is not trusted)."""
    if not isinstance(relative, str) or not relative:
        return None
    root = outputs.resolve()
    target = (root / relative).resolve()
    return target if root in target.parents and target.is_file() else None


def _image_files(outputs: Path):
    """A column's image files (`image_file` per distinct path, once: a million rows share few images)."""
    def files(column: pd.Series) -> pd.Series:
        found = {p: image_file(outputs, p) for p in pd.unique(column)}
        return pd.Series([None if found[p] is None else str(found[p]) for p in column], dtype="category")
    return files


def _check_column(table: pd.DataFrame, checker: Checker, seed: str, noise: str, bad: dict) -> list[str]:
    statuses = []
    configs = dataset.configurations(table)
    known: dict[tuple, tuple[str, str | None]] = {}  # the table's rows share one block per noise, one dict per
    for record_id, s, block, config in zip(table["record_id"], table[seed], table[noise], configs):  # configuration
        same = (int(s), id(block), id(config))  # the objects live through the loop: their ids name them
        if same not in known:
            known[same] = checker.check(int(s), block, config)
        status, reason = known[same]
        if status == "mismatch":
            bad.setdefault(record_id, {"record_id": record_id, "seed": int(s), "reason": reason})
        statuses.append(status)
    return statuses


def _worst(a: str, b: str) -> str:
    return max(a, b, key=STATUSES.index)


MAX_MILLISECONDS = 7 * 86_400_000  # a week: anything longer is not a viewing time


def _milliseconds(value) -> int | None:
    """A whole number of milliseconds, or None: `timing` is a free dict in the schema (pandas makes ints floats)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError):
        return None
    return int(number) if np.isfinite(number) and number.is_integer() and 0 <= number <= MAX_MILLISECONDS else None


def _milliseconds_column(column: pd.Series) -> pd.Series:
    """`_milliseconds` of every cell, as objects (whole numbers or None); a number column is done at once, each
    distinct value one Python int (a million rows share a few thousand)."""
    if not pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
        return pd.Series([_milliseconds(v) for v in column], dtype=object, index=column.index)
    values = column.to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(values) & (values == np.floor(values)) & (values >= 0) & (values <= MAX_MILLISECONDS)
    out = np.full(len(values), None, dtype=object)
    distinct, which = np.unique(values[ok], return_inverse=True)
    objects = np.empty(len(distinct), dtype=object)
    objects[:] = [int(v) for v in distinct]
    out[ok] = objects[which]
    return pd.Series(out, dtype=object, index=column.index, copy=False)


def checked(outputs: str | Path, campaign: str | None = None, pool: bool = False, store=None) -> Checked:
    """The live answers of `outputs` (one campaign if given), each noise re-made and checked.

    Raises UserError when there is nothing to export.
    """
    outputs = Path(outputs)
    records = store if isinstance(store, RecordStore) else RecordStore(outputs, store)
    chosen = ... if campaign is None else (None if campaign == NO_CAMPAIGN else campaign)
    if campaign is not None and not records.count(campaign=chosen or ""):
        known = sorted({plain(c or NO_CAMPAIGN, 60) for c in records.campaigns_of()})
        raise UserError(f"campaign: no records of {plain(campaign, 60)!r}; known: {', '.join(known) or 'none'}.",
                        "campaign")
    samples, pairs, candidates = dataset.tables(records, chosen)
    if samples.empty and pairs.empty:
        raise UserError(f"{outputs.name or outputs}: no live judgements or pairwise answers to export.", "outputs")
    checker, bad = Checker(NoiseStore(outputs)), {}
    if not samples.empty:
        samples["noise_check"] = _check_column(samples, checker, "seed", "noise", bad)
    if not candidates.empty:
        candidates["noise_check"] = _check_column(candidates, checker, "seed", "noise", bad)
    if not pairs.empty:
        left = _check_column(pairs, checker, "left_seed", "left_noise", bad)
        right = _check_column(pairs, checker, "right_seed", "right_noise", bad)
        pairs["noise_check"] = [_worst(a, b) for a, b in zip(left, right)]
    kept = []
    for table in (samples, pairs, candidates):
        if not table.empty:
            if bad:
                table = table[~table["record_id"].isin(bad)].reset_index(drop=True)
            table["visible_ms"] = _milliseconds_column(table["visible_ms"])
        kept.append(table)
    samples, pairs, candidates = kept
    warnings = records.warnings()
    missing = 0
    files = _image_files(outputs)
    if not samples.empty:
        samples["image_file"] = files(samples["image_path"])
        missing += int(samples["image_file"].isna().sum())
    if not pairs.empty:
        pairs["left_file"], pairs["right_file"] = files(pairs["left_image"]), files(pairs["right_image"])
        missing += int(pairs["left_file"].isna().sum() + pairs["right_file"].isna().sum())
    if missing:
        warnings.append(f"{missing} image(s) missing or outside the outputs folder: exported without their image.")
    statuses = Counter()
    for table, column in ((samples, "noise_check"), (pairs, "noise_check")):
        if not table.empty:
            statuses.update(table[column])
    if bad:
        warnings.append(f"{len(bad)} record(s) left out: a recorded noise does not match its seed or its "
                        "configuration (run `goldennoise verify` for details).")
    warnings += [f"{n} noise(s) verified without checking their {reason}" for reason, n in checker.unchecked.items()]
    return Checked(outputs, records.answer_counts(chosen), samples, pairs, candidates, list(bad.values()), statuses,
                   warnings, checker, pool)


def main(outputs: str | Path, store: str | None = None) -> int:
    """Print exact / tolerance / mismatch / missing counts per campaign; 1 on any mismatch or unreadable line,
    2 on no records."""
    outputs = Path(outputs)
    records = RecordStore(outputs, store)
    if not records.count():
        print(f"goldennoise verify: no records in {records.describe()}", file=sys.stderr)
        return 2
    report = check_outputs(outputs, store=records)
    for warning in report["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    duplicates = [w for w in report["warnings"] if "duplicate of record" in w]
    unreadable = [w for w in report["warnings"] if " skipped" in w and w not in duplicates]
    if unreadable:
        print(f"UNREADABLE: {len(unreadable)} line(s) of an imported records.jsonl are not valid records, so their "
              "noises were not verified (see the warnings above)", file=sys.stderr)
    if duplicates:
        print(f"DUPLICATE: {len(duplicates)} line(s) of an imported records.jsonl repeat a record already read; "
              "each record counts once (a copied or merged file?)", file=sys.stderr)
    if not report["counts"]:
        print("no recorded noises to verify")
        return 1 if unreadable or duplicates else 0
    for campaign, counts in sorted(report["counts"].items()):
        print(f"{plain(campaign)}: " + ", ".join(f"{counts[s]} {s}" for s in STATUSES))
    for bad in report["mismatches"]:
        print(f"MISMATCH record {bad['record_id']} seed {bad['seed']}: {bad['reason']}", file=sys.stderr)
    for reason, n in sorted(report["unchecked"].items()):
        print(f"not checked against the configuration for {n} noise(s): {reason}")
    if any(c["tolerance"] for c in report["counts"].values()):
        print("tolerance: recorded on a CPU with other kernels; the fingerprint agrees within "
              "the documented tolerance (see generation/latents.py).")
    return 1 if report["mismatches"] or unreadable or duplicates else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]) if len(sys.argv) == 2 else 2)
