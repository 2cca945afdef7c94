"""Which patch to look at next: the oracle ranking and a ranking that needs no ground truth.

The paper ranks patches by their true pFM, which a real user's app cannot know. The GT-free score
uses what the app does know: how undecided the current prediction is for the lines it draws.
Both rankings order patches worst first.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from refinement_model.metrics import pseudo_f_measure
from refinement_model.patches import PatchGrid

#: Fewest line pixels an uncertainty score divides by, as a share of the patch's mirror pixels:
#: keeps nearly empty patches with a few doubtful pixels from topping the queue.
LINE_FLOOR = 0.01


def uncertainty_score(probabilities, *, mirror_mask=None, user=None) -> float:
    """GT-free badness of one patch: its doubt per predicted line pixel.

    The doubt is the Gini impurity ``4 p (1 - p)`` (1 at p = 0.5, 0 at 0 and 1; ranked like the
    binary entropy, four times cheaper) summed over the patch's mirror pixels; it is divided by
    the number of predicted line pixels (p > 0.5; at least :data:`LINE_FLOOR` of the mirror
    pixels). pFM is a relative measure, so the doubt must be relative too: the mean impurity
    over the patch grows with the amount of line as much as with its doubt, and ranked the
    patches of the default synthetic views by true badness with a Spearman correlation of
    -0.46 to +0.56; per line pixel it gives +0.55 to +0.78 on the validation and test views.
    The pixels the user drew are decided: no doubt there, and lines where added (on the
    validation views this cut the effort of the GT-free ranking from 1.19x to 1.07x the
    oracle's).

    Parameters
    ----------
    probabilities : (h, w) float array
        Current line probabilities of the patch.
    mirror_mask : (h, w) bool array, optional
        Mirror area of the patch; without mirror pixels the score is -inf (never visited).
    user : (h, w) int8 array, optional
        The user's pixels: +1 added, -1 erased, 0 none.

    Returns
    -------
    score : float >= 0 (at most 1 / LINE_FLOOR), or -inf
    """
    p = np.asarray(probabilities, dtype=np.float32)
    inside = (
        np.ones(p.shape, bool)
        if mirror_mask is None
        else _same_shape(mirror_mask, p.shape, "mirror_mask")
    )
    count = np.count_nonzero(inside)
    if count == 0:
        return -np.inf
    if user is not None:
        user = _same_shape(user, p.shape, "user")
    return float(doubt_per_line(*doubt_and_lines(p, inside, user), count))


def doubt_and_lines(
    probabilities: np.ndarray, inside: np.ndarray, user: np.ndarray | None = None
) -> tuple[float, int]:
    """The sums :func:`uncertainty_score` is made of, over the pixels ``inside`` of a window.

    Sums of disjoint windows add up to the sums of their union, which lets the app keep them
    per cell and rescore only what a stroke changed.

    Parameters
    ----------
    probabilities : (h, w) float32 ndarray
    inside : (h, w) bool ndarray
    user : (h, w) int8 ndarray, optional
        The user's pixels (+1 added, -1 erased): decided, so no doubt, and lines where added.

    Returns
    -------
    doubt : float
        Sum of ``4 p (1 - p)`` (float32 products summed in float64).
    lines : int
        Number of pixels with p > 0.5 where the user drew nothing, plus those the user added.
    """
    impurity = np.subtract(1, probabilities, dtype=np.float32)
    impurity *= probabilities
    lines = probabilities > 0.5
    if user is not None and user.any():
        decided = user != 0
        impurity[decided] = 0
        lines = np.where(decided, user > 0, lines)
    return (4 * float(impurity[inside].sum(dtype=np.float64)), int(np.count_nonzero(lines[inside])))


def doubt_per_line(doubt, lines, mirror_pixels):
    """The score from the sums of :func:`doubt_and_lines` and the mirror pixel count (> 0);
    scalars or arrays."""
    return doubt / np.maximum(lines, LINE_FLOOR * np.asarray(mirror_pixels))


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


def uncertainty_scores(
    probabilities, grid: PatchGrid, *, mirror_mask=None, user=None
) -> np.ndarray:
    """:func:`uncertainty_score` of every patch of ``grid``; (H, W) maps in, (N,) float64 out.

    The app's patch queue (:mod:`annotator.core.patch_queue`) keeps the same scores up to date
    incrementally."""
    maps = _check_maps(grid, probabilities=probabilities, mirror_mask=mirror_mask, user=user)
    return np.array([uncertainty_score(**_crop(maps, box)) for box in grid.boxes.tolist()])


def oracle_scores(
    mask, ground_truth, grid: PatchGrid, *, mirror_mask=None, gt_skeleton=None
) -> np.ndarray:
    """:func:`oracle_score` of every patch of ``grid``; (H, W) maps in, (N,) float64 out."""
    maps = _check_maps(
        grid, mask=mask, ground_truth=ground_truth, mirror_mask=mirror_mask, gt_skeleton=gt_skeleton
    )
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
    return {
        name: None if array is None else _same_shape(array, grid.shape, name)
        for name, array in maps.items()
    }


def _crop(maps: dict, box) -> dict:
    y0, x0, y1, x1 = box
    return {name: None if array is None else array[y0:y1, x0:x1] for name, array in maps.items()}
