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

# Largest |logit| difference allowed between a backend and eager PyTorch.
EQUALITY_TOLERANCE = 1e-3
BACKENDS = ("auto", "onnx", "torchscript", "eager", "cuda")
# What replaces a backend that cannot be built or is not equal to eager PyTorch.
FALLBACKS = {"cuda": "onnx", "onnx": "torchscript", "torchscript": "eager"}
# Patches in the probe batch: not the export's or the trace's batch of one, so the check
# covers a second batch size.
_PROBE_BATCH = 2


class BackendFallbackWarning(UserWarning):
    """A backend was replaced by a slower one (it could not be built or was not equal)."""


class _NotEqual(RuntimeError):
    pass


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


class OnnxBackend:
    """An ONNX model run by ONNX Runtime's CPU provider with all graph optimisations.

    Parameters
    ----------
    model_bytes : bytes
        A serialized ONNX model taking ``input`` (B, C, H, W) to ``logits`` (B, 1, H, W), as
        :func:`refinement_model.onnx_export.export_onnx` writes; read from memory only, so it
        cannot refer to files beside it.
    threads : int, optional
        Intra-op threads; default ``torch.get_num_threads()``, so that both runtimes use what
        the caller gave PyTorch.

    Raises
    ------
    ImportError
        onnxruntime is not installed.
    """

    name = "onnx"

    def __init__(self, model_bytes: bytes, *, threads: int | None = None):
        import onnxruntime  # optional at run time: the ImportError makes callers fall back

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = onnxruntime.InferenceSession(
            model_bytes, options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        return np.ascontiguousarray(self._session.run(None, {self._input: x})[0][:, 0])


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
    probe = _probe_batch(channels, net_size)
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


def _probe_batch(channels: int, size: int) -> np.ndarray:
    return (
        np.random.default_rng(0)
        .normal(size=(_PROBE_BATCH, channels, size, size))
        .astype(np.float32)
    )


def probe_difference(backend, model: torch.nn.Module, *, net_size: int = 256) -> float:
    """Max |logit difference| between a backend and eager PyTorch on the probe batch (two
    seeded random patches of side ``net_size``) that :func:`build_backend` checks."""
    probe = _probe_batch(model.spec.in_channels, net_size)
    return float(np.abs(backend(probe) - eager_logits(model, probe)).max())


def _checked(backend, probe: np.ndarray, expected: np.ndarray):
    difference = float(np.abs(backend(probe) - expected).max())
    if not difference < EQUALITY_TOLERANCE:
        raise _NotEqual(
            f"max |logit difference| to eager {difference:.2e}, tolerance {EQUALITY_TOLERANCE:.0e}"
        )
    return backend


def _built(model, name: str, channels: int, size: int, probe, expected, onnx_cache):
    """The named backend, checked; raises if it cannot be built or is not equal."""
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("torch has no CUDA device")
        return _checked(EagerBackend(model, "cuda"), probe, expected)
    if name == "torchscript":
        return _checked(TorchScriptBackend(model, channels, size), probe, expected)
    import onnxruntime  # noqa: F401 (a missing runtime falls back before the cache is read)

    if onnx_cache is None:
        return _checked(OnnxBackend(export_onnx(model, size=size)), probe, expected)
    cached = onnx_cache.read()
    if cached is not None:
        try:
            return _checked(OnnxBackend(cached), probe, expected)
        except Exception as error:  # noqa: BLE001 (any failure of a cached file: export anew)
            onnx_cache.distrust(str(error))
    model_bytes = onnx_cache.export(model, size=size)
    backend = _checked(OnnxBackend(model_bytes), probe, expected)
    onnx_cache.write(model_bytes)
    return backend
