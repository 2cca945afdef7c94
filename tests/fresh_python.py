"""Run code in a fresh interpreter: what it imports is then its own, not the test run's."""

import subprocess
import sys


def last_line(code: str, *, timeout: float = 300) -> str:
    """The last line ``code`` prints in a new ``python -c``; AssertionError with its stderr
    if it fails."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]
