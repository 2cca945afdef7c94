"""ONNX Runtime as an inference backend, and the cached exports it may trust, without PyTorch.

:class:`OnnxBackend` runs a serialized ONNX model from memory. :func:`trusted_cached_backend`
builds it from the cached export of a checkpoint (see
:class:`~refinement_model.onnx_export.OnnxCache`) when that export names the checkpoint's
SHA-256 and reproduces, on the probe batch, the eager PyTorch logits stored with it when it
was checked: the same equality :func:`~refinement_model.backends.build_backend` checks, so a
second start of the app runs its networks without importing PyTorch (about 0.5 GB and ten
seconds less on a laptop). ONNX Runtime refuses external data in a model read from bytes, so a
cached file cannot make it read other files.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import numpy as np

from refinement_model.imageio import file_sha256

__all__ = [
    "DIGEST_KEY",
    "EQUALITY_TOLERANCE",
    "PROBE_LOGITS_KEY",
    "NotEqualError",
    "OnnxBackend",
    "cached_export_path",
    "checked",
    "encode_probe_logits",
    "probe_batch",
    "trusted_cached_backend",
]

# Largest |logit| difference allowed between a backend and eager PyTorch.
EQUALITY_TOLERANCE = 1e-3
# Metadata keys of an exported model: the checkpoint's SHA-256, and the eager logits of the
# probe batch (float32, base64, with their shape), stored by the cache.
DIGEST_KEY = "etmira_checkpoint_sha256"
PROBE_LOGITS_KEY = "etmira_probe_logits"
# Patches in the probe batch: not the export's batch of one, so the check covers a second
# batch size.
_PROBE_BATCH = 2


class NotEqualError(RuntimeError):
    """A backend's logits differ from eager PyTorch's by more than :data:`EQUALITY_TOLERANCE`."""


def probe_batch(channels: int, size: int) -> np.ndarray:
    """The probe batch every backend is checked on: (2, channels, size, size) float32, seeded."""
    return (
        np.random.default_rng(0)
        .normal(size=(_PROBE_BATCH, channels, size, size))
        .astype(np.float32)
    )


def checked(backend, probe: np.ndarray, expected: np.ndarray):
    """``backend`` if its logits of ``probe`` equal ``expected``; raises :class:`NotEqualError`."""
    difference = float(np.abs(backend(probe) - expected).max())
    if not difference < EQUALITY_TOLERANCE:
        raise NotEqualError(
            f"max |logit difference| to eager {difference:.2e}, tolerance {EQUALITY_TOLERANCE:.0e}"
        )
    return backend


class OnnxBackend:
    """An ONNX model run by ONNX Runtime's CPU provider with all graph optimisations.

    Parameters
    ----------
    model_bytes : bytes
        A serialized ONNX model taking ``input`` (B, C, H, W) to ``logits`` (B, 1, H, W), as
        :func:`refinement_model.onnx_export.export_onnx` writes; read from memory only, so it
        cannot refer to files beside it.
    threads : int, optional
        Intra-op threads; default ONNX Runtime's (one per physical core).

    Attributes
    ----------
    metadata_props : dict of str to str
        The model's metadata (see :mod:`refinement_model.onnx_export`).

    Raises
    ------
    ImportError
        onnxruntime is not installed.
    """

    name = "onnx"

    def __init__(self, model_bytes: bytes, *, threads: int | None = None):
        import onnxruntime  # optional at run time: the ImportError makes callers fall back

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # blocks of patches come in many shapes: a memory pattern planned for one shape is
        # replanned for the next (measured: first runs 15-30% slower, 0.1 GB more memory)
        options.enable_mem_pattern = False
        self._session = onnxruntime.InferenceSession(
            model_bytes, options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self.metadata_props = dict(self._session.get_modelmeta().custom_metadata_map)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        return np.ascontiguousarray(self._session.run(None, {self._input: x})[0][:, 0])


def encode_probe_logits(logits: np.ndarray) -> str:
    """The metadata value under :data:`PROBE_LOGITS_KEY` of a probe's (B, S, S) logits."""
    logits = np.ascontiguousarray(logits, dtype="<f4")
    data = base64.b64encode(logits.tobytes()).decode("ascii")
    return json.dumps({"shape": list(logits.shape), "float32": data})


def _decoded_probe_logits(text: str | None, shape: tuple[int, ...]) -> np.ndarray | None:
    try:
        entry = json.loads(text)
        if tuple(entry["shape"]) != shape:
            return None
        return np.frombuffer(base64.b64decode(entry["float32"]), "<f4").reshape(shape)
    except (TypeError, ValueError, KeyError):  # absent, garbage or the wrong length
        return None


def cached_export_path(folder, digest: str) -> Path:
    """Where the cache in ``folder`` keeps the export of the checkpoint with SHA-256 ``digest``."""
    return Path(folder) / f"{digest}.onnx"


def trusted_cached_backend(
    folder, checkpoint, *, channels: int, size: int, threads: int | None = None
) -> OnnxBackend | None:
    """The ONNX backend of a checkpoint's cached export, if it can be trusted, without PyTorch.

    Parameters
    ----------
    folder : str or os.PathLike
        The cache folder (:func:`~refinement_model.network_loader.user_cache_folder`).
    checkpoint : str or os.PathLike
        The checkpoint file (hashed here).
    channels, size : int
        Input channels of the network and side of its probe patches (the checkpoint's
        ``net_size``).
    threads : int, optional
        See :class:`OnnxBackend`.

    Returns
    -------
    OnnxBackend or None
        None when there is no cached export, onnxruntime is missing, or the file does not name
        the checkpoint's digest or does not reproduce its stored probe logits: the caller then
        builds the backend with PyTorch, which replaces the file.
    """
    path = cached_export_path(folder, file_sha256(os.fspath(checkpoint)))
    if not path.is_file():
        return None
    try:
        backend = OnnxBackend(path.read_bytes(), threads=threads)
    # onnxruntime raises several types for a corrupt file; the PyTorch path reports and replaces it
    except Exception:  # noqa: BLE001
        return None
    if backend.metadata_props.get(DIGEST_KEY) != path.stem:
        return None
    probe = probe_batch(channels, size)
    expected = _decoded_probe_logits(
        backend.metadata_props.get(PROBE_LOGITS_KEY), (len(probe), size, size)
    )
    if expected is None:
        return None
    try:
        return checked(backend, probe, expected)
    except Exception:  # noqa: BLE001 (not equal, or a graph that rejects the probe's shape)
        return None
