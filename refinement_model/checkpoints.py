"""Model checkpoints: safetensors weights with the model's description in the header.

A checkpoint is an ordinary ``.safetensors`` file whose header metadata holds one key,
``"etmira"``, a JSON object with the format version, the :class:`~refinement_model.nets.ModelSpec`
(``"model"``) and free-form facts about training (normalisation, patch sizes, data seed,
validation metrics, command). Loading reads tensors only, never unpickles, and checks the file
against what the caller expects before building anything.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from refinement_model.checkpoint_header import (
    FORMAT_VERSION,
    METADATA_KEY,
    read_header,
    read_metadata,
    read_spec,
)
from refinement_model.errors import CheckpointError
from refinement_model.imageio import atomic_write
from refinement_model.nets import INPUT_CHANNELS, ModelSpec, create_model

__all__ = [
    "FORMAT_VERSION",
    "METADATA_KEY",
    "load_checkpoint",
    "read_metadata",
    "read_tensors",
    "save_checkpoint",
    "write_tensors",
]


def write_tensors(path, tensors: Mapping[str, torch.Tensor], metadata: Mapping) -> None:
    """Write tensors and a JSON-able metadata dict atomically to a safetensors file.

    The metadata is stored as JSON under :data:`METADATA_KEY`. The file appears under
    ``path`` only once complete (temporary file in the same folder, then ``os.replace``).
    """
    path = os.fspath(path)
    text = json.dumps(dict(metadata), sort_keys=True)
    contiguous = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(temporary) -> None:
        # safetensors leaves new files 0600, which would make shipped weights private: keep the
        # mode the temporary file was created with (an ordinary new file's, umask applied).
        mode = os.stat(temporary).st_mode
        save_file(contiguous, os.fspath(temporary), metadata={METADATA_KEY: text})
        os.chmod(temporary, mode)

    atomic_write(path, write)


def read_tensors(
    path, *, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict]:
    """All tensors and the metadata of a file written by :func:`write_tensors`.

    Raises
    ------
    CheckpointError
        The file is missing, not safetensors or lacks our metadata.
    """
    metadata = read_header(path)
    with safe_open(os.fspath(path), framework="pt", device=str(device)) as handle:
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 - safe_open has keys(), no __iter__
    return tensors, metadata


def save_checkpoint(path, model: torch.nn.Module, *, metadata: Mapping | None = None) -> None:
    """Save a network built by :func:`~refinement_model.nets.create_model`.

    Parameters
    ----------
    path : str or os.PathLike
        Destination ``.safetensors`` file (written atomically).
    model : torch.nn.Module
        Has a ``spec`` attribute (a DDP wrapper is unwrapped).
    metadata : mapping, optional
        JSON-able facts to store besides the spec, e.g. ``channel_stats``, ``patch_size``,
        ``training`` and ``validation``; the keys ``format_version`` and ``model`` are reserved.
    """
    model = getattr(model, "module", model)
    spec = getattr(model, "spec", None)
    if not isinstance(spec, ModelSpec):
        raise ValueError("model must come from create_model (it has no ModelSpec in .spec)")
    extra = dict(metadata or {})
    reserved = {"format_version", "model"} & set(extra)
    if reserved:
        raise ValueError(f"metadata must not contain the reserved keys {sorted(reserved)}")
    full = {"format_version": FORMAT_VERSION, "model": spec.to_dict(), **extra}
    write_tensors(path, model.state_dict(), full)


def _expected_channels(inputs) -> int:
    return sum(INPUT_CHANNELS.get(name, 0) for name in inputs)


def load_checkpoint(
    path, *, kind: str | None = None, inputs=None, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, dict]:
    """Rebuild a network from a checkpoint, in eval mode.

    Parameters
    ----------
    path : str or os.PathLike
    kind : {"base", "refiner"}, optional
        Refuse checkpoints of the other kind.
    inputs : sequence of str, optional
        Refuse checkpoints whose image channels differ (e.g. a refiner trained on another
        base's inputs).
    device : str or torch.device, optional

    Returns
    -------
    model : torch.nn.Module
        With ``model.spec`` set and gradients disabled.
    metadata : dict
        Everything :func:`read_metadata` returns.

    Raises
    ------
    CheckpointError
        Missing, foreign, corrupt, wrong kind, wrong channel count, or weights that do not fit
        the described network.
    """
    spec, metadata = read_spec(path, kind=kind)
    if inputs is not None and tuple(inputs) != spec.inputs:
        raise CheckpointError(
            path,
            f"the network takes the inputs {list(spec.inputs)} "
            f"({spec.image_channels} image channels), expected {list(inputs)} "
            f"({_expected_channels(inputs)} channels)",
        )
    try:
        model = create_model(spec=spec)
    except ValueError as error:
        raise CheckpointError(path, str(error)) from None
    state, _ = read_tensors(path, device=device)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[0:2]
        raise CheckpointError(
            path, f"weights do not fit the described network: {' '.join(first)}"
        ) from None
    model.to(device).eval().requires_grad_(False)
    return model, metadata
