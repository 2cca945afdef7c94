"""One view's corrections: the user's strokes, the pixels they protect, the network's refinements.

The app's session (:mod:`annotator.core.session`) and the evaluation
(:mod:`simulation.protocol`) both keep a view's corrections in a :class:`ViewCorrections`, so
that what the evaluation measures is what the app shows:

* the strokes in drawing order and the **user map** they burn in (int8: +1 where the last stroke
  over a pixel added, -1 where it erased, 0 where no stroke is);
* per refined patch the refiner's **change** (refined minus base logits at network size);
* the **probabilities**: the sigmoid of the base logits plus the blended changes
  (:func:`~refinement_model.patches.blend_logits`), the base prediction where no patch is
  refined;
* the rule that protects the user's pixels (:func:`protected_mask`): no network decides a pixel
  a stroke covers.

Every pixel is a deterministic function of the strokes and the changes, whatever region it is
computed in: undoing a stroke and repainting gives the user map it had before the stroke, bit
for bit, and so does blending any region.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from scipy.special import expit

from refinement_model.patches import PatchGrid, blend_logits, clip_box, union
from refinement_model.strokes import Stroke, rasterize_stroke, stroke_channel

__all__ = [
    "LINE_PROBABILITY",
    "ViewCorrections",
    "blend_probabilities",
    "propagated_change",
    "protected_mask",
    "stroke_box",
]

#: A pixel is a line where the network's probability exceeds this (the mask the app shows).
LINE_PROBABILITY = 0.5

# Rows blended at once: few patches straddle two slabs (and are upsampled twice), and the
# blending temporaries stay small on a full-size view.
_SLAB_ROWS = 512


def stroke_box(stroke: Stroke, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(y0, x0, y1, x1)``: the bounds of ``stroke`` (view pixels) clipped to a view of
    ``shape`` (H, W), never empty: ``ValueError`` for a stroke outside the view (or no
    :class:`~refinement_model.strokes.Stroke`)."""
    if not isinstance(stroke, Stroke):
        raise ValueError(f"stroke must be a Stroke, got {type(stroke).__name__}")
    box = clip_box(stroke.bounds(), shape)
    if box[0] >= box[2] or box[1] >= box[3]:
        raise ValueError(f"stroke must overlap the view {shape}, its bounds are {stroke.bounds()}")
    return box


def blend_probabilities(
    grid: PatchGrid, base_logits: np.ndarray, deltas: Mapping, region
) -> np.ndarray:
    """Sigmoid of :func:`~refinement_model.patches.blend_logits` (the base logits plus the
    blended changes of the refined patches in ``deltas``) over ``region`` (y0, x0, y1, x1):
    (h, w) float32 in [0, 1]."""
    return expit(blend_logits(grid, base_logits, deltas, region))


def propagated_change(start, frozen, adapted) -> np.ndarray:
    """The change an adapted refiner makes to patches without strokes: its decisions only.

    Where the adapted refiner's no-stroke prediction decides a pixel as the frozen one's does,
    the patch keeps its start; where it decides otherwise, the patch takes the adapted logits.
    The plain difference ``adapted - frozen`` would not do: the two refiners' logits reach tens
    of units where both are sure, so their difference swamps the start's (|logit| <= 16) and
    flips pixels neither refiner changed its mind about (docs/evaluation/adaptive).

    Parameters
    ----------
    start : (..., n, n) float array
        The logits the patches show, at network size.
    frozen, adapted : (..., n, n) float arrays
        The frozen and the adapted refiners' logits of the same patches, with no strokes.

    Returns
    -------
    change : (..., n, n) float32 ndarray
        ``adapted - start`` where the two refiners decide differently, 0 elsewhere.
    """
    start, frozen, adapted = (np.asarray(a, np.float32) for a in (start, frozen, adapted))
    if not start.shape == frozen.shape == adapted.shape or start.ndim < 2:
        raise ValueError(
            f"start, frozen and adapted must be (..., n, n) arrays of one shape, got "
            f"{start.shape}, {frozen.shape}, {adapted.shape}"
        )
    decided_otherwise = (adapted > 0) != (frozen > 0)
    return np.where(decided_otherwise, adapted - start, np.float32(0))


def protected_mask(predicted: np.ndarray, user: np.ndarray) -> np.ndarray:
    """A prediction with the user's pixels protected.

    Parameters
    ----------
    predicted : (H, W) bool ndarray
        The network's (or the initial) binary prediction.
    user : (H, W) int8 ndarray
        +1 where the last stroke added, -1 where it erased, 0 where no stroke is.

    Returns
    -------
    mask : (H, W) bool ndarray
        ``predicted`` where ``user`` is 0, ``user > 0`` elsewhere (a new array).

    Examples
    --------
    >>> protected_mask(np.array([[True, False, True]]), np.array([[0, 1, -1]], np.int8)).tolist()
    [[True, True, False]]
    """
    predicted, user = np.asarray(predicted, dtype=bool), np.asarray(user)
    if predicted.ndim != 2 or predicted.shape != user.shape:
        raise ValueError(
            f"predicted and user must be 2-D and of one shape, got {predicted.shape} and "
            f"{user.shape}"
        )
    mask = predicted & (user >= 0)
    mask |= user > 0
    return mask


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _window(box) -> tuple[slice, slice]:
    return np.s_[box[0] : box[2], box[1] : box[3]]


class ViewCorrections:
    """The strokes, user map, refinements and probabilities of one view (module docstring).

    Parameters
    ----------
    grid : PatchGrid
        The view's patches.
    base_logits : (H, W) float32 ndarray
        The start: logits of the initial prediction. Never modified (kept by reference).
    strokes : iterable of Stroke, optional
        Strokes already drawn, in drawing order, in view pixels.
    deltas : mapping int -> (net_size, net_size) float ndarray, optional
        Change of each patch already refined.

    Attributes
    ----------
    strokes : list of Stroke
        In drawing order (read; change through :meth:`add_stroke`, :meth:`remove_last_stroke`).
    user : (H, W) int8 ndarray
        The user map.
    deltas : dict int -> (net_size, net_size) ndarray
        Change of each refined patch (read; change through :meth:`set_deltas`).
    probabilities : (H, W) float32 ndarray
        Current line probabilities.
    annotated_pixels : int
        Pixels some stroke covers (each counted once).
    stroke_pixels : int
        Sum over the strokes of the pixels each covers (overlaps counted again): the effort the
        evaluation records.
    """

    def __init__(
        self,
        grid: PatchGrid,
        base_logits: np.ndarray,
        *,
        strokes: Iterable[Stroke] = (),
        deltas: Mapping | None = None,
    ):
        base_logits = np.asarray(base_logits)
        if base_logits.shape != grid.shape:
            raise ValueError(
                f"base_logits must have the grid's shape {grid.shape}, got {base_logits.shape}"
            )
        self.grid, self.base_logits = grid, base_logits
        self.user = np.zeros(grid.shape, dtype=np.int8)
        self.strokes: list[Stroke] = []
        self._boxes: list[tuple[int, int, int, int]] = []
        self._footprints: list[int] = []
        self.stroke_pixels = 0
        for stroke in strokes:
            self._burn(stroke)
        self.annotated_pixels = int(np.count_nonzero(self.user))
        self.deltas: dict[int, np.ndarray] = dict(deltas or {})
        self.probabilities = np.empty(grid.shape, dtype=np.float32)
        self.reblend((0, 0, *grid.shape))

    # ----------------------------------------------------------------- strokes
    def add_stroke(self, stroke: Stroke) -> tuple[int, int, int, int]:
        """Draw ``stroke`` (view pixels) over the others; returns its :func:`stroke_box`, the
        region of the user map that changed. ``ValueError`` for a stroke outside the view."""
        window = _window(stroke_box(stroke, self.grid.shape))
        before = np.count_nonzero(self.user[window])
        box = self._burn(stroke)
        self.annotated_pixels += int(np.count_nonzero(self.user[window]) - before)
        return box

    def remove_last_stroke(self) -> tuple[Stroke, tuple[int, int, int, int]]:
        """Take back the latest stroke: ``(stroke, box)``, the user map in ``box`` repainted
        from the strokes left (``IndexError`` without strokes)."""
        stroke, box = self.strokes.pop(), self._boxes.pop()
        self.stroke_pixels -= self._footprints.pop()
        self.repaint(box)
        return stroke, box

    def repaint(self, box) -> None:
        """Paint the user map in ``box`` (y0, x0, y1, x1) anew from the strokes, in order."""
        window = _window(box)
        before = np.count_nonzero(self.user[window])
        shape = (box[2] - box[0], box[3] - box[1])
        under = [s for s, b in zip(self.strokes, self._boxes, strict=True) if _overlaps(b, box)]
        self.user[window] = stroke_channel(under, shape, origin=(box[1], box[0]))
        self.annotated_pixels += int(np.count_nonzero(self.user[window]) - before)

    def _burn(self, stroke: Stroke) -> tuple[int, int, int, int]:
        box = stroke_box(stroke, self.grid.shape)
        user = self.user[_window(box)]
        footprint = rasterize_stroke(stroke, user.shape, origin=(box[1], box[0]))
        user[footprint] = stroke.sign
        self.strokes.append(stroke)
        self._boxes.append(box)
        self._footprints.append(int(np.count_nonzero(footprint)))
        self.stroke_pixels += self._footprints[-1]
        return box

    def touched_patches(self, stroke: Stroke) -> list[int]:
        """Indices of the patches whose boxes ``stroke``'s clipped bounds overlap, ascending."""
        return self.grid.patches_touching(*stroke_box(stroke, self.grid.shape)).tolist()

    def strokes_on(self, index: int) -> list[Stroke]:
        """The strokes touching patch ``index``, in drawing order."""
        return self.strokes_over(self.grid.boxes[index].tolist())

    def strokes_over(self, box) -> list[Stroke]:
        """The strokes whose clipped bounds overlap ``box`` (y0, x0, y1, x1), in drawing order."""
        return [s for s, b in zip(self.strokes, self._boxes, strict=True) if _overlaps(b, box)]

    # ----------------------------------------------------------------- refinements
    def set_deltas(self, changes: Mapping) -> tuple[int, int, int, int] | None:
        """Set (array) or drop (None) the change of some patches and blend the probabilities
        anew where they lie; returns that region, None when ``changes`` is empty."""
        for index, delta in changes.items():
            if delta is None:
                self.deltas.pop(index, None)
            else:
                self.deltas[index] = delta
        region = union(*(self.grid.region(index) for index in changes))
        if region is not None:
            self.reblend(region)
        return region

    def reblend(self, region) -> None:
        """Compute the probabilities in ``region`` (y0, x0, y1, x1) from the base logits and the
        changes: blended only over the columns refined patches cover, slab by slab (see
        ``_SLAB_ROWS``); elsewhere the base logits are unchanged, so only their sigmoid."""
        grid, base, out = self.grid, self.base_logits, self.probabilities
        top, left, bottom, right = region
        refined = np.array(
            [grid.region(index) for index in sorted(self.deltas)], dtype=np.int64
        ).reshape(-1, 4)
        for y0, y1 in self._slabs(top, bottom):
            rows = np.s_[y0:y1]
            inside = refined[(refined[:, 0] < y1) & (refined[:, 2] > y0)]
            runs = []  # the region's columns the slab's refined patches cover, merged
            for x0, x1 in sorted(np.clip(inside[:, [1, 3]], left, right).tolist()):
                if x0 >= x1:
                    continue
                if runs and x0 <= runs[-1][1]:
                    runs[-1][1] = max(runs[-1][1], x1)
                else:
                    runs.append([x0, x1])
            start = left
            for x0, x1 in runs:
                expit(base[rows, start:x0], out=out[rows, start:x0])
                out[rows, x0:x1] = blend_probabilities(grid, base, self.deltas, (y0, x0, y1, x1))
                start = x1
            expit(base[rows, start:right], out=out[rows, start:right])

    def _slabs(self, top: int, bottom: int) -> list[tuple[int, int]]:
        """Row ranges covering ``[top, bottom)``, cut at patch edges, each ``_SLAB_ROWS`` high
        or more (but the last)."""
        edges = np.clip(self.grid.boxes[:, [0, 2]], top, bottom)
        edges = np.unique(np.concatenate([edges.ravel(), [top, bottom]])).tolist()
        slabs, start = [], edges[0]
        for edge in edges[1:]:
            if edge - start >= _SLAB_ROWS or edge == edges[-1]:
                slabs.append((start, edge))
                start = edge
        return slabs

    # ----------------------------------------------------------------- masks
    def network_mask(self, window=np.s_[:, :]) -> np.ndarray:
        """(h, w) bool: ``probabilities > 0.5`` in ``window`` with the user's pixels protected:
        the mask the app shows (human + network)."""
        return protected_mask(self.probabilities[window] > LINE_PROBABILITY, self.user[window])

    def human_mask(self, window=np.s_[:, :]) -> np.ndarray:
        """(h, w) bool: the start (``base_logits > 0``) in ``window`` with the strokes burned
        in: what the strokes alone make of the initial prediction."""
        return protected_mask(self.base_logits[window] > 0, self.user[window])
