#!/usr/bin/env bash
# Install GoldenNoise with its test extra into .venv (CPU torch) and run the tests.
# Debian chromium is installed for the browser tests when missing (needs root or sudo).
# Quick subset while working: bash scripts/test.sh -m "not slow"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/pip-install.sh -e ".[test]"
if ! command -v chromium >/dev/null; then
  SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
  $SUDO apt-get update -q && $SUDO apt-get install -y -q chromium
fi
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest -q "$@"
