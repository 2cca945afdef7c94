"""Fast CPU inference: whole-view prediction and single-patch refinement.

The fastest correct CPU path measured on the project's 2-core machine
(``benchmarks/bench_refine_latency.py``) is a TorchScript trace of the eval-mode network,
frozen (constants folded, batch norm fused into convolutions) and run on channels-last tensors
under ``torch.inference_mode``: about 2.5 times faster than eager PyTorch for one 256 x 256
patch, with logits equal to eager within 1e-5. :class:`FastNet` builds it and checks the
equality on the tracing input, falling back to eager if it ever fails.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable, Iterator
from types import MappingProxyType

import numpy as np
import torch

from refinement_model.checkpoints import load_checkpoint
from refinement_model.errors import Cancelled
from refinement_model.nets import refiner_input
from refinement_model.patches import PatchGrid, stitch_logits

__all__ = [
    "APP_ITERATIONS",
    "APP_ORIENTATIONS",
    "APP_REFINER_OPTIONS",
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

# Largest |logit| difference allowed between the optimised path and eager PyTorch.
EQUALITY_TOLERANCE = 1e-3
# Orientation counts FastNet (and so PatchRefiner) averages over: quarter turns, then their
# mirror images.
ORIENTATIONS = (1, 2, 4, 8)
# What the app commits (and the evaluation simulates): the refined logits averaged over four
# quarter turns, +1.2 points of validation gain over one pass (benchmarks/bench_refiner_gain.py;
# eight are no better), refined twice: the first refinement replaces the base logits as the
# refiner's prediction input for the second, +0.9 points of validation gain and +1.8 points of
# mean peak relative gain in the evaluation protocol (25.5% -> 27.3%, docs/evaluation). Eight
# times one pass, so the app shows the one-pass refinement first.
APP_ORIENTATIONS = 4
APP_ITERATIONS = 2
# The PatchRefiner options of the app's refiner (read only).
APP_REFINER_OPTIONS = MappingProxyType({"orientations": APP_ORIENTATIONS,
                                        "iterations": APP_ITERATIONS})


def _checked_orientations(orientations: int) -> int:
    if orientations not in ORIENTATIONS:
        raise ValueError(f"orientations must be one of {ORIENTATIONS}, got {orientations!r}")
    return orientations


def _checked_iterations(iterations: int) -> int:
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive int, got {iterations!r}")
    return iterations


def refine_iteratively(forward: Callable[[np.ndarray], np.ndarray], images: torch.Tensor,
                       base_logits: np.ndarray, strokes: torch.Tensor,
                       iterations: int) -> np.ndarray:
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
    """A network as a NumPy-in, NumPy-out callable on the fastest correct CPU path.

    Parameters
    ----------
    model : torch.nn.Module
        A network from :func:`~refinement_model.nets.create_model` (never modified; a copy is
        traced).
    optimise : bool, optional
        Trace and freeze the network with channels-last memory; False runs eager PyTorch.
    net_size : int, optional
        Side of the patches used to trace and verify the optimised path.
    orientations : {1, 2, 4, 8}, optional
        Average the logits over this many orientations of each input (test-time augmentation):
        the first 1, 2 or 4 quarter turns, or those four and their mirror images. Each costs one
        more pass of the network.

    Attributes
    ----------
    spec : ModelSpec
    optimised : bool
        Whether the traced path is in use (False after a failed equality check).
    orientations : int
    """

    def __init__(self, model: torch.nn.Module, *, optimise: bool = True, net_size: int = 256,
                 orientations: int = 1):
        self.orientations = _checked_orientations(orientations)
        model = getattr(model, "module", model)
        self.spec = model.spec
        self._eager = model
        self._traced = None
        if optimise:
            self._traced = self._trace(model, net_size)
        self.optimised = self._traced is not None

    def _trace(self, model: torch.nn.Module, net_size: int):
        was_training = model.training
        model.eval()
        example = torch.randn(1, self.spec.in_channels, net_size, net_size,
                              generator=torch.Generator().manual_seed(0))
        try:
            # torch.jit is deprecated in favour of torch.compile, which is slower here (see
            # the benchmark); a failing trace falls back to eager.
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                expected = model(example)
                # a copy, so that the caller's model keeps its memory format
                clone = copy.deepcopy(model).to(memory_format=torch.channels_last)
                # check_trace would run the network twice more; the check below suffices
                traced = torch.jit.freeze(torch.jit.trace(
                    clone, example.contiguous(memory_format=torch.channels_last),
                    check_trace=False).eval())
                got = traced(example.contiguous(memory_format=torch.channels_last))
        except RuntimeError:
            return None
        finally:
            model.train(was_training)
        if float((got - expected).abs().max()) >= EQUALITY_TOLERANCE:
            return None
        return traced

    def with_orientations(self, orientations: int) -> FastNet:
        """The same network (shared, not traced again) averaging over ``orientations``."""
        sibling = copy.copy(self)
        sibling.orientations = _checked_orientations(orientations)
        return sibling

    def warm_up(self, batch_sizes, size: int) -> None:
        """Run the traced network once per batch size, so that first calls are not slow.

        TorchScript specialises its graph to the first input shapes it sees; a new batch size
        costs two to three times a normal call once (measured: 55 instead of 18 ms for one
        256 x 256 patch).
        """
        if self._traced is None:
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
            raise ValueError(f"batch must have shape (B, {self.spec.in_channels}, S, S), "
                             f"got {batch.shape}")
        if self.orientations == 1:
            return self._logits(batch)
        # every orientation in one pass of the network
        turned = np.concatenate([_orient(batch, k) for k in range(self.orientations)])
        logits = self._logits(turned).reshape(self.orientations, len(batch), *batch.shape[2:])
        return np.mean([_orient_back(out, k) for k, out in enumerate(logits)], axis=0,
                       dtype=np.float32)

    def _logits(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch))
        with torch.inference_mode():
            if self._traced is not None:
                out = self._traced(x.contiguous(memory_format=torch.channels_last))
            else:
                was_training = self._eager.training
                self._eager.eval()
                # a network being trained on a GPU is validated where it lives
                device = next(self._eager.parameters()).device
                out = self._eager(x.to(device)).cpu()
                self._eager.train(was_training)
        return out[:, 0].contiguous().numpy()


def _as_fast(model) -> FastNet:
    return model if isinstance(model, FastNet) else FastNet(model)


def predict_patch_logits(model, image: np.ndarray, grid: PatchGrid, *, batch_size: int = 8,
                         cancel: Callable[[], bool] | None = None) -> Iterator[np.ndarray]:
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


def predict_image(model, image: np.ndarray, *, grid: PatchGrid | None = None,
                  batch_size: int = 8, progress: Callable[[int, int], None] | None = None,
                  cancel: Callable[[], bool] | None = None) -> np.ndarray:
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


def predict_view(model, view, *, grid: PatchGrid | None = None, batch_size: int = 8,
                 progress: Callable[[int, int], None] | None = None,
                 cancel: Callable[[], bool] | None = None) -> np.ndarray:
    """Whole-view probability map of a :class:`~refinement_model.views.MirrorView`.

    The network's inputs (``model.spec.inputs``) are taken from the view and normalised with
    :func:`refinement_model.views.network_input`; see :func:`predict_image` for the rest.

    Returns
    -------
    probabilities : (H, W) float32 ndarray
    """
    from refinement_model.views import network_input

    image = network_input(view, _as_fast(model).spec.inputs)
    return predict_image(model, image, grid=grid, batch_size=batch_size, progress=progress,
                         cancel=cancel)


def _grid_options(metadata: dict) -> dict:
    return {key: int(metadata[key]) for key in ("patch_size", "stride", "net_size")
            if key in metadata}


class Predictor:
    """The base model of a checkpoint, ready for whole-view prediction.

    Parameters
    ----------
    checkpoint : str or os.PathLike
        A base checkpoint.
    optimise : bool, optional
        Use the traced fast path (see :class:`FastNet`).

    Attributes
    ----------
    net : FastNet
    metadata : dict
        The checkpoint metadata.
    """

    def __init__(self, checkpoint, *, optimise: bool = True):
        model, self.metadata = load_checkpoint(checkpoint, kind="base")
        self.path = os.fspath(checkpoint)
        self.grid_options = _grid_options(self.metadata)
        self.net = FastNet(model, optimise=optimise,
                           net_size=self.grid_options.get("net_size", 256))

    def grid(self, height: int, width: int) -> PatchGrid:
        """The patch grid this model was trained for, over a view of the given size."""
        return PatchGrid(height, width, **self.grid_options)

    def predict_view(self, view, *, batch_size: int = 8,
                     progress: Callable[[int, int], None] | None = None,
                     cancel: Callable[[], bool] | None = None) -> np.ndarray:
        """Probability map (H, W) float32 of a view; see :func:`predict_view`."""
        height, width = view.depth.shape
        return predict_view(self.net, view, grid=self.grid(height, width),
                            batch_size=batch_size, progress=progress, cancel=cancel)


class PatchRefiner:
    """Single-patch refinement for the app and the simulation.

    Parameters
    ----------
    checkpoint : str or os.PathLike or torch.nn.Module
        A refiner checkpoint, or a refiner network in memory (e.g. during training).
    optimise : bool, optional
        Use the traced fast path (see :class:`FastNet`).
    orientations : {1, 2, 4, 8}, optional
        Average the refined logits over this many orientations of the patch (see
        :class:`FastNet`; the refiner was trained on all eight).
    iterations : int, optional
        Refine this many times, each refinement's logits replacing the base logits as the
        prediction input of the next, with the same strokes.

    Attributes
    ----------
    preview : PatchRefiner or None
        With several orientations or iterations, the same refiner in one pass (sharing the
        network): the app shows its result at once and the full one when it is ready.

    Examples
    --------
    ``refined = PatchRefiner("refiner.safetensors").refine(image, base_logits, strokes)``
    """

    def __init__(self, checkpoint, *, optimise: bool = True, orientations: int = 1,
                 iterations: int = 1):
        if isinstance(checkpoint, torch.nn.Module):
            model, self.metadata = checkpoint, {}
        else:
            model, self.metadata = load_checkpoint(checkpoint, kind="refiner")
        if model.spec.kind != "refiner":
            raise ValueError(f"checkpoint must be a refiner network, got a {model.spec.kind}")
        self.net_size = int(self.metadata.get("net_size", 256))
        self.iterations = _checked_iterations(iterations)
        self.net = FastNet(model, optimise=optimise, net_size=self.net_size,
                           orientations=orientations)
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

    def with_options(self, *, orientations: int | None = None,
                     iterations: int | None = None) -> PatchRefiner:
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

    def refine(self, image_patch: np.ndarray, base_logits: np.ndarray,
               stroke_channel: np.ndarray) -> np.ndarray:
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
            raise ValueError(f"image_patch must have shape ({self.spec.image_channels}, S, S), "
                             f"got {image_patch.shape}")
        return self.refine_batch(image_patch[None], np.asarray(base_logits)[None],
                                 np.asarray(stroke_channel)[None])[0]

    def refine_batch(self, image_patches: np.ndarray, base_logits: np.ndarray,
                     stroke_channels: np.ndarray) -> np.ndarray:
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
            raise ValueError(f"image_patches must have shape (B, {channels}, S, S), "
                             f"got {image_patches.shape}")
        size = (image_patches.shape[0], *image_patches.shape[2:])
        for name, planes in (("base_logits", base_logits), ("stroke_channels", stroke_channels)):
            if np.shape(planes) != size:
                raise ValueError(f"{name} must have shape {size}, got {np.shape(planes)}")
        return refine_iteratively(
            self.net, torch.from_numpy(image_patches), base_logits,
            torch.from_numpy(np.asarray(stroke_channels, dtype=np.float32)), self.iterations)

    __call__ = refine


def _orient(a: np.ndarray, k: int) -> np.ndarray:
    """Orientation ``k`` (0..7) of the last two axes: ``k % 4`` quarter turns, then a mirror
    image from 4 on."""
    a = np.rot90(a, k % 4, axes=(-2, -1))
    return a[..., ::-1] if k >= 4 else a


def _orient_back(a: np.ndarray, k: int) -> np.ndarray:
    """The inverse of :func:`_orient`."""
    return np.rot90(a[..., ::-1] if k >= 4 else a, -(k % 4), axes=(-2, -1))
