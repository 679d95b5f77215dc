"""The generation configuration of a record: what makes two noises' images comparable.

Two judgements can be pooled only when the same model (id and revision, pipeline
class), dtype, size, steps, guidance and scheduler made their images; every
table, analysis, selector and export is keyed by this configuration's id.
"""

from __future__ import annotations

import hashlib
import json


def configuration(model: dict, parameters: dict) -> dict:
    """The configuration of a model info block and a parameters block (records' `model`, `parameters`)."""
    return {"model_id": model.get("id") or model.get("name"), "revision": model.get("revision"),
            "pipeline_class": model.get("pipeline_class"), "dtype": model.get("dtype"),
            "height": parameters.get("height"), "width": parameters.get("width"),
            "num_inference_steps": parameters.get("num_inference_steps"),
            "guidance_scale": parameters.get("guidance_scale"), "scheduler": parameters.get("scheduler"),
            "max_sequence_length": parameters.get("max_sequence_length")}


def configuration_id(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def configuration_label(config: dict) -> str:
    return (f"{config['model_id']} {config['dtype']} {config['width']}x{config['height']} "
            f"{config['num_inference_steps']} steps g{config['guidance_scale']}"
            + (f" {config['scheduler']}" if config["scheduler"] else ""))


SELECTORS_DIR = "analysis/selectors"


def selector_path(outputs, config_id: str):
    """Where the analysis saves the seed selector of a configuration, and where a campaign finds it."""
    from pathlib import Path

    return Path(outputs) / SELECTORS_DIR / f"{config_id}.json"
