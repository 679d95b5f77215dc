#!/usr/bin/env bash
# Install GoldenNoise (with the analysis extra) into .venv and start the app. Where no CUDA GPU is
# present it runs the offline tiny model with CPU torch. Arguments go to `goldennoise app`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/pip-install.sh -e ".[analysis]"
export GRADIO_ANALYTICS_ENABLED=${GRADIO_ANALYTICS_ENABLED:-False}
exec .venv/bin/goldennoise app "$@"
