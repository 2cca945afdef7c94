"""Boxes of the view, and one patch's refinement as the session stores it."""

from __future__ import annotations

import numpy as np

from refinement_model.patches import PatchGrid
from refinement_model.strokes import stroke_channel

__all__ = ["clip_box", "patch_box", "refine_patch", "union"]

_DELTA_LIMIT = 1e4


def clip_box(box, shape) -> tuple[int, int, int, int]:
    """``(y0, x0, y1, x1)`` clipped to a view of ``shape`` (H, W); may come back empty."""
    y0, x0, y1, x1 = (int(v) for v in box)
    h, w = shape
    return max(y0, 0), max(x0, 0), min(y1, h), min(x1, w)


def union(*boxes) -> tuple[int, int, int, int] | None:
    """Smallest box holding all given boxes (``None`` entries ignored; None if none left)."""
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    array = np.asarray(boxes, dtype=np.int64)
    return (int(array[:, 0].min()), int(array[:, 1].min()), int(array[:, 2].max()),
            int(array[:, 3].max()))


def patch_box(grid: PatchGrid, index: int) -> tuple[int, int, int, int]:
    """Box of patch ``index`` clipped to the view."""
    return clip_box(grid.boxes[index], grid.shape)


def refine_patch(grid: PatchGrid, refine, image: np.ndarray, base_logits: np.ndarray,
                 index: int, strokes) -> np.ndarray:
    """The refiner's change of one patch, as the session stores it.

    Parameters
    ----------
    grid : PatchGrid
    refine : callable
        ``refine(image_patch, base_logits_patch, stroke_channel) -> logits`` at network size.
    image : (C, H, W) float32 ndarray
        Network inputs of the whole view.
    base_logits : (H, W) float32 ndarray
    index : int
        The patch.
    strokes : sequence of Stroke
        Every stroke on the patch, in drawing order, in view pixels.

    Returns
    -------
    delta : (net_size, net_size) float16 ndarray
        ``refined - base`` at network size; float16 halves the memory, and because every
        version is rounded the same way a recomputed version equals the stored one exactly.
    """
    n = grid.net_size
    y0, x0 = grid.boxes[index, :2].tolist()
    # network pixel (0, 0) is the mean of the first 1/scale view pixels: centred half-way
    offset = (1 / grid.scale - 1) / 2
    channel = stroke_channel(strokes, (n, n), origin=(x0 + offset, y0 + offset), scale=grid.scale)
    base = grid.extract(base_logits, index).astype(np.float32, copy=False)
    refined = refine(grid.extract(image, index), base, channel)
    # clipped into float16's range; logits this large are saturated anyway
    return np.clip(refined - base, -_DELTA_LIMIT, _DELTA_LIMIT).astype(np.float16)
