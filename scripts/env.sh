#!/usr/bin/env bash
# Creates or updates the project's virtual environment in .venv and prints its python.
# Re-installs only when pyproject.toml changed since the last successful install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.etmira-stamp"
want="$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" ]]; then
    echo "etmira: creating the environment in $venv (first run downloads about 5.5 GB)" >&2
    python3 -m venv "$venv"
fi
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "etmira: installing dependencies into $venv" >&2
    "$venv/bin/python" -m pip install -q --upgrade pip >&2
    "$venv/bin/python" -m pip install -q -e "$root[test]" >&2
    echo "$want" > "$stamp"
fi
echo "$venv/bin/python"
