"""A network as a NumPy-in, NumPy-out callable on the fastest backend equal to eager PyTorch.

:class:`FastNet` runs a network on one of the backends of :mod:`refinement_model.backends`
(ONNX Runtime by default on a CPU, TorchScript and eager PyTorch as fall-backs, eager PyTorch
on a GPU), each checked equal to eager PyTorch when it is built; the orientation averaging is
the same NumPy code around any backend.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from refinement_model.backends import build_backend
from refinement_model.refiner_options import checked_orientations

__all__ = ["ENGINE_BATCH", "FastNet", "as_fast_net"]

# Most images per backend run. Per image a run of 8 is as fast as one of 32 on a CPU
# (benchmarks/bench_refine_latency.py), while the runtime's memory grows with the batch
# (ONNX Runtime keeps its arena: +0.2 GB for 8 refiner patches, +0.85 GB for 32).
ENGINE_BATCH = 8


class FastNet:
    """A network as a NumPy-in, NumPy-out callable on the fastest backend equal to eager.

    Parameters
    ----------
    model : torch.nn.Module
        A network from :func:`~refinement_model.nets.create_model` (never modified).
    optimise : bool, optional
        False runs eager PyTorch, whatever ``backend`` says.
    net_size : int, optional
        Side of the probe patches the backend is checked on (and of the TorchScript trace).
    orientations : {1, 2, 4, 8}, optional
        Average the logits over this many orientations of each input (test-time augmentation):
        the first 1, 2 or 4 quarter turns, or those four and their mirror images. Each costs one
        more pass of the network; all go through the backend in one batch.
    backend : {"auto", "onnx", "torchscript", "eager", "cuda"}, optional
        See :func:`refinement_model.backends.build_backend`: one that cannot be built or is not
        equal to eager PyTorch is replaced by its fall-back, with a warning.
    onnx_cache : refinement_model.onnx_export.OnnxCache, optional
        Where the ONNX backend keeps the export of the network's checkpoint; default: export
        in memory.

    Attributes
    ----------
    spec : ModelSpec
    model : torch.nn.Module
        The eager network the backend was built from (shared: never modify it).
    engine : EagerBackend or TorchScriptBackend or OnnxBackend
    backend : str
        The backend in use: ``engine.name``.
    optimised : bool
        Whether it is other than eager PyTorch.
    orientations : int
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        optimise: bool = True,
        net_size: int = 256,
        orientations: int = 1,
        backend: str = "auto",
        onnx_cache=None,
    ):
        self.orientations = checked_orientations(orientations)
        model = getattr(model, "module", model)
        self.spec = model.spec
        self.model = model
        self.engine = build_backend(
            model, backend if optimise else "eager", net_size=net_size, onnx_cache=onnx_cache
        )

    @property
    def backend(self) -> str:
        """Name of the backend in use."""
        return self.engine.name

    @property
    def optimised(self) -> bool:
        """Whether the backend is other than eager PyTorch."""
        return self.backend != "eager"

    def with_orientations(self, orientations: int) -> FastNet:
        """The same network (sharing its backend) averaging over ``orientations``."""
        sibling = copy.copy(self)
        sibling.orientations = checked_orientations(orientations)
        return sibling

    def warm_up(self, batch_sizes, size: int) -> None:
        """Run a TorchScript backend once per batch size, so that first calls are not slow.

        TorchScript specialises its graph to the first input shapes it sees; a new batch size
        costs two to three times a normal call once (measured: 55 instead of 18 ms for one
        256 x 256 patch). The other backends need no warm-up.
        """
        if self.backend != "torchscript":
            return
        for count in batch_sizes:
            self(np.zeros((count, self.spec.in_channels, size, size), np.float32))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Logits of a batch.

        Parameters
        ----------
        batch : (B, in_channels, S, S) float32 ndarray
            S a multiple of 32.

        Returns
        -------
        logits : (B, S, S) float32 ndarray
        """
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1] != self.spec.in_channels:
            raise ValueError(
                f"batch must have shape (B, {self.spec.in_channels}, S, S), got {batch.shape}"
            )
        if self.orientations == 1:
            return self._run(batch)
        # every orientation through the backend together
        turned = np.concatenate([_orient(batch, k) for k in range(self.orientations)])
        logits = self._run(turned).reshape(self.orientations, len(batch), *batch.shape[2:])
        return np.mean(
            [_orient_back(out, k) for k, out in enumerate(logits)], axis=0, dtype=np.float32
        )

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """The backend's logits of a batch, in runs of at most :data:`ENGINE_BATCH` images."""
        if len(batch) <= ENGINE_BATCH:
            return self.engine(batch)
        return np.concatenate(
            [
                self.engine(batch[start : start + ENGINE_BATCH])
                for start in range(0, len(batch), ENGINE_BATCH)
            ]
        )


def as_fast_net(model) -> FastNet:
    """``model`` if it is a :class:`FastNet`, else a FastNet of the network with the default
    options."""
    return model if isinstance(model, FastNet) else FastNet(model)


def _orient(a: np.ndarray, k: int) -> np.ndarray:
    """Orientation ``k`` (0..7) of the last two axes: ``k % 4`` quarter turns, then a mirror
    image from 4 on."""
    a = np.rot90(a, k % 4, axes=(-2, -1))
    return a[..., ::-1] if k >= 4 else a


def _orient_back(a: np.ndarray, k: int) -> np.ndarray:
    """The inverse of :func:`_orient`."""
    return np.rot90(a[..., ::-1] if k >= 4 else a, -(k % 4), axes=(-2, -1))
