"""Which patch to look at next: the oracle ranking and a ranking that needs no ground truth.

The paper ranks patches by their true pFM, which a real user's app cannot know. The GT-free score
here uses what the app does know: how undecided the current prediction is and how much the
refiner has changed it. Both rankings order patches worst first.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from refinement_model.metrics import pseudo_f_measure
from refinement_model.patches import PatchGrid

# Probabilities between these bounds count as undecided.
_UNDECIDED = (0.2, 0.8)


def uncertainty_score(probabilities, *, mirror_mask=None, initial_probabilities=None) -> float:
    """GT-free badness of one patch: higher means it more likely needs correcting.

    The share of mirror-area pixels whose probability is undecided (in (0.2, 0.8)) plus their
    mean binary entropy, each in [0, 1]; when the initial probabilities are given, plus the share
    of pixels whose decision differs from the initial one (a patch that refinements changed a lot
    deserves a second look).

    Parameters
    ----------
    probabilities : (h, w) float array
        Current line probabilities of the patch.
    mirror_mask : (h, w) bool array, optional
        Mirror area of the patch; without mirror pixels the score is -inf (never visited).
    initial_probabilities : (h, w) float array, optional
        The base model's probabilities there, for the disagreement term.

    Returns
    -------
    score : float
    """
    p = np.asarray(probabilities, dtype=np.float64)
    inside = (np.ones(p.shape, bool) if mirror_mask is None
              else _same_shape(mirror_mask, p.shape, "mirror_mask"))
    if not inside.any():
        return -np.inf
    p = p[inside]
    undecided = np.count_nonzero((p > _UNDECIDED[0]) & (p < _UNDECIDED[1])) / p.size
    q = np.clip(p, 1e-6, 1 - 1e-6)
    entropy = float(np.mean(-(q * np.log2(q) + (1 - q) * np.log2(1 - q))))
    score = undecided + entropy
    if initial_probabilities is not None:
        initial = _same_shape(initial_probabilities, inside.shape, "initial_probabilities")
        score += np.count_nonzero((initial[inside] > 0.5) != (p > 0.5)) / p.size
    return float(score)


def oracle_score(mask, ground_truth, *, mirror_mask=None, gt_skeleton=None) -> float:
    """Badness of one patch from the ground truth: ``1 - pFM`` of its mask (-inf off the mirror).

    Parameters
    ----------
    mask, ground_truth : (h, w) bool arrays
    mirror_mask : (h, w) bool array, optional
    gt_skeleton : (h, w) bool array, optional
        Thinned ground truth, when the caller keeps it.
    """
    if mirror_mask is not None and not np.any(mirror_mask):
        return -np.inf
    return 1.0 - pseudo_f_measure(mask, ground_truth, mask=mirror_mask, gt_skeleton=gt_skeleton)


def uncertainty_scores(probabilities, grid: PatchGrid, *, mirror_mask=None,
                       initial_probabilities=None) -> np.ndarray:
    """:func:`uncertainty_score` of every patch of ``grid``; (H, W) maps in, (N,) float64 out."""
    maps = _check_maps(grid, probabilities=probabilities, mirror_mask=mirror_mask,
                       initial_probabilities=initial_probabilities)
    return np.array([uncertainty_score(**_crop(maps, box)) for box in grid.boxes.tolist()])


def oracle_scores(mask, ground_truth, grid: PatchGrid, *, mirror_mask=None,
                  gt_skeleton=None) -> np.ndarray:
    """:func:`oracle_score` of every patch of ``grid``; (H, W) maps in, (N,) float64 out."""
    maps = _check_maps(grid, mask=mask, ground_truth=ground_truth, mirror_mask=mirror_mask,
                       gt_skeleton=gt_skeleton)
    return np.array([oracle_score(**_crop(maps, box)) for box in grid.boxes.tolist()])


def ranking_quality(gt_free_scores, oracle) -> float:
    """Spearman rank correlation between a GT-free score and the oracle badness.

    Patches scored -inf by either (no mirror area) are left out. Returns NaN when fewer than
    three patches remain or either score is constant.
    """
    a, b = np.asarray(gt_free_scores, float), np.asarray(oracle, float)
    if a.shape != b.shape:
        raise ValueError(f"score arrays differ in shape: {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 3 or np.ptp(a[keep]) == 0 or np.ptp(b[keep]) == 0:
        return float("nan")
    return float(stats.spearmanr(a[keep], b[keep]).statistic)


def _same_shape(array, shape, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {array.shape}")
    return array


def _check_maps(grid: PatchGrid, **maps) -> dict:
    return {name: None if array is None else _same_shape(array, grid.shape, name)
            for name, array in maps.items()}


def _crop(maps: dict, box) -> dict:
    y0, x0, y1, x1 = box
    return {name: None if array is None else array[y0:y1, x0:x1] for name, array in maps.items()}
