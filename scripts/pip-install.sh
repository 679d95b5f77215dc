#!/usr/bin/env bash
# pip install into .venv with the CPU build of torch 2.13.0 (where no CUDA GPU is present).
# Torch is named in the same command as the rest, so nothing pulls a CUDA build. Where this
# machine's pip configuration has no local torch wheel, the CPU index is named explicitly.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
PIP=(.venv/bin/pip install -q --disable-pip-version-check)
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  exec "${PIP[@]}" "$@"  # a GPU machine: pip's default torch (CUDA)
fi
if "${PIP[@]}" --dry-run --no-index --no-deps torch==2.13.0 >/dev/null 2>&1; then
  exec "${PIP[@]}" torch==2.13.0 "$@"
fi
exec "${PIP[@]}" --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple \
  torch==2.13.0 "$@"
