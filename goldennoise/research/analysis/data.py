"""The analysis's inputs: live answers as tables, every noise re-made and verified, features in one pass.

`load` reads the store once, keeps one campaign if asked, and builds the tables of
`research.dataset`. `verify_and_featurize` then re-makes each distinct noise (one
per seed, shape, recorded hash and configuration) from its seed alone, checks the
block against its record's configuration (shape, latents shape, family, packing,
scale) and the noise against the block (exactly, or within the fingerprint
tolerance on a CPU with other kernels) and computes its features, holding one
noise at a time. A record whose noise does not match (an edited seed, a wrong
shape) is excluded from every analysis and named in the report: it is never
silently used.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from goldennoise.errors import NoiseMismatch, UserError
from goldennoise.generation.features import noise_features
from goldennoise.generation.latents import check_block, initial_noise, verify
from goldennoise.generation.noises import NoiseStore
from goldennoise.research import dataset
from goldennoise.store.records import RecordStore


NOT_ANALYSED = (*dataset.CONFIG_KEYS, "prompt_index", "n_shown", "n_golden",
                "visible_ms", "torch_version", "image_path", "family", "packing", "pipeline_dtype")  # 1M answers: 230 MB


@dataclass
class Data:
    samples: pd.DataFrame  # one row per shown seed of a live judgement, plus `weight` = 1/propensity
    pairs: pd.DataFrame
    candidates: pd.DataFrame
    features: dict[str, pd.DataFrame] = field(default_factory=dict)  # noise shape -> (seed -> features)
    verified: dataset.Verified = field(default_factory=dataset.Verified)
    excluded: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    noise_store: NoiseStore | None = None  # the outputs folder's kept noises (candidates from a noise source)


def load(outputs: Path, campaign: str | None, store=None) -> Data:
    """The tables of the store (one campaign if given); UserError when there is nothing to analyse."""
    records = store if isinstance(store, RecordStore) else RecordStore(outputs, store)
    chosen = ... if campaign is None else (None if campaign == "(none)" else campaign)
    if campaign is not None and not records.count(campaign=chosen or ""):
        known = sorted({c or "(none)" for c in records.campaigns_of()})
        raise UserError(f"campaign: no records of campaign {campaign!r} in {Path(outputs).name}/; campaigns with "
                        f"records: {', '.join(known) or 'none'}.", "campaign")
    samples, pairs, candidates = dataset.tables(records, chosen)
    if samples.empty and pairs.empty:
        raise UserError(f"outputs: nothing to analyse in {Path(outputs).name}/: no live judgements or pairwise "
                        "answers yet. Judge some batches first.", "outputs")
    if not samples.empty:
        samples["weight"] = 1.0 / samples["propensity"].astype(float).clip(lower=1e-6)
    return Data(samples, pairs, candidates, warnings=records.warnings(),
                noise_store=NoiseStore(outputs))


def verify_and_featurize(data: Data, progress=None) -> None:
    """Re-make and verify every distinct noise, compute features, drop records whose noise does not match."""
    samples = data.samples
    if samples.empty:
        return
    has_noise = samples["noise"].notna().to_numpy()
    # a candidate from a noise source shares its seed's draw hash with the plain one: its latents hash tells them apart
    key = ["seed", "noise_shape", "noise_sha256", "latents_sha256", "configuration"]
    needed = list(dict.fromkeys(key + ["noise"] + [c for c in dataset.CONFIG_KEYS if c in samples]))
    with_noise = samples.loc[has_noise, key]  # a few columns, not a copy of the whole table
    distinct = samples.loc[with_noise.index[~with_noise.duplicated().to_numpy()], needed]
    rows: dict[str, list] = defaultdict(list)
    names: dict[str, list[str]] = {}
    done, failed = set(), {}
    for count, (seed, shape, sha, latents_sha, config_id, block, config) in enumerate(zip(
            distinct["seed"], distinct["noise_shape"], distinct["noise_sha256"], distinct["latents_sha256"],
            distinct["configuration"], distinct["noise"], dataset.configurations(distinct))):
        if progress is not None and count % 50 == 0:
            progress(0.05 + 0.45 * count / max(1, len(distinct)), desc=f"Re-making noises ({count}/{len(distinct)})")
        try:
            unchecked = check_block(int(seed), block, config)  # before the draw: an edited shape allocates nothing
            noise = initial_noise(int(seed), tuple(block["shape"]))
            data.verified.counts[verify(int(seed), block, noise, store=data.noise_store).status] += 1
        except NoiseMismatch as error:
            failed[(int(seed), shape, sha, latents_sha, config_id)] = str(error)
            continue
        except (KeyError, TypeError, ValueError, RuntimeError) as error:  # a block too broken to re-make
            failed[(int(seed), shape, sha, latents_sha, config_id)] = (f"seed {seed}: cannot re-make the noise "
                                                                       f"({error.__class__.__name__})")
            continue
        data.verified.unchecked.update(unchecked)
        if block.get("source") is None and (int(seed), shape) not in done:  # features: the seeds' own draws
            features = noise_features(noise.numpy())  # one noise at a time: memory stays bounded
            names.setdefault(shape, list(features))
            rows[shape].append([int(seed), *features.values()])
            done.add((int(seed), shape))
    for shape, values in rows.items():
        table = pd.DataFrame(values, columns=["seed", *names[shape]])
        data.features[shape] = table.set_index("seed")
    # the configuration's parts were needed to check each noise; the analyses read its id and label only
    data.samples = samples = samples.drop(columns=[c for c in NOT_ANALYSED if c in samples])
    if failed:
        keys = zip(samples["seed"].astype(int), samples["noise_shape"], samples["noise_sha256"],
                   samples["latents_sha256"], samples["configuration"])
        bad_records: dict[str, str] = {}
        for record_id, key in zip(samples["record_id"], keys):
            if key in failed:
                bad_records.setdefault(record_id, failed[key])
        data.excluded = sorted(f"record {r} excluded from every analysis: {m}" for r, m in bad_records.items())
        data.samples = samples[~samples["record_id"].isin(set(bad_records))].reset_index(drop=True)


def group_tables(data: Data, pool: bool) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """"<campaign>/<configuration>" (or "pooled") -> (judgement rows, pairwise rows)."""
    judged = dataset.groups(data.samples, pool) if not data.samples.empty else {}
    paired = dataset.groups(data.pairs, pool) if not data.pairs.empty else {}
    empty = pd.DataFrame()
    return {key: (judged.get(key, empty), paired.get(key, empty)) for key in sorted(set(judged) | set(paired))}
