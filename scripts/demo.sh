#!/usr/bin/env bash
# The main job on a fresh machine: set up .venv, then retime a real clip to twice its frame
# rate with the bundled default checkpoint.
#   bash scripts/demo.sh [INPUT_VIDEO] [OUTPUT] [-- extra retime flags]
# DEMO_FRAMES=N retimes only the first N source frames (default 24: about 1 s of the bikes
# clip, a few minutes on 2 CPU cores); DEMO_FRAMES=all retimes the whole clip.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
INPUT=${1:-../shared/data/clips/bikes_f000-149.mkv}
OUTPUT=${2:-outputs/demo_x2.mp4}
shift $(( $# > 2 ? 2 : $# ))
[ "${1:-}" = "--" ] && shift
FRAMES=${DEMO_FRAMES:-24}
LIMIT=()
[ "$FRAMES" != "all" ] && LIMIT=(--max-frames "$FRAMES")
if [ ! -f checkpoints/hifi-lean.safetensors ]; then
  echo "!!! WARNING: checkpoints/hifi-lean.safetensors is missing: this demo runs an UNTRAINED" >&2
  echo "!!! model (tiny preset) and its in-between frames are NOT meaningful." >&2
fi
mkdir -p "$(dirname "$OUTPUT")"
THREADS=$(.venv/bin/python -c "import torch; print(torch.get_num_threads())")
echo "demo: retiming ${FRAMES} source frames of $INPUT to twice the frame rate on $THREADS torch threads" \
     "(OMP_NUM_THREADS=N to change; the README's timings use this default)"
# the retime command prints the one result line
.venv/bin/python -m hifi_core retime "$INPUT" "$OUTPUT" --multiplier 2 "${LIMIT[@]}" "$@"
