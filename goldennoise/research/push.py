"""Push collected data to a Hugging Face dataset repo.

    python -m goldennoise.push OUTPUTS owner/dataset-name [--private] [--dry-run]

Uploads `records.jsonl` and `images/` (and any export folders) from OUTPUTS with
`huggingface_hub.HfApi.upload_folder`; log in first with `hf auth login` or set
HF_TOKEN. `--dry-run` lists what would be uploaded without any network access.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from pathlib import Path

PATTERNS = ["records.jsonl", "images/**", "exports/**"]


def files_to_push(outputs: Path) -> list[Path]:
    """Files under `outputs` that a push uploads, relative to it."""
    found = []
    for path in sorted(outputs.rglob("*")):
        rel = path.relative_to(outputs).as_posix()
        if path.is_file() and not path.name.endswith(".tmp") and any(fnmatch.fnmatch(rel, p) for p in PATTERNS):
            found.append(Path(rel))
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outputs", type=Path)
    parser.add_argument("repo_id")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    files = files_to_push(args.outputs)
    if not (args.outputs / "records.jsonl").is_file():
        print(f"{args.outputs}: no records.jsonl here; nothing to push.", file=sys.stderr)
        return 2
    size = sum((args.outputs / f).stat().st_size for f in files)
    print(f"{len(files)} files, {size / 2**20:.1f} MiB -> dataset {args.repo_id}")
    if args.dry_run:
        for rel in files[:20]:
            print(f"  {rel}")
        return 0
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(args.repo_id, repo_type="dataset", private=args.private, exist_ok=True)
    api.upload_folder(folder_path=str(args.outputs), repo_id=args.repo_id, repo_type="dataset",
                      allow_patterns=PATTERNS, commit_message="GoldenNoise: upload records and images")
    print(f"pushed to https://huggingface.co/datasets/{args.repo_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
