"""The header of a checkpoint: its etmira metadata, read without loading the weights.

Torch-free (the safetensors header is JSON), so that the app can describe and trust a
checkpoint's cached ONNX export without importing PyTorch; :mod:`refinement_model.checkpoints`
reads and writes the weights.
"""

from __future__ import annotations

import json
import os

from safetensors import safe_open

from refinement_model.errors import CheckpointError
from refinement_model.model_spec import ModelSpec

__all__ = ["FORMAT_VERSION", "METADATA_KEY", "read_header", "read_metadata", "read_spec"]

FORMAT_VERSION = 1
METADATA_KEY = "etmira"


def read_header(path) -> dict:
    """The etmira metadata of a safetensors file, unchecked (:func:`read_metadata` checks it).

    Raises
    ------
    CheckpointError
        The file is missing, not safetensors or lacks our metadata.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(path, "no such checkpoint file")
    try:
        with safe_open(path, framework="numpy") as handle:
            header = handle.metadata() or {}
    except Exception as error:  # safetensors raises several types for garbage
        raise CheckpointError(path, f"not a safetensors file ({error})") from None
    if METADATA_KEY not in header:
        raise CheckpointError(
            path, "a safetensors file without etmira metadata, not a checkpoint of this project"
        )
    try:
        metadata = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError as error:
        raise CheckpointError(path, f"corrupt checkpoint metadata ({error})") from None
    if not isinstance(metadata, dict):
        raise CheckpointError(path, "corrupt checkpoint metadata (not a JSON object)")
    return metadata


def read_metadata(path) -> dict:
    """Metadata of a checkpoint without loading its weights.

    Raises
    ------
    CheckpointError
        The file is missing, not safetensors, lacks our metadata or has a newer format.
    """
    metadata = read_header(path)
    version = metadata.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            path,
            f"checkpoint format version {version!r} is not supported "
            f"(this program reads up to {FORMAT_VERSION})",
        )
    if not isinstance(metadata.get("model"), dict):
        raise CheckpointError(path, "checkpoint metadata lacks the model description")
    return metadata


def read_spec(path, *, kind: str | None = None) -> tuple[ModelSpec, dict]:
    """The network a checkpoint describes, and its metadata, without loading its weights.

    Parameters
    ----------
    path : str or os.PathLike
    kind : {"base", "refiner"}, optional
        Refuse checkpoints of the other kind.

    Returns
    -------
    spec : ModelSpec
    metadata : dict
        Everything :func:`read_metadata` returns.

    Raises
    ------
    CheckpointError
        As :func:`read_metadata`, or an invalid model description, or the wrong kind.
    """
    metadata = read_metadata(path)
    try:
        spec = ModelSpec.from_dict(metadata["model"])
    except (ValueError, TypeError) as error:
        raise CheckpointError(path, f"invalid model description: {error}") from None
    if kind is not None and spec.kind != kind:
        raise CheckpointError(
            path, f"this is a {spec.kind} checkpoint, a {kind} checkpoint is needed here"
        )
    return spec, metadata
