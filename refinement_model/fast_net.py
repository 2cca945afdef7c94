"""A network as a NumPy-in, NumPy-out callable on the fastest backend equal to eager PyTorch.

:class:`FastNet` runs a network on one of the backends of :mod:`refinement_model.backends`
(ONNX Runtime by default on a CPU, TorchScript and eager PyTorch as fall-backs, eager PyTorch
on a GPU), each checked equal to eager PyTorch when it is built; the orientation averaging is
the same NumPy code around any backend.

:func:`checkpoint_net` builds the FastNet of a checkpoint file. This module imports PyTorch
only to build a backend from a network: a trusted cached ONNX export runs without it.
"""

from __future__ import annotations

import copy
import os

import numpy as np

from refinement_model.blocks import NET_MULTIPLE
from refinement_model.checkpoint_header import read_spec
from refinement_model.onnx_backend import trusted_cached_backend
from refinement_model.refiner_options import checked_orientations

__all__ = ["ENGINE_BATCH", "FastNet", "as_fast_net", "checkpoint_net"]

# Most images per backend run. Per image a run of 8 is as fast as one of 32 on a CPU
# (benchmarks/bench_refine_latency.py), while the runtime's memory grows with the batch
# (ONNX Runtime keeps its arena: +0.2 GB for 8 refiner patches, +0.85 GB for 32).
ENGINE_BATCH = 8
# Most images in an upright pass that _RecentPass keeps: a stroke's window or its few patches,
# never a whole view's batch (it keeps a copy of the inputs).
_RECENT_BATCH = ENGINE_BATCH


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
        more pass of the network. The upright pass runs in a batch of its own and is kept for
        the next call (shared with the siblings of :meth:`with_orientations`): a call on the
        same inputs reuses it, so the app's full refinement of a stroke does not repeat the
        one-pass preview it showed first. The other orientations go through the backend
        together (a quarter turn of a non-square input in a batch of its own).
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
        The eager network the backend was built from (shared: never modify it); a FastNet
        made by :meth:`from_engine` loads it from its checkpoint when first asked.
    engine : EagerBackend or TorchScriptBackend or OnnxBackend
    backend : str
        The backend in use: ``engine.name``.
    optimised : bool
        Whether it is other than eager PyTorch.
    orientations : int
    """

    def __init__(
        self,
        model,
        *,
        optimise: bool = True,
        net_size: int = 256,
        orientations: int = 1,
        backend: str = "auto",
        onnx_cache=None,
    ):
        from refinement_model.backends import build_backend  # PyTorch: see the module docstring

        self.orientations = checked_orientations(orientations)
        self._recent = _RecentPass()
        model = getattr(model, "module", model)
        self.spec = model.spec
        self._model, self._checkpoint = model, None
        self.engine = build_backend(
            model, backend if optimise else "eager", net_size=net_size, onnx_cache=onnx_cache
        )

    @classmethod
    def from_engine(
        cls, engine, spec, *, checkpoint=None, model=None, orientations: int = 1
    ) -> FastNet:
        """A FastNet running a backend that was not built from a network by :class:`FastNet`.

        Parameters
        ----------
        engine : callable
            A backend (``name``; (B, C, S, S) -> (B, S, S) float32 logits) checked equal to
            eager PyTorch, as :func:`~refinement_model.onnx_backend.trusted_cached_backend`
            checks a cached export.
        spec : ModelSpec
        checkpoint : str or os.PathLike, optional
            Where :attr:`model` is loaded from, if it is ever asked for.
        model : torch.nn.Module, optional
            The eager network itself (instead of ``checkpoint``).
        orientations : {1, 2, 4, 8}, optional
        """
        if (checkpoint is None) == (model is None):
            raise ValueError("give exactly one of the engine's checkpoint and its eager model")
        net = cls.__new__(cls)
        net.orientations = checked_orientations(orientations)
        net._recent = _RecentPass()
        net.spec, net.engine = spec, engine
        net._model = model
        net._checkpoint = None if checkpoint is None else os.fspath(checkpoint)
        return net

    @property
    def model(self):
        """The eager network (torch.nn.Module) the backend runs."""
        if self._model is None:
            from refinement_model.checkpoints import load_checkpoint  # PyTorch, when needed

            self._model, _ = load_checkpoint(self._checkpoint, kind=self.spec.kind)
        return self._model

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
        """Run the backend on the inputs to expect, so that the first strokes are not slow.

        TorchScript specialises its graph to the first input shapes it sees; a new batch size
        costs two to three times a normal call once (measured: 55 instead of 18 ms for one
        256 x 256 patch): it runs once per batch size of ``size`` patches. ONNX Runtime grows
        its memory arena over the first runs of a larger input (measured: 175 instead of
        135 ms for the four orientations of a 384 x 384 window, the first few strokes): it runs
        once on the window of 2 x 2 half-overlapping patches most strokes are refined in
        (:mod:`refinement_model.blocks`). Eager PyTorch needs no warm-up.
        """
        channels = self.spec.in_channels
        if self.backend == "torchscript":
            for count in batch_sizes:
                self(np.zeros((count, channels, size, size), np.float32))
        elif self.backend == "onnx":
            side = NET_MULTIPLE * -(-(3 * size // 2) // NET_MULTIPLE)  # rounded up
            self(np.zeros((1, channels, side, side), np.float32))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Logits of a batch.

        Parameters
        ----------
        batch : (B, in_channels, h, w) float32 ndarray
            h and w multiples of 32.

        Returns
        -------
        logits : (B, h, w) float32 ndarray
        """
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1] != self.spec.in_channels:
            raise ValueError(
                f"batch must have shape (B, {self.spec.in_channels}, S, S), got {batch.shape}"
            )
        upright = self._recent.logits(self.engine, batch)
        if upright is None:
            upright = self._run(batch)
            self._recent.keep(self.engine, batch, upright)
        if self.orientations == 1:
            return upright
        # a quarter turn of a non-square batch has the other shape: those go in a batch of
        # their own
        groups = [range(1, self.orientations)]
        if batch.shape[2] != batch.shape[3]:
            groups = [range(2, self.orientations, 2), range(1, self.orientations, 2)]
        outs = {0: upright}
        for group in filter(None, groups):
            turned = np.concatenate([_orient(batch, k) for k in group])
            logits = self._run(turned).reshape(len(group), len(batch), *turned.shape[2:])
            outs.update({k: _orient_back(out, k) for k, out in zip(group, logits, strict=True)})
        return np.mean([outs[k] for k in range(self.orientations)], axis=0, dtype=np.float32)

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


def checkpoint_net(
    checkpoint,
    kind: str,
    *,
    optimise: bool = True,
    orientations: int = 1,
    backend: str = "auto",
    onnx_cache=None,
) -> tuple[FastNet, dict]:
    """The FastNet of a checkpoint file, and the checkpoint's metadata.

    With the ``"onnx"`` or ``"auto"`` backend and a cache folder holding a trusted export of the
    checkpoint (:func:`~refinement_model.onnx_backend.trusted_cached_backend`), the network runs
    on it without importing PyTorch; so ``"auto"`` prefers a cached export to a GPU (name
    ``"cuda"`` for that). Otherwise the checkpoint is loaded into PyTorch and the backend built
    from it (and cached, see :class:`FastNet`).

    Parameters
    ----------
    checkpoint : str or os.PathLike
    kind : {"base", "refiner"}
        Refuse checkpoints of the other kind.
    optimise, orientations, backend
        See :class:`FastNet`.
    onnx_cache : str or os.PathLike, optional
        The cache folder (see :class:`~refinement_model.onnx_export.OnnxCache`); default:
        export in memory.

    Returns
    -------
    net : FastNet
        Checked on its probe batch at the checkpoint's ``net_size`` (default 256).
    metadata : dict

    Raises
    ------
    CheckpointError
        The checkpoint is missing, foreign, corrupt or of the other kind.
    """
    spec, metadata = read_spec(checkpoint, kind=kind)
    size = int(metadata.get("net_size", 256))
    if optimise and backend in ("auto", "onnx") and onnx_cache is not None:
        engine = trusted_cached_backend(
            onnx_cache, checkpoint, channels=spec.in_channels, size=size
        )
        if engine is not None:
            net = FastNet.from_engine(
                engine, spec, checkpoint=checkpoint, orientations=orientations
            )
            return net, metadata
    from refinement_model.checkpoints import load_checkpoint  # PyTorch, as above
    from refinement_model.onnx_export import onnx_cache_for

    cache = onnx_cache_for(onnx_cache, checkpoint)  # hashed before loading: see onnx_cache_for
    model, metadata = load_checkpoint(checkpoint, kind=kind)
    net = FastNet(
        model,
        optimise=optimise,
        net_size=size,
        orientations=orientations,
        backend=backend,
        onnx_cache=cache,
    )
    return net, metadata


def as_fast_net(model) -> FastNet:
    """``model`` if it is a :class:`FastNet`, else a FastNet of the network with the default
    options."""
    return model if isinstance(model, FastNet) else FastNet(model)


class _RecentPass:
    """The last upright pass of a small batch: its inputs (a copy) and its logits.

    One entry, replaced as a whole, so that the GUI thread's preview and a worker's full
    refinement may share it.
    """

    def __init__(self):
        self._entry = None

    def keep(self, engine, batch: np.ndarray, logits: np.ndarray) -> None:
        if len(batch) <= _RECENT_BATCH:
            self._entry = (engine, batch.copy(), logits.copy())

    def logits(self, engine, batch: np.ndarray) -> np.ndarray | None:
        """A copy of the kept logits if they are ``engine``'s of ``batch``, else None."""
        entry = self._entry
        if entry is None or entry[0] is not engine or not np.array_equal(entry[1], batch):
            return None
        return entry[2].copy()


def _orient(a: np.ndarray, k: int) -> np.ndarray:
    """Orientation ``k`` (0..7) of the last two axes: ``k % 4`` quarter turns, then a mirror
    image from 4 on."""
    a = np.rot90(a, k % 4, axes=(-2, -1))
    return a[..., ::-1] if k >= 4 else a


def _orient_back(a: np.ndarray, k: int) -> np.ndarray:
    """The inverse of :func:`_orient`."""
    return np.rot90(a[..., ::-1] if k >= 4 else a, -(k % 4), axes=(-2, -1))
