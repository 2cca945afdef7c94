"""Where the shipped weights, the icons and the bundled sample view live.

In a source checkout they are in the top-level ``resources/`` folder; an installed package
(``pip install .``) carries the same folder as ``refinement_model/resources`` (the mapping is
in ``pyproject.toml``). This module is the one place that knows either.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from refinement_model.errors import CheckpointError, InputError


def _resources() -> Path:
    installed = importlib.resources.files("refinement_model") / "resources"
    if installed.is_dir():
        return Path(str(installed))
    return Path(__file__).resolve().parent.parent / "resources"


RESOURCES = _resources()
SAMPLE_VIEW = RESOURCES / "sample"
WEIGHTS = RESOURCES / "weights"
KINDS = ("base", "refiner")


def shipped_checkpoint(kind: str) -> Path:
    """Path of the shipped ``base`` or ``refiner`` checkpoint; CheckpointError if it is missing."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    path = WEIGHTS / f"{kind}.safetensors"
    if not path.is_file():
        raise CheckpointError(
            path,
            f"the shipped {kind} weights are missing; train them with "
            "scripts/train_shipped.sh or pass a checkpoint",
        )
    return path


def sample_view() -> Path:
    """Folder of the bundled sample view; InputError if it is missing."""
    if not SAMPLE_VIEW.is_dir():
        raise InputError(SAMPLE_VIEW, "the bundled sample view is missing from this installation")
    return SAMPLE_VIEW
