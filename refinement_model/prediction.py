"""Whole-view prediction: a base network over the patches of a view, stitched.

:func:`predict_image` and :func:`predict_view` run any base network (a :class:`FastNet` or a
``torch.nn.Module``); :class:`Predictor` loads a base checkpoint with the patch grid it was
trained for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import numpy as np

from refinement_model.errors import Cancelled
from refinement_model.fast_net import as_fast_net, checkpoint_net
from refinement_model.patches import PatchGrid, stitch_logits
from refinement_model.views import network_input

__all__ = ["Predictor", "predict_image", "predict_patch_logits", "predict_view"]


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
    net = as_fast_net(model)
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
    image = network_input(view, as_fast_net(model).spec.inputs)
    return predict_image(
        model, image, grid=grid, batch_size=batch_size, progress=progress, cancel=cancel
    )


def _grid_options(metadata: dict) -> dict:
    return {
        key: int(metadata[key]) for key in ("patch_size", "stride", "net_size") if key in metadata
    }


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
        :func:`~refinement_model.network_loader.user_cache_folder`); default: export in memory.

    Attributes
    ----------
    net : FastNet
    metadata : dict
        The checkpoint metadata.
    """

    def __init__(
        self, checkpoint, *, optimise: bool = True, backend: str = "auto", onnx_cache=None
    ):
        self.net, self.metadata = checkpoint_net(
            checkpoint, "base", optimise=optimise, backend=backend, onnx_cache=onnx_cache
        )
        self.path = os.fspath(checkpoint)
        self.grid_options = _grid_options(self.metadata)

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
