"""Push the Hugging Face dataset (the `hub` export, with its card) to a dataset repository.

    goldennoise push OUTPUTS owner/name [--private] [--dry-run] [--campaign-id ID] [--pool]

The dataset folder is built fresh in a temporary folder (`export(..., ["hub"])`:
live answers only, every noise checked, images embedded, the generated card) and
that folder is uploaded with `HfApi.upload_folder`, never the outputs folder: no
raw `records.jsonl` (which keeps retracted and superseded answers), no campaign,
login or upload files. Log in with `hf auth login` or set HF_TOKEN.
`--dry-run` builds the same folder and lists exactly the files that would be
uploaded (path in the repository and size), and uploads nothing.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from goldennoise.errors import UserError
from goldennoise.research.export import export

REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")


def check_repo_id(repo_id) -> str:
    if not isinstance(repo_id, str) or not REPO_ID.fullmatch(repo_id) or ".." in repo_id or repo_id.endswith(".git"):
        raise UserError(f"repo_id: {str(repo_id)[:60]!r} is not a dataset repository id like 'owner/name'.",
                        "repo_id")
    return repo_id


def files_to_push(folder: Path) -> list[tuple[str, int]]:
    """(path in the repository, bytes) of every file under `folder`, sorted."""
    return sorted((p.relative_to(folder).as_posix(), p.stat().st_size) for p in folder.rglob("*") if p.is_file())


def push(outputs: str | Path, repo_id: str, private: bool = False, dry_run: bool = False,
         campaign: str | None = None, pool: bool = False, api=None, store=None) -> int:
    """Build the dataset folder of `outputs` and upload it to the dataset `repo_id`; returns an exit status.

    `api` stands in for `huggingface_hub.HfApi()` (tests pass a fake). Raises UserError for a bad
    repository id or nothing to push.
    """
    repo_id = check_repo_id(repo_id)
    with tempfile.TemporaryDirectory(prefix="goldennoise-push-") as tmp:
        result = export(outputs, tmp, ["hub"], campaign=campaign, pool=pool, repo_id=repo_id, store=store)
        folder = result["written"]["hub"]
        files = files_to_push(folder)
        for warning in result["warnings"]:
            print(f"warning: {warning}")
        print(f"{len(files)} files, {sum(size for _, size in files) / 2**20:.2f} MiB -> dataset {repo_id}"
              f"{' (private)' if private else ''}")
        for path, size in files:
            print(f"  {path}  {size} bytes")
        if dry_run:
            print("dry run: nothing uploaded")
            return 0
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi()
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset",
                          commit_message=f"GoldenNoise dataset: {len(files)} files")
    print(f"pushed to https://huggingface.co/datasets/{repo_id}")
    return 0
