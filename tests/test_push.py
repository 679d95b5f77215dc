"""`goldennoise push`: the built dataset folder goes up, never the raw outputs; --dry-run lists exactly that."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from goldennoise import cli
from goldennoise.errors import UserError
from goldennoise.research import push
from tests.test_export import corpus  # noqa: F401  (the shared outputs folder)


class FakeApi:
    """Records the calls `push` makes, and what the folder held when `upload_folder` was called."""

    def __init__(self):
        self.calls = []
        self.uploaded: dict[str, bytes] = {}

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, folder_path, repo_id, **kwargs):
        self.calls.append(("upload_folder", repo_id, kwargs))
        folder = Path(folder_path)
        self.uploaded = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def listed(out: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^  (\S+)  (\d+) bytes$", out, re.MULTILINE)}


def test_dry_run_lists_exactly_what_push_uploads(corpus, capsys):  # noqa: F811
    idle = FakeApi()
    assert push.push(corpus, "someone/golden-noise", dry_run=True, api=idle) == 0
    dry = listed(capsys.readouterr().out)
    assert idle.calls == []  # nothing uploaded, no repository made
    api = FakeApi()
    assert push.push(corpus, "someone/golden-noise", private=True, api=api) == 0
    assert [c[0] for c in api.calls] == ["create_repo", "upload_folder"]
    assert api.calls[0][2]["private"] is True and api.calls[0][2]["repo_type"] == "dataset"
    assert api.calls[1][2]["repo_type"] == "dataset"
    assert dry == {path: len(data) for path, data in api.uploaded.items()}
    assert "README.md" in dry and any(p.startswith("data/samples-") and p.endswith(".parquet") for p in dry)
    assert not any(p.endswith((".jsonl", ".lock", ".toml", ".json")) or "campaigns" in p or "images/" in p
                   for p in dry)  # no raw records, campaigns, images folder or store files
    card = api.uploaded["README.md"].decode()
    assert 'load_dataset("someone/golden-noise"' in card


def test_push_refuses_bad_repo_ids_and_empty_outputs(corpus, tmp_path):  # noqa: F811
    for repo_id in ("no-owner", "../x/y", "a/b/c", "owner/", "o/" + "x" * 200, None):
        with pytest.raises(UserError, match="repo_id"):
            push.push(corpus, repo_id, dry_run=True, api=FakeApi())
    with pytest.raises(UserError):
        push.push(tmp_path, "someone/empty", dry_run=True, api=FakeApi())


def test_cli_push_dry_run(corpus, capsys):  # noqa: F811
    assert cli.main(["push", str(corpus), "someone/golden-noise", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing uploaded" in out and "README.md" in out
