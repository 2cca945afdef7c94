"""Inference backends: one network as a NumPy-in, NumPy-out callable, run by ONNX Runtime,
TorchScript or eager PyTorch, each proven equal to eager PyTorch when it is built.

Every backend maps a (B, C, S, S) float32 batch to (B, S, S) float32 logits, for any batch size
and any S the network accepts. :func:`build_backend` picks one by name and checks it on a probe
batch against the eager network (max |logit difference| below :data:`EQUALITY_TOLERANCE`); a
backend that cannot be built (onnxruntime missing, a failing export or trace) or is not equal is
replaced by the next one of :data:`FALLBACKS`, with a :class:`BackendFallbackWarning`.

Measured side by side on the project's 2-core machine (``benchmarks/bench_refine_latency.py``),
ONNX Runtime's CPU provider with all graph optimisations is the fastest CPU path, ahead of a
traced and frozen channels-last TorchScript network, itself ahead of eager PyTorch; so ``"auto"``
is ONNX Runtime on a CPU, and eager PyTorch on the GPU where ``torch.cuda`` has one.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import torch

from refinement_model.onnx_backend import (
    EQUALITY_TOLERANCE,
    PROBE_LOGITS_KEY,
    OnnxBackend,
    checked,
    probe_batch,
)
from refinement_model.onnx_export import export_onnx

__all__ = [
    "BACKENDS",
    "EQUALITY_TOLERANCE",
    "FALLBACKS",
    "BackendFallbackWarning",
    "EagerBackend",
    "OnnxBackend",
    "TorchScriptBackend",
    "build_backend",
    "eager_logits",
    "probe_difference",
]

BACKENDS = ("auto", "onnx", "torchscript", "eager", "cuda")
# What replaces a backend that cannot be built or is not equal to eager PyTorch.
FALLBACKS = {"cuda": "onnx", "onnx": "torchscript", "torchscript": "eager"}


class BackendFallbackWarning(UserWarning):
    """A backend was replaced by a slower one (it could not be built or was not equal)."""


def eager_logits(model: torch.nn.Module, batch: np.ndarray) -> np.ndarray:
    """Logits of eager PyTorch, the reference every backend is checked against.

    Parameters
    ----------
    model : torch.nn.Module
        Run in eval mode on the device it lives on (its training mode is restored).
    batch : (B, C, S, S) float32 ndarray

    Returns
    -------
    logits : (B, S, S) float32 ndarray
    """
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        with torch.inference_mode():
            out = model(torch.from_numpy(np.ascontiguousarray(batch)).to(device)).cpu()
    finally:
        model.train(was_training)
    return out[:, 0].contiguous().numpy()


class EagerBackend:
    """Eager PyTorch, on the device the network lives on, or on a copy moved to ``device``.

    Parameters
    ----------
    model : torch.nn.Module
    device : str or torch.device, optional
        ``"cuda"`` runs a copy on the GPU, with TF32 convolutions off (they would differ from
        the CPU by more than :data:`EQUALITY_TOLERANCE`).
    """

    def __init__(self, model: torch.nn.Module, device: str | torch.device | None = None):
        if device is not None:
            model = copy.deepcopy(model).to(device).eval()
        self.model = model
        self.device = next(model.parameters()).device
        self.name = "cuda" if self.device.type == "cuda" else "eager"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self.device.type != "cuda":
            return eager_logits(self.model, batch)
        cudnn = torch.backends.cudnn
        with cudnn.flags(
            enabled=True,
            benchmark=cudnn.benchmark,
            deterministic=cudnn.deterministic,
            allow_tf32=False,
        ):
            return eager_logits(self.model, batch)


class TorchScriptBackend:
    """A TorchScript trace of the eval-mode network, frozen (constants folded, batch norm fused
    into convolutions) and run on channels-last tensors.

    TorchScript specialises its graph to the first input shapes it sees, so a new batch size
    costs two to three times a normal call once: :meth:`warm_up` runs the expected ones.
    ``torch.jit`` is deprecated in favour of ``torch.compile``, which is slower here (see the
    benchmark).

    Parameters
    ----------
    model : torch.nn.Module
        Never modified (a copy is traced).
    channels, size : int
        Input channels and side of the example the trace is made on.

    Raises
    ------
    RuntimeError
        The network cannot be traced.
    """

    name = "torchscript"

    def __init__(self, model: torch.nn.Module, channels: int, size: int):
        example = torch.zeros(1, channels, size, size).contiguous(memory_format=torch.channels_last)
        was_training = model.training
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # the deprecation of torch.jit
                # a copy, so that the caller's model keeps its memory format and mode
                clone = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
                # check_trace would run the network twice more; build_backend checks equality
                self._traced = torch.jit.freeze(
                    torch.jit.trace(clone, example, check_trace=False).eval()
                )
        finally:
            model.train(was_training)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch))
        with torch.inference_mode():
            out = self._traced(x.contiguous(memory_format=torch.channels_last))
        return out[:, 0].contiguous().numpy()


def _auto(model: torch.nn.Module) -> str:
    if next(model.parameters()).device.type != "cpu":
        return "eager"  # a network being trained on a GPU is validated where it lives
    return "cuda" if torch.cuda.is_available() else "onnx"


def build_backend(
    model: torch.nn.Module, name: str = "auto", *, net_size: int = 256, onnx_cache=None
):
    """The named backend for a network, checked equal to eager PyTorch, or its fall-back.

    Parameters
    ----------
    model : torch.nn.Module
        A network from :func:`~refinement_model.nets.create_model` (never modified).
    name : {"auto", "onnx", "torchscript", "eager", "cuda"}, optional
        ``"auto"``: eager where the network lives on a GPU, ``"cuda"`` where torch has one,
        else ``"onnx"``.
    net_size : int, optional
        Side of the probe patches (and of the TorchScript trace).
    onnx_cache : refinement_model.onnx_export.OnnxCache, optional
        Where the ONNX backend reads the export of the network's checkpoint (kept if equal,
        rebuilt if not); default: export the network in memory.

    Returns
    -------
    backend : EagerBackend, TorchScriptBackend or OnnxBackend
        Its ``name`` says which one it is.
    """
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    model = getattr(model, "module", model)
    if name == "auto":
        name = _auto(model)
    channels = model.spec.in_channels
    probe = probe_batch(channels, net_size)
    expected = None
    while name != "eager":
        if expected is None:
            expected = eager_logits(model, probe)
        try:
            return _built(model, name, channels, net_size, probe, expected, onnx_cache)
        # onnxruntime, the exporter and the tracer raise many unrelated types: any failure
        # makes this backend unusable, not the caller's network
        except Exception as error:  # noqa: BLE001
            warnings.warn(
                f"inference backend {name!r} unavailable ({error}); using {FALLBACKS[name]!r}",
                BackendFallbackWarning,
                stacklevel=2,
            )
            name = FALLBACKS[name]
    return EagerBackend(model)


def probe_difference(backend, model: torch.nn.Module, *, net_size: int = 256) -> float:
    """Max |logit difference| between a backend and eager PyTorch on the probe batch (two
    seeded random patches of side ``net_size``) that :func:`build_backend` checks."""
    probe = probe_batch(model.spec.in_channels, net_size)
    return float(np.abs(backend(probe) - eager_logits(model, probe)).max())


def _built(model, name: str, channels: int, size: int, probe, expected, onnx_cache):
    """The named backend, checked; raises if it cannot be built or is not equal."""
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("torch has no CUDA device")
        return checked(EagerBackend(model, "cuda"), probe, expected)
    if name == "torchscript":
        return checked(TorchScriptBackend(model, channels, size), probe, expected)
    import onnxruntime  # noqa: F401 (a missing runtime falls back before the cache is read)

    threads = torch.get_num_threads()
    if onnx_cache is None:
        return checked(OnnxBackend(export_onnx(model, size=size), threads=threads), probe, expected)
    cached = onnx_cache.read()
    if cached is not None:
        try:
            backend = checked(OnnxBackend(cached, threads=threads), probe, expected)
        except Exception as error:  # noqa: BLE001 (any failure of a cached file: export anew)
            onnx_cache.distrust(str(error))
        else:
            if PROBE_LOGITS_KEY not in backend.metadata_props:
                # a file cached without them: with them, the next start needs no PyTorch
                onnx_cache.write(cached, probe_logits=expected)
            return backend
    model_bytes = onnx_cache.export(model, size=size)
    backend = checked(OnnxBackend(model_bytes, threads=threads), probe, expected)
    onnx_cache.write(model_bytes, probe_logits=expected)
    return backend
