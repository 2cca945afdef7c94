"""One patch's refinement as the session stores it."""

from __future__ import annotations

import numpy as np

from refinement_model.patches import PatchGrid
from refinement_model.strokes import stroke_channel

__all__ = ["refine_patches"]

_DELTA_LIMIT = 1e4


def refine_patches(grid: PatchGrid, refine_many, image: np.ndarray, base_logits: np.ndarray,
                   jobs) -> dict:
    """The refiner's change of some patches, as the session stores it, in one batch.

    Parameters
    ----------
    grid : PatchGrid
    refine_many : callable
        ``refine_many(image_patches, base_logits_patches, stroke_channels) -> logits`` on
        (B, ...) batches at network size (see :func:`~annotator.core.refiners.as_refine_fn`).
    image : (C, H, W) float32 ndarray
        Network inputs of the whole view.
    base_logits : (H, W) float32 ndarray
    jobs : mapping of int to sequence of Stroke
        For each patch index, every stroke on the patch, in drawing order, in view pixels.

    Returns
    -------
    deltas : dict of int to (net_size, net_size) float16 ndarray
        ``refined - base`` at network size; float16 halves the memory, and because every
        version is rounded the same way a recomputed version equals the stored one exactly.
    """
    n = grid.net_size
    indices = list(jobs)
    if not indices:
        return {}
    channels, bases, images = [], [], []
    for index in indices:
        channels.append(stroke_channel(jobs[index], (n, n), origin=grid.network_origin(index),
                                       scale=grid.scale))
        bases.append(grid.extract(base_logits, index).astype(np.float32, copy=False))
        images.append(grid.extract(image, index))
    bases = np.stack(bases)
    refined = refine_many(np.stack(images), bases, np.stack(channels))
    # clipped into float16's range; logits this large are saturated anyway
    deltas = np.clip(refined - bases, -_DELTA_LIMIT, _DELTA_LIMIT).astype(np.float16)
    return dict(zip(indices, deltas, strict=True))
