#!/usr/bin/env bash
# Install everything the tests need into .venv (CPU torch) and run them.
# Debian chromium is installed for the browser test when missing (needs root or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check torch==2.13.0 -r requirements.txt -r requirements-test.txt
if ! command -v chromium >/dev/null; then
  SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
  $SUDO apt-get update -q && $SUDO apt-get install -y -q chromium
fi
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest -q "$@"
