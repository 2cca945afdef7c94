"""ruff (configured in pyproject.toml) finds nothing to report, so CI enforces the lint rules."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The files the format check covers. The rest of the tree is formatted once (`ruff format .`)
# after the parallel branches are merged; then this list gives way to the whole tree.
FORMATTED = ["tests/test_lint.py"]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    pytest.importorskip("ruff")
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_ruff_check_is_clean():
    result = _ruff("check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_check_of_formatted_files():
    result = _ruff("format", "--check", "--no-cache", *FORMATTED)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_check_catches_a_breach(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n")
    result = _ruff("check", "--no-cache", "--config", str(ROOT / "pyproject.toml"), str(bad))
    assert result.returncode != 0 and "F401" in result.stdout
