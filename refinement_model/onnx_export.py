"""ONNX export of the networks: self-describing models, and a cache keyed by the checkpoint.

An exported model takes ``input`` (B, C, H, W) float32 to ``logits`` (B, 1, H, W), batch and
spatial sizes free (one session serves every batch size, no warm-up per size). Its
``metadata_props`` hold the checkpoint's metadata as JSON under
:data:`~refinement_model.checkpoints.METADATA_KEY` (what ``etmira model-info`` prints) and the
checkpoint's SHA-256 under :data:`DIGEST_KEY`.

The runtime never runs an ONNX file it did not make from the checkpoint in hand: it exports in
memory, or keeps exports in a cache folder the caller names
(:func:`~refinement_model.network_loader.user_cache_folder` is the documented place), one file
per checkpoint named by the checkpoint's SHA-256. A cached file is used only if it parses,
refers to no external data, names that checkpoint's digest, and its logits equal eager
PyTorch's on a probe batch; otherwise it is exported anew and replaced. The cache stores those
eager logits with the export, so that a later start can check it without PyTorch
(:func:`~refinement_model.onnx_backend.trusted_cached_backend`).
"""

from __future__ import annotations

# ``onnx`` takes seconds to import: only the functions that write or check ONNX files import
# it, not every importer of the backends (the eager and TorchScript paths never need it).
import copy
import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from refinement_model.checkpoints import METADATA_KEY, load_checkpoint, read_metadata
from refinement_model.errors import CheckpointError, InputError
from refinement_model.imageio import atomic_write, file_sha256
from refinement_model.onnx_backend import (
    DIGEST_KEY,
    PROBE_LOGITS_KEY,
    cached_export_path,
    encode_probe_logits,
)

__all__ = [
    "DIGEST_KEY",
    "INPUT_NAME",
    "OPSET",
    "OUTPUT_NAME",
    "OnnxCache",
    "OnnxCacheWarning",
    "export_checkpoint",
    "export_onnx",
    "onnx_cache_for",
    "read_onnx_metadata",
    "with_weights",
]

INPUT_NAME, OUTPUT_NAME = "input", "logits"
OPSET = 17
_AXES = {0: "batch", 2: "height", 3: "width"}


class OnnxCacheWarning(UserWarning):
    """A cached ONNX file was not trusted and is exported anew."""


def export_onnx(
    model: torch.nn.Module,
    *,
    size: int = 256,
    metadata: dict | None = None,
    checkpoint_sha256: str | None = None,
    named_weights: bool = False,
) -> bytes:
    """Serialized ONNX model of a network, with free batch and spatial sizes.

    Parameters
    ----------
    model : torch.nn.Module
        From :func:`~refinement_model.nets.create_model` (never modified: a CPU copy in eval
        mode is exported).
    size : int, optional
        Side of the example input the export traces.
    metadata : dict, optional
        The checkpoint's metadata; default: the network's spec only.
    checkpoint_sha256 : str, optional
        Stored under :data:`DIGEST_KEY`.
    named_weights : bool, optional
        Keep every parameter an initializer under its own name (no constant folding, batch
        norm not fused: ONNX Runtime fuses it when it loads the model), so that
        :func:`with_weights` can replace some.

    Returns
    -------
    bytes
    """
    import onnx

    model = getattr(model, "module", model)
    clone = copy.deepcopy(model).cpu().eval()
    example = torch.zeros(1, model.spec.in_channels, size, size)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # the TorchScript-based exporter warns that it is deprecated; the dynamo exporter
        # needs onnxscript, not a dependency of the project
        warnings.simplefilter("ignore")
        torch.onnx.export(
            clone,
            (example,),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: _AXES, OUTPUT_NAME: _AXES},
            **(
                {"do_constant_folding": False, "training": torch.onnx.TrainingMode.PRESERVE}
                if named_weights
                else {}
            ),
        )
    proto = onnx.load_model_from_string(buffer.getvalue())
    proto.producer_name = "etmira-refine"
    properties = {
        METADATA_KEY: json.dumps(
            metadata if metadata is not None else {"model": model.spec.to_dict()}, sort_keys=True
        )
    }
    if checkpoint_sha256 is not None:
        properties[DIGEST_KEY] = checkpoint_sha256
    onnx.helper.set_model_props(proto, properties)
    return proto.SerializeToString()


def with_weights(model_bytes: bytes, tensors) -> bytes:
    """An export made with ``named_weights`` whose named parameters are replaced.

    Parameters
    ----------
    model_bytes : bytes
        From ``export_onnx(..., named_weights=True)``.
    tensors : mapping of str to ndarray
        New values by parameter name, each of its parameter's shape.

    Raises
    ------
    ValueError
        A name that is not an initializer of the model, or a tensor of another shape.
    """
    import onnx
    from onnx import numpy_helper

    proto = onnx.load_model_from_string(model_bytes)
    initializers = {tensor.name: tensor for tensor in proto.graph.initializer}
    for name, value in tensors.items():
        if name not in initializers:
            raise ValueError(f"the model has no weight named {name!r}")
        if tuple(initializers[name].dims) != np.shape(value):
            raise ValueError(
                f"{name} has shape {tuple(initializers[name].dims)}, got {np.shape(value)}"
            )
        initializers[name].CopyFrom(
            numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)
        )
    return proto.SerializeToString()


def export_checkpoint(checkpoint) -> tuple[bytes, float]:
    """The ONNX model of a checkpoint, checked against eager PyTorch.

    Parameters
    ----------
    checkpoint : str or os.PathLike
        A base or refiner checkpoint.

    Returns
    -------
    model_bytes : bytes
        With the checkpoint's metadata and SHA-256 (see :func:`read_onnx_metadata`).
    difference : float
        Max |logit difference| to eager PyTorch on a probe batch at the checkpoint's
        ``net_size``.

    Raises
    ------
    CheckpointError
        The checkpoint cannot be read, or its export is not equal to it.
    """
    # backends imports this module to export
    from refinement_model.backends import EQUALITY_TOLERANCE, OnnxBackend, probe_difference

    model, metadata = load_checkpoint(checkpoint)
    digest = file_sha256(checkpoint)
    size = int(metadata.get("net_size", 256))
    model_bytes = export_onnx(model, size=size, metadata=metadata, checkpoint_sha256=digest)
    difference = probe_difference(OnnxBackend(model_bytes), model, net_size=size)
    if not difference < EQUALITY_TOLERANCE:
        raise CheckpointError(
            checkpoint,
            f"its ONNX export differs from it by {difference:.2e} "
            f"(tolerance {EQUALITY_TOLERANCE:.0e})",
        )
    return model_bytes, difference


def _properties(proto) -> dict[str, str]:
    return {entry.key: entry.value for entry in proto.metadata_props}


def read_onnx_metadata(path) -> tuple[dict, str | None]:
    """The checkpoint metadata and SHA-256 an exported ONNX file carries.

    Returns
    -------
    metadata : dict
        As :func:`refinement_model.checkpoints.read_metadata` gives for the checkpoint.
    checkpoint_sha256 : str or None

    Raises
    ------
    InputError
        Not an ONNX file, or one without etmira metadata.
    """
    import onnx

    try:
        proto = onnx.load_model_from_string(Path(path).read_bytes())
    except OSError as error:
        raise InputError(path, f"cannot read it ({error.strerror})") from None
    except Exception as error:  # noqa: BLE001 (protobuf raises several types for garbage)
        raise InputError(path, f"not an ONNX model ({error})") from None
    properties = _properties(proto)
    try:
        metadata = json.loads(properties[METADATA_KEY])
    except (KeyError, json.JSONDecodeError):
        raise InputError(path, "an ONNX model without etmira metadata") from None
    return metadata, properties.get(DIGEST_KEY)


def _untrusted(model_bytes: bytes, digest: str) -> str | None:
    """Why a cached file is not the export of the checkpoint with this digest, or None."""
    import onnx

    try:
        proto = onnx.load_model_from_string(model_bytes)
        onnx.checker.check_model(proto)
    except Exception as error:  # noqa: BLE001 (protobuf and the checker raise several types)
        return f"not a valid ONNX model ({error})"
    if _properties(proto).get(DIGEST_KEY) != digest:
        return "not exported from this checkpoint"
    if any(tensor.data_location == onnx.TensorProto.EXTERNAL for tensor in proto.graph.initializer):
        return "refers to external data"
    return None


class OnnxCache:
    """The cached ONNX export of one checkpoint, in a folder, keyed by its SHA-256.

    Parameters
    ----------
    folder : str or os.PathLike
        Created (private to the user) on the first write;
        :func:`~refinement_model.network_loader.user_cache_folder` is the documented place.
    checkpoint : str or os.PathLike
        The checkpoint the network was loaded from (hash it before loading it).

    Attributes
    ----------
    path : Path
        ``folder / "<sha256 of the checkpoint>.onnx"``.
    """

    def __init__(self, folder, checkpoint):
        self.folder = Path(folder)
        self.checkpoint = Path(checkpoint)
        if not self.checkpoint.is_file():
            raise CheckpointError(checkpoint, "no such checkpoint file")
        self.digest = file_sha256(self.checkpoint)
        self.path = cached_export_path(self.folder, self.digest)

    def read(self) -> bytes | None:
        """The cached model if there is one that describes this checkpoint, else None (an
        untrusted file is removed, with an :class:`OnnxCacheWarning`)."""
        if not self.path.is_file():
            return None
        model_bytes = self.path.read_bytes()
        problem = _untrusted(model_bytes, self.digest)
        if problem is not None:
            self.distrust(problem)
            return None
        return model_bytes

    def distrust(self, reason: str) -> None:
        """Remove the cached file, warning why."""
        warnings.warn(
            f"{self.path}: cached ONNX model not trusted ({reason}); exporting "
            f"{self.checkpoint} again",
            OnnxCacheWarning,
            stacklevel=3,
        )
        self.path.unlink(missing_ok=True)

    def export(self, model: torch.nn.Module, *, size: int = 256) -> bytes:
        """Export ``model`` (loaded from the checkpoint) with the checkpoint's metadata."""
        return export_onnx(
            model, size=size, metadata=read_metadata(self.checkpoint), checkpoint_sha256=self.digest
        )

    def write(self, model_bytes: bytes, *, probe_logits) -> None:
        """Store an export (atomically) with the eager logits of its probe batch, which
        :func:`~refinement_model.onnx_backend.trusted_cached_backend` checks it against.

        Parameters
        ----------
        model_bytes : bytes
            An export of the checkpoint, checked equal to eager PyTorch.
        probe_logits : (2, S, S) float32 ndarray
            Eager PyTorch's logits of :func:`~refinement_model.onnx_backend.probe_batch`.
        """
        import onnx

        proto = onnx.load_model_from_string(model_bytes)
        onnx.helper.set_model_props(
            proto, {**_properties(proto), PROBE_LOGITS_KEY: encode_probe_logits(probe_logits)}
        )
        model_bytes = proto.SerializeToString()
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(self.path, lambda temporary: Path(temporary).write_bytes(model_bytes))


def onnx_cache_for(folder, checkpoint) -> OnnxCache | None:
    """The :class:`OnnxCache` of ``checkpoint`` in ``folder``, or None without a folder.

    Call it before loading the checkpoint, so that the digest names the weights in use.

    Raises
    ------
    ValueError
        A folder given with a network in memory (only a checkpoint file has a digest).
    """
    if folder is None:
        return None
    if isinstance(checkpoint, torch.nn.Module):
        raise ValueError("onnx_cache needs a checkpoint file, got a network in memory")
    return OnnxCache(folder, checkpoint)
