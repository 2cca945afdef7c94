"""One patch's refinement as the session stores it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from refinement_model.blocks import patch_inputs, refine_patches_together
from refinement_model.corrections import propagated_change
from refinement_model.errors import Cancelled
from refinement_model.patches import PatchGrid

__all__ = ["propagated_patches", "refine_patches"]

_DELTA_LIMIT = 1e4


def refine_patches(
    grid: PatchGrid, refine_many, image: np.ndarray, base_logits: np.ndarray, job
) -> dict:
    """The refiner's change of the patches a stroke touches, as the session stores it.

    Parameters
    ----------
    grid : PatchGrid
    refine_many : callable
        ``refine_many(images, base_logits, stroke_channels) -> logits`` on (B, ...) batches at
        network size, square or not (see :func:`~annotator.core.refiners.as_refine_fn`).
    image : (C, H, W) float32 ndarray
        Network inputs of the whole view.
    base_logits : (H, W) float32 ndarray
    job : (patches, strokes)
        The patches a stroke touches, and every stroke on any of them up to that one, in
        drawing order, in view pixels. They are refined as one image where they can be
        (:func:`refinement_model.blocks.refine_patches_together`).

    Returns
    -------
    deltas : dict of int to (net_size, net_size) float16 ndarray
        ``refined - base`` at network size; float16 halves the memory, and because every
        version is rounded the same way a recomputed version equals the stored one exactly.
    """
    patches, strokes = job
    refined = refine_patches_together(refine_many, grid, image, base_logits, patches, strokes)
    if not refined:
        return {}
    indices = list(refined)
    bases = np.stack([grid.extract(base_logits, i).astype(np.float32) for i in indices])
    return _as_deltas(indices, np.stack([refined[i] for i in indices]) - bases)


def propagated_patches(
    grid: PatchGrid,
    adapted_many,
    frozen_many,
    image: np.ndarray,
    base_logits: np.ndarray,
    indices,
    *,
    batch: int = 4,
    cancel: Callable[[], bool] | None = None,
) -> dict:
    """The change an adapted refiner makes to patches without strokes, over the frozen one's.

    Both refiners run with no strokes; a patch takes the adapted logits where the two decide
    differently (:func:`~refinement_model.corrections.propagated_change`), so that an update
    that changed nothing changes no patch (as the evaluation's ``adaptive`` setting measures).
    Arguments as for :func:`refine_patches` (``indices``: the patches); returns the same kind
    of float16 deltas. The patches run ``batch`` at a time, ``cancel()`` checked before each
    batch (raises :class:`~refinement_model.errors.Cancelled`): a batch of 4 takes about a
    second on two cores, so that switching the adaptation off never waits long.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
    indices = list(dict.fromkeys(int(index) for index in indices))
    deltas = {}
    for start in range(0, len(indices), batch):
        if cancel is not None and cancel():
            raise Cancelled("propagation cancelled")
        part = indices[start : start + batch]
        images, bases, channels = patch_inputs(grid, image, base_logits, part)
        changes = propagated_change(
            bases, frozen_many(images, bases, channels), adapted_many(images, bases, channels)
        )
        deltas.update(_as_deltas(part, changes))
    return deltas


def _as_deltas(indices, changes: np.ndarray) -> dict:
    # clipped into float16's range; logits this large are saturated anyway
    deltas = np.clip(changes, -_DELTA_LIMIT, _DELTA_LIMIT).astype(np.float16)
    return dict(zip(indices, deltas, strict=True))
