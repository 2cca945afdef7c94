#!/usr/bin/env bash
# Opens the annotator on the bundled sample mirror (or on the view folder / project given),
# creating the environment if needed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$("$root/scripts/env.sh")"
exec "$python" -m annotator annotate "$@"
