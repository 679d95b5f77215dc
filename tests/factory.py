"""Valid records without a model: for store, schema and load tests."""

from __future__ import annotations

import hashlib

from goldennoise.ids import new_id, utc_now
from goldennoise.store import schema


def noise_block(seed: int) -> dict:
    return {"generator": "cpu", "dtype": "float32", "shape": [1, 4, 8, 8], "packing": "none", "scale": 1.0,
            "pipeline_dtype": "float32", "family": "sd3",
            "sha256": hashlib.sha256(str(seed).encode()).hexdigest()}


def judgement(i: int = 0, annotator: str = "ada", golden=(0,), campaign: str | None = "c-1", **extra):
    seeds = [1000 + 4 * i + k for k in range(4)]
    chosen = [seeds[k] for k in golden]
    return schema.Judgement(
        record_id=new_id(), created_at=utc_now(), annotator=annotator, campaign=campaign,
        prompt={"text": f"prompt {i}", "id": f"p{i}", "index": i, "source": "t.txt"},
        model={"id": "tiny-flux", "dtype": "float32", "pipeline_class": "FluxPipeline"},
        parameters={"num_inference_steps": 4, "guidance_scale": 0.0, "height": 64, "width": 64},
        seeds=seeds, golden_seeds=chosen, bad_seeds=[s for s in seeds if s not in chosen],
        verdict="none_golden" if not chosen else "all_golden" if len(chosen) == 4 else "some_golden",
        samples=[{"seed": s, "golden": s in chosen, "image_path": f"images/x/{s}.png", "noise": noise_block(s)}
                 for s in seeds], **extra)


def retraction(of, annotator: str | None = None):
    return schema.Retraction(record_id=new_id(), created_at=utc_now(), annotator=annotator or of.annotator,
                             campaign=of.campaign, prompt=of.prompt.model_dump(), retracts=of.record_id)
