"""The layers in pyproject.toml's import-linter contracts hold, and the checker sees a breach."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_layer_contracts_are_kept():
    result = _lint()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_module_that_imports_qt_breaks_a_forbidden_contract(tmp_path):
    config = tmp_path / "contracts.toml"
    config.write_text(
        '[tool.importlinter]\nroot_packages = ["annotator"]\n'
        "include_external_packages = true\n\n"
        '[[tool.importlinter.contracts]]\nname = "qt layer without Qt"\n'
        'type = "forbidden"\nsource_modules = ["annotator.qt"]\n'
        'forbidden_modules = ["PySide6"]\n'
    )
    result = _lint("--config", str(config))
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
