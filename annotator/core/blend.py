"""Current probabilities of a region: the sigmoid of :func:`refinement_model.patches.blend_logits`
(base logits plus the blended changes of refined patches)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.special import expit

from refinement_model.patches import PatchGrid, blend_logits

__all__ = ["blend_probabilities"]


def blend_probabilities(
    grid: PatchGrid, base_logits: np.ndarray, deltas: Mapping, region
) -> np.ndarray:
    """Sigmoid of :func:`~refinement_model.patches.blend_logits`: (h, w) float32 in [0, 1]."""
    return expit(blend_logits(grid, base_logits, deltas, region))
