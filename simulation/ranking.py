"""Which patch to look at next: the oracle ranking and a ranking that needs no ground truth.

The paper ranks patches by their true pFM, which a real user's app cannot know. The GT-free score
uses what the app does know: how undecided the current prediction is. Both rankings order
patches worst first.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from refinement_model.metrics import pseudo_f_measure
from refinement_model.patches import PatchGrid

def uncertainty_score(probabilities, *, mirror_mask=None) -> float:
    """GT-free badness of one patch: the mean Gini impurity ``4 p (1 - p)`` over its mirror pixels.

    The impurity is 1 at p = 0.5 and 0 at 0 and 1 (ranked like the binary entropy, four times
    cheaper); undecided pixels sit on and around doubtful lines, so the score grows with doubt
    and with line content. Averaging over mirror pixels (not the patch area) keeps patches on
    the rim of the disc comparable: on the default synthetic test views it ranks patches by true
    badness with a Spearman correlation up to 0.65, where the sum over the patch does not
    correlate at all (``etmira simulate`` records it per view).

    Parameters
    ----------
    probabilities : (h, w) float array
        Current line probabilities of the patch.
    mirror_mask : (h, w) bool array, optional
        Mirror area of the patch; without mirror pixels the score is -inf (never visited).

    Returns
    -------
    score : float in [0, 1], or -inf
    """
    p = np.asarray(probabilities, dtype=np.float32)
    inside = (np.ones(p.shape, bool) if mirror_mask is None
              else _same_shape(mirror_mask, p.shape, "mirror_mask"))
    count = np.count_nonzero(inside)
    if count == 0:
        return -np.inf
    impurity = np.subtract(1, p, dtype=np.float32)
    impurity *= p
    return 4 * float(impurity[inside].sum(dtype=np.float64)) / count


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


def uncertainty_scores(probabilities, grid: PatchGrid, *, mirror_mask=None) -> np.ndarray:
    """:func:`uncertainty_score` of every patch of ``grid``; (H, W) maps in, (N,) float64 out.

    The app's patch queue (:mod:`annotator.core.patch_queue`) keeps the same scores up to date
    incrementally."""
    maps = _check_maps(grid, probabilities=probabilities, mirror_mask=mirror_mask)
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
