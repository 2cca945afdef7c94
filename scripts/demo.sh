#!/usr/bin/env bash
# Opens the annotator on the bundled sample mirror (or on the view / project given), creating
# the environment if needed. On Linux, `etmira annotate` first checks the system libraries Qt's
# xcb plugin needs and names the missing ones with the command that installs them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$("$root/scripts/env.sh")"
exec "$python" -m annotator annotate "$@"
