"""A pre-filtered campaign with a known truth: records written with real noise blocks, every candidate labelled.

The collider that a CLIP pre-filter builds: a noise feature that raises the CLIP
score but means nothing to people (`clip_feature`, channel 0's mean) and a feature
that people do prefer (`label_feature`, channel 1's mean, which CLIP sees only
through the image's quality). Per prompt, `candidates` seeds are drawn; each gets
its real float32 draw (tiny-flux at 64x64: (1, 4, 8, 8), 29 features) and its
provenance block (`latents.provenance`, as the app records it), then (z: a channel mean
over its SD, 1/8)

    quality = label_effect * z(label_feature) + N(0, 1)
    clip    = 25 + 2 * (clip_effect * z(clip_feature) + quality + N(0, clip_noise))
    golden  = prompt effect N(0, 0.5) + quality + N(0, golden_noise) > threshold

`prefilter.choose` (the app's own code) shows the top `shown - explore` by CLIP and
`explore` drawn from the rest, with their propensities; the record keeps the hidden
candidates. Among the shown seeds, a high `clip_feature` stands in for quality, so
it looks *bad* to people (selection on a common effect): over all candidates it
is unrelated to the label. `truth` holds every candidate, hidden ones included,
with its label: what the analysis should recover from the shown ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from goldennoise.generation import latents, prefilter
from goldennoise.generation.batch import Batch
from goldennoise.generation.features import noise_features
from goldennoise.ids import new_id, utc_now
from goldennoise.store import schema
from goldennoise.store.records import RecordStore

SHAPE = (1, 4, 8, 8)  # tiny-flux (in_channels 16 / 4) at 64x64: 2 * (64 // 16)
MODEL = {"id": "tiny-flux", "name": "tiny-flux", "dtype": "float32", "pipeline_class": "FluxPipeline",
         "device": "cpu"}
PARAMETERS = {"num_inference_steps": 4, "guidance_scale": 0.0, "height": 64, "width": 64}
CAMPAIGN = "collider-0123456789"


@dataclass
class Campaign:
    outputs: Path
    truth: pd.DataFrame  # one row per candidate: prompt_id, seed, shown, golden, clip_score, the 29 features


def simulate(outputs: Path, prompts: int = 80, candidates: int = 16, shown: int = 8, explore: int = 1,
             clip_effect: float = 1.0, label_effect: float = 0.6, clip_noise: float = 0.3, golden_noise: float = 0.3,
             threshold: float = 1.1, seed: int = 0,
             clip_feature: str = "ch0_mean", label_feature: str = "ch1_mean") -> Campaign:
    """Write one annotator's judgements of every prompt to `outputs/records.jsonl`; return them and the truth."""
    rng = np.random.default_rng(seed)
    store = RecordStore(outputs)
    lay = latents.Layout("flux1", SHAPE, 1.0)
    mean_sd = 1 / np.sqrt(np.prod(SHAPE[2:]))  # a channel mean of i.i.d. N(0, 1) values
    truth = []
    seeds = rng.choice(2**40, prompts * candidates, replace=False).reshape(prompts, candidates)
    for p in range(prompts):
        draws = [latents.initial_noise(int(s), SHAPE) for s in seeds[p]]
        feats = pd.DataFrame([noise_features(d.numpy()) for d in draws])
        quality = label_effect * feats[label_feature].to_numpy() / mean_sd + rng.normal(size=candidates)
        clip = 25 + 2 * (clip_effect * feats[clip_feature].to_numpy() / mean_sd + quality
                         + rng.normal(0, clip_noise, candidates))
        golden = rng.normal(0, 0.5) + quality + rng.normal(0, golden_noise, candidates) > threshold
        batch_id = f"collider-{seed}-{p}"
        batch = Batch(batch_id=batch_id, prompt=f"prompt {p}", prompt_id=f"p{p}", seeds=[int(s) for s in seeds[p]],
                      image_paths=[f"images/{batch_id}/{s}.png" for s in seeds[p]],
                      clip_scores=[float(c) for c in clip],
                      noise=[latents.provenance(int(s), d, lay, torch.float32) for s, d in zip(seeds[p], draws)],
                      model=MODEL, parameters=PARAMETERS, clip_model=None, generation_seconds=0.0,
                      scoring_seconds=0.0, saving_seconds=0.0, created_at=utc_now(), campaign=CAMPAIGN)
        chosen = prefilter.choose(batch, shown, "clip", None, explore)
        label = dict(zip(batch.seeds, golden))
        good = [s for s in chosen.seeds if label[s]]
        store.append(schema.Judgement(
            record_id=new_id(), created_at=utc_now(), annotator="ann", campaign=CAMPAIGN,
            prompt={"text": batch.prompt, "id": batch.prompt_id, "index": p, "source": "collider.txt"},
            model=MODEL, parameters=PARAMETERS, seeds=chosen.seeds, golden_seeds=good,
            bad_seeds=[s for s in chosen.seeds if not label[s]],
            verdict="none_golden" if not good else "all_golden" if len(good) == shown else "some_golden",
            samples=[{"seed": s, "golden": bool(label[s]), "clip_score": c, "image_path": i, "noise": n, **slot}
                     for s, c, i, n, slot in zip(chosen.seeds, chosen.clip_scores, chosen.image_paths, chosen.noise,
                                                 chosen.slots)],
            seed_strategy={"name": "random"}, batch_id=batch_id, prefilter=chosen.prefilter, shown_scores=False))
        shown_seeds = set(chosen.seeds)
        truth.append(feats.assign(prompt_id=f"p{p}", seed=seeds[p].astype("int64"), golden=golden, clip_score=clip,
                                  shown=[int(s) in shown_seeds for s in seeds[p]]))
    return Campaign(Path(outputs), pd.concat(truth, ignore_index=True))


def truth_correlations(truth: pd.DataFrame) -> pd.DataFrame:
    """Per feature, Pearson r with the answer over every candidate, and its p (scipy): what nothing filtered shows."""
    from scipy.stats import pearsonr

    y = truth["golden"].astype(float).to_numpy()
    features = truth.drop(columns=["prompt_id", "seed", "golden", "clip_score", "shown"])
    tests = [pearsonr(features[name].to_numpy(), y) for name in features.columns]
    return pd.DataFrame({"r": [t.statistic for t in tests], "p_value": [t.pvalue for t in tests]},
                        index=features.columns)
