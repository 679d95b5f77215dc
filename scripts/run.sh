#!/usr/bin/env bash
# Install the app into .venv and start it. Where no CUDA GPU is present it runs the
# offline tiny model; pip then takes the CPU build of torch.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
else
  .venv/bin/pip install -q --disable-pip-version-check torch==2.13.0 -r requirements.txt
fi
export GRADIO_ANALYTICS_ENABLED=${GRADIO_ANALYTICS_ENABLED:-False}
exec .venv/bin/python app.py "$@"
