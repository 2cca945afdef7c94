"""Scores of a binary line mask against the ground truth, as in the paper and DIBCO.

The pseudo-F-measure (pFM) of the DIBCO binarisation contests combines the usual precision with
a pseudo-recall measured against the skeleton of the ground truth, so that a prediction is not
punished for drawing a line thinner or thicker than the annotator did (docs/method.md, "Metrics").
The skeleton comes from :func:`thin`, identical to ``skimage.morphology.thin`` (which matches
MATLAB ``bwmorph(..., 'thin', Inf)`` used by the DIBCO tools) but with work proportional to the
line boundary instead of the image area.

Conventions for empty masks (after restricting to ``mask``): when the prediction and the ground
truth are both empty every score is 1.0 (nothing to find, nothing found); otherwise any ratio
whose denominator is zero is 0.0, so an empty prediction of a non-empty ground truth scores 0.0
everywhere, and so does a non-empty prediction of an empty ground truth.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "thin",
    "score_masks",
    "pseudo_f_measure",
    "f_measure",
    "iou",
    "dice",
    "precision",
    "recall",
]


def _guo_hall_luts() -> tuple[np.ndarray, np.ndarray]:
    """Deletion tables of the two Guo-Hall sub-iterations, indexed by the neighbour code.

    Bit ``k`` of the code is neighbour ``p(k+1)``, counter-clockwise from east:
    p1 = E, p2 = NE, p3 = N, p4 = NW, p5 = W, p6 = SW, p7 = S, p8 = SE.
    """
    codes = np.arange(256)
    p = [None] + [(codes >> k) & 1 == 1 for k in range(8)] + [None]
    p[9] = p[1]
    crossings = sum((~p[2 * i - 1] & (p[2 * i] | p[2 * i + 1])).astype(int) for i in range(1, 5))
    n1 = sum((p[2 * k - 1] | p[2 * k]).astype(int) for k in range(1, 5))
    n2 = sum((p[2 * k] | p[2 * k + 1]).astype(int) for k in range(1, 5))
    n = np.minimum(n1, n2)
    common = (crossings == 1) & (n >= 2) & (n <= 3)
    first = common & ~((p[2] | p[3] | ~p[8]) & p[1])
    second = common & ~((p[6] | p[7] | ~p[4]) & p[5])
    return first, second


_LUTS = _guo_hall_luts()
_LUTS[0].setflags(write=False)
_LUTS[1].setflags(write=False)
# weights of the neighbours in the code: p1 = E -> 1, p2 = NE -> 2, ..., p8 = SE -> 128
_CODE_KERNEL = np.array([[8, 4, 2], [16, 0, 1], [32, 64, 128]], dtype=np.float32)


def _as_mask(array, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D mask, got shape {array.shape}")
    if array.dtype == bool:
        return array
    if not (np.issubdtype(array.dtype, np.number)):
        raise ValueError(f"{name} must be boolean or numeric, got dtype {array.dtype}")
    line = array != 0
    # a probability map passed by mistake would count every pixel above 0 as line
    if array.dtype.kind in "fc" and np.count_nonzero(line & (array != 1)):
        raise ValueError(
            f"{name} is a float array with values other than 0 and 1: threshold it first"
        )
    return line


def _unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values; faster than np.unique's hashing on these small int arrays."""
    values.sort()
    keep = np.empty(len(values), dtype=bool)
    keep[:1] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def thin(image: np.ndarray) -> np.ndarray:
    """Thin the lines of a binary image to one-pixel-wide curves (Guo-Hall, to convergence).

    Gives exactly ``skimage.morphology.thin(image)``, which matches MATLAB
    ``bwmorph(image, 'thin', Inf)``; only boundary pixels are examined in each sub-iteration,
    so the cost follows the length of the lines, not the image size.

    Parameters
    ----------
    image : (H, W) array-like
        Nonzero = line. Never modified.

    Returns
    -------
    skeleton : (H, W) bool ndarray

    Examples
    --------
    >>> square = np.zeros((7, 7), dtype=bool)
    >>> square[1:-1, 2:-2] = True
    >>> square[0, 1] = True
    >>> np.argwhere(thin(square)).tolist()
    [[0, 1], [1, 2], [2, 3], [3, 3], [4, 3]]
    """
    image = _as_mask(image, "image")
    height, width = image.shape
    # one pixel of background around the image, as scipy's mode='constant' correlation has
    pixels = np.zeros((height + 2, width + 2), dtype=np.uint8)
    pixels[1:-1, 1:-1] = image
    flat = pixels.reshape(-1)
    row = width + 2
    # neighbour offsets in bit order p1..p8 (E, NE, N, NW, W, SW, S, SE)
    offsets = np.array([1, 1 - row, -row, -row - 1, -1, row - 1, row, row + 1], dtype=np.int64)

    # a neighbour in direction k sees the centre in direction k + 4: its bit to clear
    keep_bits = ~(np.uint8(1) << ((np.arange(8, dtype=np.uint8) + 4) % 8))

    # neighbour code of every pixel (bit k set when neighbour p(k+1) is a line pixel), kept
    # up to date as pixels are deleted; a 3 x 3 correlation like skimage's, but in OpenCV
    code = cv2.filter2D(pixels, -1, _CODE_KERNEL, borderType=cv2.BORDER_CONSTANT)
    # pending[k]: line pixels whose code changed since table k last examined them (a pixel
    # table k kept and whose neighbours did not change would be kept again). Pixels with all
    # 8 neighbours set are never deleted (both tables are False at 255).
    boundary = np.flatnonzero(cv2.bitwise_and(pixels, cv2.compare(code, 255, cv2.CMP_NE)))
    code = code.reshape(-1)
    pending = [boundary, boundary]
    # sub-iterations alternate between the tables until a full iteration deletes nothing,
    # as in skimage; pending sets run empty at the same point
    step = 0
    while len(pending[0]) or len(pending[1]):
        k, step = step % 2, step + 1
        examined = pending[k]
        delete = _LUTS[k][code[examined]]
        deleted = examined[delete]
        flat[deleted] = 0
        neighbours = deleted[:, None] + offsets
        np.bitwise_and.at(code, neighbours, keep_bits)
        neighbours = neighbours.reshape(-1)
        neighbours = _unique(neighbours[flat[neighbours] == 1])
        pending[k] = neighbours
        other = pending[1 - k]
        other = other[flat[other] == 1]
        pending[1 - k] = _unique(np.concatenate((other, neighbours)))
    return pixels[1:-1, 1:-1].astype(bool)


def _ratio(numerator: int, denominator: int, both_empty: bool) -> float:
    if denominator == 0:
        return 1.0 if both_empty else 0.0
    return float(numerator / denominator)


def _harmonic(a: float, b: float, both_empty: bool) -> float:
    if both_empty:
        return 1.0
    return 0.0 if a + b == 0 else float(2 * a * b / (a + b))


def score_masks(pred, gt, *, mask=None, gt_skeleton=None) -> dict[str, float]:
    """All scores of a predicted line mask against the ground truth.

    Parameters
    ----------
    pred, gt : (H, W) array-like
        Prediction and ground truth: bool, or integers with nonzero = line, or floats that
        are all 0 or 1 (probability maps are refused: threshold them first). Never modified.
    mask : (H, W) array-like, optional
        Mirror area: only pixels where it is nonzero are counted.
    gt_skeleton : (H, W) bool array-like, optional
        ``thin(gt)`` of the whole (unmasked) ground truth, when the caller scores many
        predictions against the same ground truth; computed here otherwise. It must lie within
        ``gt``.

    Returns
    -------
    scores : dict
        ``pfm`` (DIBCO pseudo-F-measure: harmonic mean of precision and the pseudo-recall
        against ``gt_skeleton``), ``fm`` (F-measure), ``iou``, ``precision``, ``recall``,
        ``dice``; Python floats in [0, 1]. ``dice`` equals ``fm`` for binary masks; both are
        given because both names are in use. Empty masks: see the module docstring.

    Examples
    --------
    >>> gt = np.zeros((5, 5), dtype=bool); gt[2, :] = True
    >>> pred = np.zeros((5, 5), dtype=bool); pred[2, :3] = True; pred[0, 0] = True
    >>> {k: round(v, 4) for k, v in score_masks(pred, gt).items()}
    {'pfm': 0.6667, 'fm': 0.6667, 'iou': 0.5, 'precision': 0.75, 'recall': 0.6, 'dice': 0.6667}
    """
    pred = _as_mask(pred, "pred")
    gt = _as_mask(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt must have the same shape, got {pred.shape} and {gt.shape}")
    if gt_skeleton is None:
        skeleton = thin(gt)
    else:
        skeleton = _as_mask(gt_skeleton, "gt_skeleton")
        if skeleton.shape != gt.shape:
            raise ValueError(
                f"gt_skeleton must have the shape of gt {gt.shape}, got {skeleton.shape}"
            )
        if np.count_nonzero(skeleton > gt):
            raise ValueError("gt_skeleton must lie within gt (pass thin(gt))")
    if mask is not None:
        mask = _as_mask(mask, "mask")
        if mask.shape != gt.shape:
            raise ValueError(f"mask must have the shape of gt {gt.shape}, got {mask.shape}")
        pred, gt, skeleton = pred & mask, gt & mask, skeleton & mask

    n_pred = np.count_nonzero(pred)
    n_gt = np.count_nonzero(gt)
    n_skeleton = np.count_nonzero(skeleton)
    hits = np.count_nonzero(pred & gt)
    skeleton_hits = np.count_nonzero(pred & skeleton)
    both_empty = n_pred == 0 and n_gt == 0

    p = _ratio(hits, n_pred, both_empty)
    r = _ratio(hits, n_gt, both_empty)
    pseudo_r = _ratio(skeleton_hits, n_skeleton, both_empty)
    fm = _harmonic(p, r, both_empty)
    return {
        "pfm": _harmonic(p, pseudo_r, both_empty),
        "fm": fm,
        "iou": _ratio(hits, n_pred + n_gt - hits, both_empty),
        "precision": p,
        "recall": r,
        "dice": _ratio(2 * hits, n_pred + n_gt, both_empty),
    }


def pseudo_f_measure(pred, gt, *, mask=None, gt_skeleton=None) -> float:
    """DIBCO pseudo-F-measure in [0, 1]; see :func:`score_masks`."""
    return score_masks(pred, gt, mask=mask, gt_skeleton=gt_skeleton)["pfm"]


def _plain_score(key: str):
    """A function returning one score of :func:`score_masks` that needs no skeleton."""

    def score(pred, gt, *, mask=None) -> float:
        # the skeleton is not needed for these scores; an empty one skips the thinning
        skeleton = np.zeros(np.shape(gt), dtype=bool)
        return score_masks(pred, gt, mask=mask, gt_skeleton=skeleton)[key]

    score.__name__ = score.__qualname__ = key if key != "fm" else "f_measure"
    score.__doc__ = (
        f"``{key}`` of a predicted mask against the ground truth, in [0, 1]; "
        f"see :func:`score_masks`."
    )
    return score


f_measure = _plain_score("fm")
iou = _plain_score("iou")
dice = _plain_score("dice")
precision = _plain_score("precision")
recall = _plain_score("recall")
