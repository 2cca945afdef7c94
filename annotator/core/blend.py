"""Blend refined patch logits into the full-resolution base logits, one region at a time.

The session keeps the base model's logits at full view resolution and, for every refined patch,
the refiner's *change* ``delta = refined - base patch`` at network size. The current logits are

    L(x) = base(x) + sum_{refined p covering x} w_p(x) * up(delta_p)(x) / sum_{all p covering x} w_p(x)

with ``w_p`` the stitching weights of :func:`refinement_model.patches.border_weight_map` and
``up`` bilinear upsampling to the patch size. Blending the change rather than the refined logits
keeps the full-resolution detail of the base prediction wherever the refiner agrees with it (a
patch's logits resized down and back up would blur every line edge), and the patch border
weights make the change fade out smoothly, so there are no seams. Per pixel the terms are summed
in ascending patch order whatever the region, so re-blending any region gives bit-for-bit the
values a whole-view blend gives there. With base logits of zero this is exactly
:func:`refinement_model.patches.stitch_logits` of the deltas (zero for unrefined patches).
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np
from scipy.special import expit

from refinement_model.patches import PatchGrid, border_weight_map

__all__ = ["blend_logits", "blend_probabilities"]


def blend_logits(grid: PatchGrid, base_logits: np.ndarray, deltas: Mapping, region) -> np.ndarray:
    """Current logits of one rectangle of the view.

    Parameters
    ----------
    grid : PatchGrid
        The patch grid of the view.
    base_logits : (H, W) float32 ndarray
        Full-resolution logits of the base model. Never modified.
    deltas : mapping int -> (net_size, net_size) array-like
        Refiner change of every refined patch (any float dtype; used as float32). Patches not
        in the mapping contribute no change.
    region : (y0, x0, y1, x1) ints
        Non-empty half-open rectangle inside the view.

    Returns
    -------
    logits : (y1 - y0, x1 - x0) float32 ndarray
        A new array.
    """
    y0, x0, y1, x1 = (int(v) for v in region)
    if not (0 <= y0 < y1 <= grid.height and 0 <= x0 < x1 <= grid.width):
        raise ValueError(f"region must be a non-empty rectangle inside the view {grid.shape}, "
                         f"got {region!r}")
    weights = border_weight_map(grid.patch_size)
    change = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
    weight_sum = np.zeros_like(change)
    size = (grid.patch_size, grid.patch_size)
    for index in grid.patches_touching(y0, x0, y1, x1).tolist():
        by0, bx0, by1, bx1 = grid.boxes[index].tolist()
        cy0, cx0, cy1, cx1 = max(by0, y0), max(bx0, x0), min(by1, y1), min(bx1, x1)
        inside = np.s_[cy0 - by0:cy1 - by0, cx0 - bx0:cx1 - bx0]
        target = np.s_[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
        weight_sum[target] += weights[inside]
        delta = deltas.get(index)
        if delta is not None:
            up = cv2.resize(np.asarray(delta, dtype=np.float32), size,
                            interpolation=cv2.INTER_LINEAR)
            change[target] += up[inside] * weights[inside]
    change /= weight_sum
    change += base_logits[y0:y1, x0:x1]
    return change


def blend_probabilities(grid: PatchGrid, base_logits: np.ndarray, deltas: Mapping,
                        region) -> np.ndarray:
    """Sigmoid of :func:`blend_logits`: (h, w) float32 probabilities in [0, 1]."""
    return expit(blend_logits(grid, base_logits, deltas, region))
