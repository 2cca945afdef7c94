#!/usr/bin/env bash
# Runs the whole test suite headless (no display, no GPU), creating the environment if needed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$("$root/scripts/env.sh")"
cd "$root"
export QT_QPA_PLATFORM=offscreen CUDA_VISIBLE_DEVICES="" MPLBACKEND=Agg
exec "$python" -m pytest -q "$@"
