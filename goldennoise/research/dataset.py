"""The records as analysis data: tables of live answers, keyed by campaign and generation configuration.

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

from goldennoise.generation.latents import check_block, initial_noise, verify
from goldennoise.store.configuration import configuration as store_configuration
from goldennoise.store.configuration import configuration_id, configuration_label  # noqa: F401
from goldennoise.store.live import live

CONFIG_KEYS = ("model_id", "revision", "pipeline_class", "dtype", "height", "width", "num_inference_steps",
               "guidance_scale", "scheduler", "max_sequence_length")


def configuration(record) -> dict:
    """The generation configuration of a record: what makes two noises' images comparable."""
    return store_configuration(record.model.model_dump(), record.parameters.model_dump())


def configurations(table: pd.DataFrame) -> list[dict] | list[None]:
    """Each row's generation configuration (CONFIG_KEYS) as the plain dict `latents.check_block` takes; None per
    row for a table without those columns."""
    keys = [k for k in CONFIG_KEYS if k in table]
    if not keys:
        return [None] * len(table)
    return [{k: (None if v is None or v != v else v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
            for row in table[keys].to_dict("records")]


def _base(record) -> dict:
    config = configuration(record)
    return {"record_id": record.record_id, "created_at": record.created_at, "annotator": record.annotator,
            "campaign": record.campaign or "(none)", "configuration": configuration_id(config),
            "configuration_label": configuration_label(config), **config,
            "prompt_id": record.prompt.id, "prompt": record.prompt.text, "prompt_index": record.prompt.index,
            "seed_strategy": record.seed_strategy.get("name"), "n_shown": len(record.seeds),
            "visible_ms": record.timing.get("visible_ms"), "shown_scores": record.shown_scores,
            "batch_id": record.batch_id}


def _noise_columns(sample) -> dict:
    n = sample.noise
    return {"noise_shape": "x".join(map(str, n.shape)) if n else None, "family": n.family if n else None,
            "packing": n.packing if n else None, "pipeline_dtype": n.pipeline_dtype if n else None,
            "noise_sha256": n.sha256 if n else None, "latents_sha256": n.latents_sha256 if n else None,
            "noise": n.model_dump() if n else None}


def sample_table(records: list) -> pd.DataFrame:
    """One row per seed shown in a live judgement (retractions and relabels applied).

    Samples recorded without a noise block (schema-1 lines written by hand, say) cannot be
    re-made: they are left out, and `table.attrs["without_noise"]` counts them.
    """
    rows, without = [], 0
    for record in live(records):
        if record.kind != "judgement":
            continue
        base = {**_base(record), "verdict": record.verdict, "n_golden": len(record.golden_seeds),
                "prefiltered": record.prefilter is not None, "second_opinion_of": record.second_opinion_of}
        for position, sample in enumerate(record.samples):
            if sample.noise is None:
                without += 1
                continue
            rows.append({**base, "seed": int(sample.seed), "position": position, "golden": bool(sample.golden),
                         "clip_score": sample.clip_score, "image_path": sample.image_path,
                         "slot": sample.slot or "shown", "propensity": 1.0 if sample.propensity is None
                         else sample.propensity, "rank_score": sample.rank_score, **_noise_columns(sample)})
    table = pd.DataFrame(rows)
    if not table.empty:
        table["seed"] = table["seed"].astype("int64")
    table.attrs["without_noise"] = without
    return table


def candidate_table(records: list) -> pd.DataFrame:
    """Pre-filtered judgements: every candidate, shown (with its label) or hidden (label unknown)."""
    rows = []
    for record in live(records):
        if record.kind != "judgement" or record.prefilter is None:
            continue
        base = _base(record)
        for sample in record.samples:
            rows.append({**base, "seed": int(sample.seed), "shown": True, "golden": bool(sample.golden),
                         "slot": sample.slot, "propensity": sample.propensity, "rank_score": sample.rank_score,
                         "clip_score": sample.clip_score, **_noise_columns(sample)})
        for sample in record.prefilter.hidden:
            rows.append({**base, "seed": int(sample.seed), "shown": False, "golden": None, "slot": "hidden",
                         "propensity": sample.propensity, "rank_score": sample.rank_score,
                         "clip_score": sample.clip_score, **_noise_columns(sample)})
    return pd.DataFrame(rows)


def pair_table(records: list) -> pd.DataFrame:
    """One row per live pairwise answer: left and right seeds, their images, scores and noises, the winner."""
    rows = []
    for record in live(records):
        if record.kind != "pairwise":
            continue
        left, right = record.samples
        rows.append({**_base(record), "left_seed": int(left.seed), "right_seed": int(right.seed),
                     "winner": record.preference.winner, "left_image": left.image_path,
                     "right_image": right.image_path, "left_clip_score": left.clip_score,
                     "right_clip_score": right.clip_score, "left_noise": left.noise.model_dump() if left.noise else None,
                     "right_noise": right.noise.model_dump() if right.noise else None,
                     "noise_shape": "x".join(map(str, left.noise.shape)) if left.noise else None})
    return pd.DataFrame(rows)


def groups(table: pd.DataFrame, pool: bool = False) -> dict[str, pd.DataFrame]:
    """The table split by (campaign, configuration): "<campaign>/<configuration>" -> rows; one group if `pool`."""
    if table.empty:
        return {}
    if pool:
        return {"pooled": table.reset_index(drop=True)}
    return {f"{campaign}/{config}": part.reset_index(drop=True)
            for (campaign, config), part in table.groupby(["campaign", "configuration"], sort=True)}


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
           seed_column: str = "seed") -> Iterator[np.ndarray]:
    """Each row's float32 draw `(1, C, h, w)`, re-made from its record and verified (against the row's
    configuration too), one at a time."""
    for seed, block, config in zip(table[seed_column], table[column], configurations(table)):
        check_block(int(seed), block, config)
        noise = initial_noise(int(seed), tuple(block["shape"]))
        result = verify(int(seed), block, noise)
        if verified is not None:
            verified.counts[result.status] += 1
        yield noise.numpy()


def load_noises(table: pd.DataFrame, verified: Verified | None = None) -> np.ndarray:
    """All rows' draws stacked `(n, 1, C, h, w)` (for small tables; `noises` streams)."""
    return np.stack(list(noises(table, verified)))
