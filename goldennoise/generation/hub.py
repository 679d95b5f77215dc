"""Talking to the Hugging Face hub and to model folders: revisions, fingerprints, progress, errors.

Kept apart from `models.py` so that `tiny.py` (which builds folders) and
`scoring.py` (CLIP) can use it without importing the pipeline loader.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

OFFLINE_HINT = " (HF_HUB_OFFLINE=1: only models already in the cache can load)"


def quiet_loading() -> None:
    """Silence the per-file progress bars diffusers and transformers print while loading."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def loud_loading() -> None:
    """Show download and loading bars (a UI with `gr.Progress(track_tqdm=True)` turns them into a progress bar)."""
    import diffusers
    import transformers

    diffusers.utils.logging.enable_progress_bar()
    transformers.utils.logging.enable_progress_bar()


def folder_fingerprint(folder: Path) -> str:
    """A content hash of a model folder's configs and weight files (sizes), for provenance."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        # Configs are hashed whole; weights by size, which is cheap for 20 GB folders.
        if path.suffix in {".json", ".txt", ".model"}:
            digest.update(path.read_bytes())
        else:
            digest.update(str(path.stat().st_size).encode())
    return "sha256:" + digest.hexdigest()[:16]


def hub_revision(repo_id: str, revision: str | None = None) -> str | None:
    """The cached snapshot's commit hash for a hub id, or None if not known."""
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(repo_id, revision=revision, local_files_only=True,
                                 allow_patterns=["model_index.json", "config.json"])
        return Path(path).name
    except Exception:  # not cached, offline: the revision is then unknown, not an error
        return None


def explain_load_error(name: str, error: Exception) -> str:
    """A message for a failed load that says what the user can do, without server paths."""
    from huggingface_hub import errors as hub_errors

    if isinstance(error, hub_errors.GatedRepoError):
        return (f"Model {name!r} is gated: accept the licence on its page at huggingface.co/{name} "
                "and set HF_TOKEN (or run `hf auth login`) on the machine running GoldenNoise.")
    if isinstance(error, hub_errors.RepositoryNotFoundError):
        return (f"Model {name!r} was not found on the hub, or it is private: check the id; for a private "
                "model set HF_TOKEN with access to it.")
    if isinstance(error, hub_errors.RevisionNotFoundError):
        return f"Model {name!r} has no such revision: check the campaign's model revision."
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    if isinstance(error, (hub_errors.LocalEntryNotFoundError, OSError)) and offline:
        return f"Model {name!r} is not in the local cache{OFFLINE_HINT}."
    first = str(error).splitlines()[0] if str(error) else type(error).__name__
    # Library messages may quote absolute paths of this machine: keep only the file names.
    words = [Path(w).name if w.startswith(("/", "~")) else w for w in first.split(" ")]
    return f"Could not load model {name!r}: {' '.join(words)[:300]}"
