"""Batches kept on disk, one per prompt of a campaign: made live by the app or ahead by `goldennoise generate`.

    <outputs>/campaigns/<campaign id>/batches/<key>.json     (key: a hash of the prompt id)

A batch file is written (temp file + rename) only after all its images exist, so
its presence is the atomic mark that the batch is complete: a killed run leaves
no file and the prompt is simply made again (in a new folder, never over an image
a record points to). Readers never see half a batch. The app shows a stored batch
instead of generating, so a campaign pre-generated on GPU machines is labelled on
a machine without one; every annotator of an overlap prompt sees the same batch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path

from goldennoise.generation.batch import Batch

BATCHES_DIR = "batches"


def key(prompt_id: str) -> str:
    return hashlib.sha256(prompt_id.encode()).hexdigest()[:24]


class BatchStore:
    def __init__(self, campaign_folder: str | Path):
        self.folder = Path(campaign_folder) / BATCHES_DIR

    def path(self, prompt_id: str) -> Path:
        return self.folder / f"{key(prompt_id)}.json"

    def get(self, prompt_id: str) -> Batch | None:
        try:
            data = json.loads(self.path(prompt_id).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if data.get("prompt_id") != prompt_id:
            return None
        return Batch(**{**data, "source": "pregenerated"})

    def put(self, batch: Batch) -> None:
        """Store a finished batch (its images are already on disk); first writer wins."""
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.path(batch.prompt_id)
        fd, tmp = tempfile.mkstemp(suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(dataclasses.asdict(batch), handle, ensure_ascii=False)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, target)  # atomic and never replaces: a batch, once stored, is the batch
            except FileExistsError:
                pass
        finally:
            Path(tmp).unlink(missing_ok=True)

    def prompt_ids(self) -> list[str]:
        ids = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                ids.append(json.loads(path.read_text(encoding="utf-8"))["prompt_id"])
            except (OSError, ValueError, KeyError):
                continue
        return ids

    def count(self) -> int:
        return len(list(self.folder.glob("*.json"))) if self.folder.is_dir() else 0
