"""Fast inference: whole-view prediction and single-patch refinement.

:class:`FastNet` runs a network on one of the backends of :mod:`refinement_model.backends`
(ONNX Runtime by default on a CPU, TorchScript and eager PyTorch as fall-backs, eager PyTorch
on a GPU), each checked equal to eager PyTorch when it is built; the orientation averaging and
the repeated refinement are the same NumPy code around any backend.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from types import MappingProxyType

import numpy as np
import torch

from refinement_model.backends import BACKENDS, EQUALITY_TOLERANCE, build_backend
from refinement_model.checkpoints import load_checkpoint
from refinement_model.errors import Cancelled
from refinement_model.nets import refiner_input
from refinement_model.patches import PatchGrid, stitch_logits

__all__ = [
    "APP_ITERATIONS",
    "APP_ORIENTATIONS",
    "APP_REFINER_OPTIONS",
    "BACKENDS",
    "EQUALITY_TOLERANCE",
    "ORIENTATIONS",
    "FastNet",
    "PatchRefiner",
    "Predictor",
    "predict_image",
    "predict_patch_logits",
    "predict_view",
    "refine_iteratively",
]

# Orientation counts FastNet (and so PatchRefiner) averages over: quarter turns, then their
# mirror images.
ORIENTATIONS = (1, 2, 4, 8)
# What the app commits (and the evaluation simulates): the refined logits averaged over four
# quarter turns, +1.2 points of validation gain over one pass (benchmarks/bench_refiner_gain.py;
# eight are no better), refined twice: the first refinement replaces the base logits as the
# refiner's prediction input for the second, +0.9 points of validation gain and +1.8 points of
# mean peak relative gain in the evaluation protocol (docs/evaluation). Eight
# times one pass, so the app shows the one-pass refinement first.
APP_ORIENTATIONS = 4
APP_ITERATIONS = 2
# The PatchRefiner options of the app's refiner (read only).
APP_REFINER_OPTIONS = MappingProxyType(
    {"orientations": APP_ORIENTATIONS, "iterations": APP_ITERATIONS}
)
# Most images per backend run. Per image a run of 8 is as fast as one of 32 on a CPU
# (benchmarks/bench_refine_latency.py), while the runtime's memory grows with the batch
# (ONNX Runtime keeps its arena: +0.2 GB for 8 refiner patches, +0.85 GB for 32).
ENGINE_BATCH = 8


def _checked_orientations(orientations: int) -> int:
    if orientations not in ORIENTATIONS:
        raise ValueError(f"orientations must be one of {ORIENTATIONS}, got {orientations!r}")
    return orientations


def _checked_iterations(iterations: int) -> int:
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive int, got {iterations!r}")
    return iterations


def refine_iteratively(
    forward: Callable[[np.ndarray], np.ndarray],
    images: torch.Tensor,
    base_logits: np.ndarray,
    strokes: torch.Tensor,
    iterations: int,
) -> np.ndarray:
    """Refined logits, refined ``iterations`` times: each refinement's logits replace the base
    logits as the prediction input of the next, with the same strokes.

    Parameters
    ----------
    forward : callable
        The refiner: stacked inputs (B, C + 2, S, S) float32 ndarray -> logits (B, S, S).
    images : (B, C, S, S) float32 tensor
    base_logits : (B, S, S) float32 ndarray
    strokes : (B, S, S) float32 tensor
    iterations : int
        At least 1.

    Returns
    -------
    logits : (B, S, S) float32 ndarray
    """
    logits = np.asarray(base_logits, dtype=np.float32)
    for _ in range(_checked_iterations(iterations)):
        logits = forward(refiner_input(images, torch.from_numpy(logits), strokes).numpy())
    return logits


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
        self.orientations = _checked_orientations(orientations)
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
        sibling.orientations = _checked_orientations(orientations)
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


def _as_fast(model) -> FastNet:
    return model if isinstance(model, FastNet) else FastNet(model)


def predict_patch_logits(
    model,
    image: np.ndarray,
    grid: PatchGrid,
    *,
    batch_size: int = 8,
    cancel: Callable[[], bool] | None = None,
) -> Iterator[np.ndarray]:
    """Logits of every patch of a grid, in grid order, computed in batches.

    Parameters
    ----------
    model : FastNet or torch.nn.Module
        A base network.
    image : (C, H, W) float32 ndarray
        Normalised network input of the whole view (``views.network_input``).
    grid : PatchGrid
        Over (H, W).
    batch_size : int, optional
    cancel : callable() -> bool, optional
        Checked before each batch; raises :class:`Cancelled`.

    Yields
    ------
    logits : (net_size, net_size) float32 ndarray
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    net = _as_fast(model)
    for start in range(0, len(grid), batch_size):
        if cancel is not None and cancel():
            raise Cancelled("prediction cancelled")
        indices = range(start, min(start + batch_size, len(grid)))
        batch = np.stack([grid.extract(image, i) for i in indices]).astype(np.float32, copy=False)
        yield from net(batch)


def predict_image(
    model,
    image: np.ndarray,
    *,
    grid: PatchGrid | None = None,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Whole-view probability map of a normalised network input.

    Parameters
    ----------
    model : FastNet or torch.nn.Module
        A base network.
    image : (C, H, W) float32 ndarray
        Never modified.
    grid : PatchGrid, optional
        Defaults to the paper's grid (512 px patches, stride 256, network size 256).
    batch_size : int, optional
    progress : callable(done, total), optional
        Called after each patch.
    cancel : callable() -> bool, optional
        Raises :class:`Cancelled` when it returns True.

    Returns
    -------
    probabilities : (H, W) float32 ndarray
        Values in [0, 1].
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must have shape (C, H, W), got {image.shape}")
    if grid is None:
        grid = PatchGrid(image.shape[1], image.shape[2])
    elif grid.shape != image.shape[1:]:
        raise ValueError(f"grid covers {grid.shape}, the image is {image.shape[1:]}")
    logits = predict_patch_logits(model, image, grid, batch_size=batch_size, cancel=cancel)
    return stitch_logits(grid, logits, progress=progress, cancel=cancel)


def predict_view(
    model,
    view,
    *,
    grid: PatchGrid | None = None,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Whole-view probability map of a :class:`~refinement_model.views.MirrorView`.

    The network's inputs (``model.spec.inputs``) are taken from the view and normalised with
    :func:`refinement_model.views.network_input`; see :func:`predict_image` for the rest.

    Returns
    -------
    probabilities : (H, W) float32 ndarray
    """
    from refinement_model.views import network_input

    image = network_input(view, _as_fast(model).spec.inputs)
    return predict_image(
        model, image, grid=grid, batch_size=batch_size, progress=progress, cancel=cancel
    )


def _grid_options(metadata: dict) -> dict:
    return {
        key: int(metadata[key]) for key in ("patch_size", "stride", "net_size") if key in metadata
    }


def _onnx_cache(folder, checkpoint):
    """The OnnxCache of a checkpoint in ``folder`` (hashed before the checkpoint is loaded, so
    that the digest names the weights in use), or None."""
    if folder is None:
        return None
    if isinstance(checkpoint, torch.nn.Module):
        raise ValueError("onnx_cache needs a checkpoint file, got a network in memory")
    from refinement_model.onnx_export import OnnxCache

    return OnnxCache(folder, checkpoint)


class Predictor:
    """The base model of a checkpoint, ready for whole-view prediction.

    Parameters
    ----------
    checkpoint : str or os.PathLike
        A base checkpoint.
    optimise : bool, optional
        False runs eager PyTorch (see :class:`FastNet`).
    backend : {"auto", "onnx", "torchscript", "eager", "cuda"}, optional
        See :class:`FastNet`.
    onnx_cache : str or os.PathLike, optional
        A folder for the ONNX export of the checkpoint, keyed by its SHA-256 (see
        :class:`~refinement_model.onnx_export.OnnxCache`; the documented place is
        :func:`~refinement_model.onnx_export.user_cache_folder`); default: export in memory.

    Attributes
    ----------
    net : FastNet
    metadata : dict
        The checkpoint metadata.
    """

    def __init__(
        self, checkpoint, *, optimise: bool = True, backend: str = "auto", onnx_cache=None
    ):
        cache = _onnx_cache(onnx_cache, checkpoint)
        model, self.metadata = load_checkpoint(checkpoint, kind="base")
        self.path = os.fspath(checkpoint)
        self.grid_options = _grid_options(self.metadata)
        self.net = FastNet(
            model,
            optimise=optimise,
            net_size=self.grid_options.get("net_size", 256),
            backend=backend,
            onnx_cache=cache,
        )

    def grid(self, height: int, width: int) -> PatchGrid:
        """The patch grid this model was trained for, over a view of the given size."""
        return PatchGrid(height, width, **self.grid_options)

    def predict_view(
        self,
        view,
        *,
        batch_size: int = 8,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        """Probability map (H, W) float32 of a view; see :func:`predict_view`."""
        height, width = view.depth.shape
        return predict_view(
            self.net,
            view,
            grid=self.grid(height, width),
            batch_size=batch_size,
            progress=progress,
            cancel=cancel,
        )


class PatchRefiner:
    """Single-patch refinement for the app and the simulation.

    Parameters
    ----------
    checkpoint : str or os.PathLike or torch.nn.Module
        A refiner checkpoint, or a refiner network in memory (e.g. during training).
    optimise : bool, optional
        False runs eager PyTorch (see :class:`FastNet`).
    orientations : {1, 2, 4, 8}, optional
        Average the refined logits over this many orientations of the patch (see
        :class:`FastNet`; the refiner was trained on all eight).
    iterations : int, optional
        Refine this many times, each refinement's logits replacing the base logits as the
        prediction input of the next, with the same strokes.
    backend : {"auto", "onnx", "torchscript", "eager", "cuda"}, optional
        See :class:`FastNet`.
    onnx_cache : str or os.PathLike, optional
        A folder for the ONNX export of the checkpoint file (see :class:`Predictor`).

    Attributes
    ----------
    path : str or None
        The checkpoint file; None for a network in memory.
    preview : PatchRefiner or None
        With several orientations or iterations, the same refiner in one pass (sharing the
        network): the app shows its result at once and the full one when it is ready.

    Examples
    --------
    ``refined = PatchRefiner("refiner.safetensors").refine(image, base_logits, strokes)``
    """

    def __init__(
        self,
        checkpoint,
        *,
        optimise: bool = True,
        orientations: int = 1,
        iterations: int = 1,
        backend: str = "auto",
        onnx_cache=None,
    ):
        cache = _onnx_cache(onnx_cache, checkpoint)
        if isinstance(checkpoint, torch.nn.Module):
            model, self.metadata, self.path = checkpoint, {}, None
        else:
            model, self.metadata = load_checkpoint(checkpoint, kind="refiner")
            self.path = os.fspath(checkpoint)
        if model.spec.kind != "refiner":
            raise ValueError(f"checkpoint must be a refiner network, got a {model.spec.kind}")
        self.net_size = int(self.metadata.get("net_size", 256))
        self.iterations = _checked_iterations(iterations)
        self.net = FastNet(
            model,
            optimise=optimise,
            net_size=self.net_size,
            orientations=orientations,
            backend=backend,
            onnx_cache=cache,
        )
        self._warm_up()
        self.spec = model.spec
        self.preview = self._preview()

    def _preview(self) -> PatchRefiner | None:
        if self.orientations == 1 and self.iterations == 1:
            return None
        return self.with_options(orientations=1, iterations=1)

    def _warm_up(self) -> None:
        # a stroke usually touches 1 to 4 patches, refined in one batch
        self.net.warm_up(range(1, 5), self.net_size)

    @property
    def orientations(self) -> int:
        """Orientations the refined logits are averaged over."""
        return self.net.orientations

    def with_options(
        self, *, orientations: int | None = None, iterations: int | None = None
    ) -> PatchRefiner:
        """The same refiner, sharing its network, with other ``orientations`` or ``iterations``
        (the app's one-pass preview of its full refinement, say); None keeps this one's."""
        sibling = copy.copy(self)
        if iterations is not None:
            sibling.iterations = _checked_iterations(iterations)
        if orientations is not None:
            sibling.net = self.net.with_orientations(orientations)
            sibling._warm_up()
        sibling.preview = sibling._preview()
        return sibling

    def refine(
        self, image_patch: np.ndarray, base_logits: np.ndarray, stroke_channel: np.ndarray
    ) -> np.ndarray:
        """Refined logits of one patch.

        Parameters
        ----------
        image_patch : (C, S, S) float32 ndarray
            Normalised image channels at network size (C = the base model's inputs).
        base_logits : (S, S) float32 ndarray
            Raw base-model logits of the patch.
        stroke_channel : (S, S) float32 ndarray
            All strokes on the patch, in {-1, 0, +1}.

        Returns
        -------
        logits : (S, S) float32 ndarray
            A new array; the inputs are never modified.
        """
        image_patch = np.asarray(image_patch, dtype=np.float32)
        if image_patch.ndim != 3:
            raise ValueError(
                f"image_patch must have shape ({self.spec.image_channels}, S, S), "
                f"got {image_patch.shape}"
            )
        return self.refine_batch(
            image_patch[None], np.asarray(base_logits)[None], np.asarray(stroke_channel)[None]
        )[0]

    def refine_batch(
        self, image_patches: np.ndarray, base_logits: np.ndarray, stroke_channels: np.ndarray
    ) -> np.ndarray:
        """Refined logits of a batch of patches in one forward pass.

        Parameters
        ----------
        image_patches : (B, C, S, S) float32 ndarray
        base_logits, stroke_channels : (B, S, S) float32 ndarrays
            As in :meth:`refine`, per patch.

        Returns
        -------
        logits : (B, S, S) float32 ndarray
        """
        image_patches = np.asarray(image_patches, dtype=np.float32)
        channels = self.spec.image_channels
        if image_patches.ndim != 4 or image_patches.shape[1] != channels:
            raise ValueError(
                f"image_patches must have shape (B, {channels}, S, S), got {image_patches.shape}"
            )
        size = (image_patches.shape[0], *image_patches.shape[2:])
        for name, planes in (("base_logits", base_logits), ("stroke_channels", stroke_channels)):
            if np.shape(planes) != size:
                raise ValueError(f"{name} must have shape {size}, got {np.shape(planes)}")
        return refine_iteratively(
            self.net,
            torch.from_numpy(image_patches),
            base_logits,
            torch.from_numpy(np.asarray(stroke_channels, dtype=np.float32)),
            self.iterations,
        )

    __call__ = refine


def _orient(a: np.ndarray, k: int) -> np.ndarray:
    """Orientation ``k`` (0..7) of the last two axes: ``k % 4`` quarter turns, then a mirror
    image from 4 on."""
    a = np.rot90(a, k % 4, axes=(-2, -1))
    return a[..., ::-1] if k >= 4 else a


def _orient_back(a: np.ndarray, k: int) -> np.ndarray:
    """The inverse of :func:`_orient`."""
    return np.rot90(a[..., ::-1] if k >= 4 else a, -(k % 4), axes=(-2, -1))
