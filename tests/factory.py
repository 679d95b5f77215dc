"""Valid records without a model: for store, schema and load tests."""

from __future__ import annotations

import hashlib
import json

from goldennoise.ids import new_id, utc_now
from goldennoise.store import schema


def noise_block(seed: int, fingerprint: int = 0) -> dict:
    """A noise block (not of a real draw); `fingerprint` values, if any, make it as large as real ones."""
    block = {"generator": "cpu", "dtype": "float32", "shape": [1, 4, 8, 8], "packing": "none", "scale": 1.0,
             "pipeline_dtype": "float32", "family": "sd3", "sha256": hashlib.sha256(str(seed).encode()).hexdigest()}
    if fingerprint:
        values = [((seed * 7919 + k) % 1000) / 997.0 for k in range(fingerprint)]
        block.update(latents_shape=[1, 4, 8, 8], latents_sha256="c" * 64,
                     fingerprint={"draw": values, "mean": 0.0, "std": 1.0, "latents": values[:32]})
    return block


def _shown(i: int, annotator: str, campaign: str | None, batch_id: str | None, noise, clip, n: int = 4) -> dict:
    seeds = [1000 + 4 * i + k for k in range(n)]
    noise = noise or [noise_block(s) for s in seeds]
    clip = clip or [None] * n
    return dict(record_id=new_id(), created_at=utc_now(), annotator=annotator, campaign=campaign,
                prompt={"text": f"prompt {i}", "id": f"p{i}", "index": i, "source": "t.txt"},
                model={"id": "tiny-flux", "dtype": "float32", "pipeline_class": "FluxPipeline"},
                parameters={"num_inference_steps": 4, "guidance_scale": 0.0, "height": 64, "width": 64},
                seeds=seeds, batch_id=batch_id or f"batch-{i}",
                samples=[{"seed": s, "image_path": f"images/x/{s}.png", "noise": block, "clip_score": c}
                         for s, block, c in zip(seeds, noise, clip)])


def judgement(i: int = 0, annotator: str = "ada", golden=(0,), campaign: str | None = "c-1", batch_id=None,
              noise=None, clip=None, **extra):
    data = _shown(i, annotator, campaign, batch_id, noise, clip)
    chosen = [data["seeds"][k] for k in golden]
    for sample in data["samples"]:
        sample["golden"] = sample["seed"] in chosen
    return schema.Judgement(**data, golden_seeds=chosen, bad_seeds=[s for s in data["seeds"] if s not in chosen],
                            verdict="none_golden" if not chosen else "all_golden" if len(chosen) == 4
                            else "some_golden", view="batch", **extra)


def skip(i: int = 0, annotator: str = "ada", campaign: str | None = "c-1", batch_id=None, **extra):
    return schema.Skip(**_shown(i, annotator, campaign, batch_id, None, None), view="batch", **extra)


def pairwise(i: int = 0, annotator: str = "ada", campaign: str | None = "c-1", batch_id=None, winner="left",
             **extra):
    data = _shown(i, annotator, campaign, batch_id, None, None, n=2)
    return schema.Pairwise(**data, view="pairwise", preference={"left": data["seeds"][0], "right": data["seeds"][1],
                                                                "winner": winner}, **extra)


def retraction(of, annotator: str | None = None):
    return schema.Retraction(record_id=new_id(), created_at=utc_now(), annotator=annotator or of.annotator,
                             campaign=of.campaign, prompt=of.prompt.model_dump(), retracts=of.record_id)


def with_fingerprint(draw) -> dict:
    """A judgement's JSON data whose fingerprint draw values are `draw` (valid or not)."""
    data = json.loads(json.dumps(schema.dump(judgement(0))))
    for sample in data["samples"]:
        sample["noise"].update(latents_shape=[1, 4, 8, 8], latents_sha256="c" * 64,
                               fingerprint={"draw": draw, "mean": 0.0, "std": 1.0, "latents": [0.5, -0.25]})
    return data


def rewrite(outputs, dest, edit):
    """A copy of the outputs folder `outputs` at `dest` whose records are its store's JSON lines passed through
    `edit(list of dicts) -> list of dicts or raw lines`, imported as a records.jsonl of 0.2 would be (the images
    and campaign folders are shared). Tests use it to play an edited, merged or damaged records file."""
    import shutil
    from pathlib import Path

    from goldennoise.store.records import RecordStore

    outputs, dest = Path(outputs), Path(dest)
    data = list(RecordStore(outputs).iter_data())
    dest.mkdir(parents=True, exist_ok=True)
    lines = [item if isinstance(item, str) else json.dumps(item) for item in edit(data)]
    (dest / "records.jsonl").write_text("".join(line.rstrip("\n") + "\n" for line in lines))
    for folder in ("images", "campaigns"):
        if (outputs / folder).is_dir() and not (dest / folder).exists():
            shutil.copytree(outputs / folder, dest / folder) if folder == "campaigns" else \
                (dest / folder).symlink_to((outputs / folder).resolve())
    return dest
