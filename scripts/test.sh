#!/usr/bin/env bash
# Install GoldenNoise with its test extra into .venv (CPU torch) and run the tests.
# Debian chromium (browser tests) and postgresql (the store's replica tests) are installed when missing
# (needs root or sudo).
# Quick subset while working: bash scripts/test.sh -m "not slow". Without arguments: everything but the
# fresh-virtualenv install (marker `release`; bash scripts/test.sh -m release), about 15 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/pip-install.sh -e ".[test]"
NEEDED=()
command -v chromium >/dev/null || NEEDED+=(chromium)
command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || NEEDED+=(postgresql)
if [ ${#NEEDED[@]} -gt 0 ]; then
  SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
  $SUDO apt-get update -q && $SUDO apt-get install -y -q "${NEEDED[@]}"
fi
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1
if [ $# -eq 0 ]; then
  set -- -m "not release"
fi
exec .venv/bin/python -m pytest -q "$@"
