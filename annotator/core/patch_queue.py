"""Which patch to look at next: a ranking without ground truth, and per-patch review state.

:func:`rank_patches` orders patches worst first by the GT-free score of the evaluation
(:func:`refinement_model.ranking.uncertainty_score`: the Gini impurity ``4 p (1 - p)`` of the
prediction summed over the patch's mirror pixels, per predicted line pixel), kept up to date
from per-cell sums after each local change.

:class:`PatchQueue` keeps the per-patch state (not seen, visited, refined, done), the skip list
and the coverage (share of the mirror area inside reviewed patches). The session owns one and is
the only writer; the GUI reads it.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from refinement_model.patches import PatchGrid
from refinement_model.ranking import doubt_and_lines, doubt_per_line

__all__ = [
    "DONE",
    "NOT_SEEN",
    "PatchQueue",
    "REFINED",
    "STATE_NAMES",
    "VISITED",
    "check_patch_index",
    "patch_scores",
    "rank_patches",
]

NOT_SEEN, VISITED, REFINED, DONE = 0, 1, 2, 3
#: Least share of a patch's pixels (inside the view) that must be mirror for it to be queued:
#: a sliver of mirror at a patch's edge shows the user background, and its few doubtful pixels
#: would otherwise top the queue (the score divides by at least 1% of the mirror pixels).
MIN_MIRROR_SHARE = 0.1
STATE_NAMES = ("not seen", "visited", "refined", "done")


def check_patch_index(grid: PatchGrid, index) -> int:
    """``index`` as an int, or ``ValueError`` when it is not a patch of ``grid``."""
    if (
        isinstance(index, bool)
        or not isinstance(index, (int, np.integer))
        or not 0 <= index < len(grid)
    ):
        raise ValueError(f"patch index must be an integer in [0, {len(grid)}), got {index!r}")
    return int(index)


def _check_grid_shape(array, grid: PatchGrid, name: str) -> np.ndarray:
    """``array`` as an ndarray, or ``ValueError`` naming it when it is not of the grid's shape."""
    array = np.asarray(array)
    if array.shape != grid.shape:
        raise ValueError(f"{name} must have the grid's shape {grid.shape}, got {array.shape}")
    return array


def _check_mirror_mask(mirror_mask, grid: PatchGrid) -> np.ndarray:
    mirror_mask = np.asarray(mirror_mask)
    if mirror_mask.shape != grid.shape or mirror_mask.dtype != bool:
        raise ValueError(
            f"mirror_mask must be a bool array of shape {grid.shape}, "
            f"got {mirror_mask.dtype} {mirror_mask.shape}"
        )
    return mirror_mask


class _Cells:
    """The view cut along every patch edge, so that each patch is a rectangle of whole cells.

    Per-cell sums are computed cell by cell on fresh arrays, so recomputing a few cells after a
    local change gives bit-for-bit what recomputing all of them gives.
    """

    def __init__(self, grid: PatchGrid, mirror_mask: np.ndarray):
        boxes = grid.boxes
        self.grid = grid
        self.mirror_mask = mirror_mask
        self.ys = np.unique(np.clip(np.concatenate([boxes[:, 0], boxes[:, 2]]), 0, grid.height))
        self.xs = np.unique(np.clip(np.concatenate([boxes[:, 1], boxes[:, 3]]), 0, grid.width))
        self.rows = np.searchsorted(self.ys, np.clip(boxes[:, [0, 2]], 0, grid.height))
        self.cols = np.searchsorted(self.xs, np.clip(boxes[:, [1, 3]], 0, grid.width))
        self.mirror_counts = np.array(
            [
                [np.count_nonzero(mirror_mask[y0:y1, x0:x1]) for x0, x1 in pairwise(self.xs)]
                for y0, y1 in pairwise(self.ys)
            ],
            dtype=np.int64,
        ).reshape(len(self.ys) - 1, len(self.xs) - 1)
        self.uncertainty = np.zeros(self.mirror_counts.shape, dtype=np.float64)
        self.lines = np.zeros(self.mirror_counts.shape, dtype=np.int64)

    def update(self, probabilities: np.ndarray, region=None, user=None) -> None:
        """Recompute the sums of the cells overlapping ``region`` (default all)."""
        y0, x0, y1, x1 = (0, 0, self.grid.height, self.grid.width) if region is None else region
        r0, r1 = np.searchsorted(self.ys, [y0, y1], side="right") - [1, 0]
        c0, c1 = np.searchsorted(self.xs, [x0, x1], side="right") - [1, 0]
        for r in range(max(r0, 0), min(r1, len(self.ys) - 1)):
            for c in range(max(c0, 0), min(c1, len(self.xs) - 1)):
                if self.mirror_counts[r, c]:
                    window = np.s_[self.ys[r] : self.ys[r + 1], self.xs[c] : self.xs[c + 1]]
                    self.uncertainty[r, c], self.lines[r, c] = doubt_and_lines(
                        probabilities[window],
                        self.mirror_mask[window],
                        None if user is None else user[window],
                    )

    def queued(self) -> np.ndarray:
        """(N,) bool: the patches the queue offers. Those whose share of mirror pixels is at
        least :data:`MIN_MIRROR_SHARE`, and, so that no part of the mirror is left out, for
        each mirror cell none of them covers, the patch over it with the most mirror pixels."""
        counts = self.patch_sums(self.mirror_counts)
        boxes = self.grid.boxes
        areas = (np.minimum(boxes[:, 2], self.grid.height) - np.maximum(boxes[:, 0], 0)) * (
            np.minimum(boxes[:, 3], self.grid.width) - np.maximum(boxes[:, 1], 0)
        )
        queued = (counts > 0) & (counts >= MIN_MIRROR_SHARE * areas)
        covered = np.zeros(self.mirror_counts.shape, dtype=bool)
        for index in np.flatnonzero(queued).tolist():
            covered[slice(*self.rows[index]), slice(*self.cols[index])] = True
        for r, c in zip(*np.nonzero((self.mirror_counts > 0) & ~covered), strict=True):
            if covered[r, c]:
                continue
            over = np.flatnonzero(
                (self.rows[:, 0] <= r)
                & (r < self.rows[:, 1])
                & (self.cols[:, 0] <= c)
                & (c < self.cols[:, 1])
            )
            best = int(over[np.argmax(counts[over])])
            queued[best] = True
            covered[slice(*self.rows[best]), slice(*self.cols[best])] = True
        return queued

    def patch_sums(self, cells: np.ndarray, indices=None) -> np.ndarray:
        indices = range(len(self.grid)) if indices is None else indices
        return np.array(
            [cells[slice(*self.rows[i]), slice(*self.cols[i])].sum() for i in indices],
            dtype=cells.dtype,
        )

    def scores(self, indices=None) -> np.ndarray:
        """:func:`patch_scores` from the current cell sums."""
        counts = self.patch_sums(self.mirror_counts, indices)
        doubt = self.patch_sums(self.uncertainty, indices)
        lines = self.patch_sums(self.lines, indices)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(counts > 0, doubt_per_line(doubt, lines, counts), -np.inf)

    def share(self, patches: np.ndarray) -> float:
        """Share of the mirror pixels inside the union of the given patches (bool (N,))."""
        total = int(self.mirror_counts.sum())
        if total == 0:
            return 0.0
        covered = np.zeros(self.mirror_counts.shape, dtype=bool)
        for index in np.flatnonzero(patches).tolist():
            covered[slice(*self.rows[index]), slice(*self.cols[index])] = True
        return float(self.mirror_counts[covered].sum() / total)


def patch_scores(probabilities, grid: PatchGrid, mirror_mask, user=None) -> np.ndarray:
    """Uncertainty score of every patch (higher = worse).

    Parameters
    ----------
    probabilities : (H, W) float ndarray
        Line probabilities in [0, 1]. Never modified.
    grid : PatchGrid
    mirror_mask : (H, W) bool ndarray
        The mirror area.
    user : (H, W) int8 ndarray, optional
        The user's pixels (+1 added, -1 erased): decided, so without doubt.

    Returns
    -------
    scores : (N,) float64 ndarray
        :func:`refinement_model.ranking.uncertainty_score` of every patch (doubt per predicted line
        pixel, -inf without mirror pixels), the ranking the evaluation measured, computed from
        per-cell sums so that local updates stay cheap.
    """
    return _scored_cells(probabilities, grid, mirror_mask, user).scores()


def _scored_cells(probabilities, grid: PatchGrid, mirror_mask, user=None) -> _Cells:
    probabilities = _check_grid_shape(probabilities, grid, "probabilities")
    if user is not None:
        user = _check_grid_shape(user, grid, "user")
    cells = _Cells(grid, _check_mirror_mask(mirror_mask, grid))
    cells.update(probabilities, user=user)
    return cells


def rank_patches(probabilities, grid: PatchGrid, mirror_mask) -> tuple[np.ndarray, np.ndarray]:
    """Patches worst first, without ground truth.

    Parameters
    ----------
    probabilities : (H, W) float ndarray
        Line probabilities in [0, 1].
    grid : PatchGrid
    mirror_mask : (H, W) bool ndarray

    Returns
    -------
    order : (M,) int64 ndarray
        Indices of the patches the queue offers (see ``PatchQueue.eligible``), highest score
        first (ties: lower index first).
    scores : (N,) float64 ndarray
        :func:`patch_scores` of every patch.

    Examples
    --------
    >>> grid = PatchGrid(4, 8, patch_size=4, stride=4, net_size=4)
    >>> p = np.zeros((4, 8)); p[:, 4:] = 0.5
    >>> order, scores = rank_patches(p, grid, np.ones((4, 8), bool))
    >>> order.tolist(), scores.tolist()
    ([1, 0], [0.0, 100.0])
    """
    cells = _scored_cells(probabilities, grid, mirror_mask)
    scores = cells.scores()
    candidates = np.flatnonzero(cells.queued())
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    return order, scores


class PatchQueue:
    """Per-patch review state and the worst-first queue over it.

    Parameters
    ----------
    grid : PatchGrid
    mirror_mask : (H, W) bool ndarray
        The mirror area; patches with almost no mirror pixels are never queued (see
        ``eligible``). Kept by reference.
    probabilities : (H, W) float ndarray, optional
        Current line probabilities, scored as in :func:`patch_scores`; call :meth:`update`
        where they change. Without them every score is 0 until :meth:`update`.

    Attributes
    ----------
    scores : (N,) float64 ndarray
        Current :func:`patch_scores` (higher = look first).
    eligible : (N,) bool ndarray
        The patches the queue offers: at least :data:`MIN_MIRROR_SHARE` of their pixels are
        mirror, plus the fewest others needed so that every mirror pixel is in one of them.
    visited, done : (N,) bool ndarrays
    stroke_counts : (N,) int64 ndarray
        Strokes in effect touching each patch.
    skipped : list of int
        Skipped patches, oldest first.

    Notes
    -----
    The state of patch ``i`` is derived: ``DONE`` if marked done, else ``REFINED`` if any
    current stroke touches it, else ``VISITED`` if it was shown, else ``NOT_SEEN``.
    """

    def __init__(self, grid: PatchGrid, mirror_mask, probabilities=None):
        self.grid = grid
        self._cells = _Cells(grid, _check_mirror_mask(mirror_mask, grid))
        self.scores = np.zeros(len(grid), dtype=np.float64)
        if probabilities is not None:
            self.update(_check_grid_shape(probabilities, grid, "probabilities"))
        self.eligible = self._cells.queued()
        self.visited = np.zeros(len(grid), dtype=bool)
        self.done = np.zeros(len(grid), dtype=bool)
        self.stroke_counts = np.zeros(len(grid), dtype=np.int64)
        self.skipped: list[int] = []

    def update(self, probabilities, region=None, user=None) -> None:
        """Rescore after the probabilities or the user's pixels (``user``, (H, W) int8: +1
        added, -1 erased) changed inside ``region`` (y0, x0, y1, x1; default the whole view)."""
        self._cells.update(probabilities, region, user)
        if region is None:
            self.scores[:] = self._cells.scores()
        else:
            touched = self.grid.patches_touching(*region)
            self.scores[touched] = self._cells.scores(touched.tolist())

    @property
    def states(self) -> np.ndarray:
        """(N,) uint8 state codes (NOT_SEEN, VISITED, REFINED, DONE); a new array."""
        states = np.where(self.visited, VISITED, NOT_SEEN).astype(np.uint8)
        states[self.stroke_counts > 0] = REFINED
        states[self.done] = DONE
        return states

    def _worst(self, candidates: np.ndarray) -> int | None:
        candidates = np.flatnonzero(candidates)
        if len(candidates) == 0:
            return None
        return int(candidates[np.argmax(self.scores[candidates])])

    def next(self) -> int | None:
        """The worst patch not seen yet and not skipped; then the skipped ones not done, in
        skip order (visiting a patch takes it off the skip list).

        ``None`` when every eligible patch has been seen and none is skipped.
        """
        fresh = self.eligible & (self.states == NOT_SEEN)
        fresh[self.skipped] = False
        worst = self._worst(fresh)
        if worst is not None:
            return worst
        return next((i for i in self.skipped if not self.done[i]), None)

    def revisit(self) -> int | None:
        """The worst patch already seen but not done (to go over again), or ``None``."""
        states = self.states
        return self._worst(self.eligible & ((states == VISITED) | (states == REFINED)))

    def skip(self, index: int) -> None:
        """Put a patch at the back of the queue."""
        index = check_patch_index(self.grid, index)
        if index in self.skipped:
            self.skipped.remove(index)
        self.skipped.append(index)

    def reviewed(self) -> tuple[int, int]:
        """(patches marked done, patches the queue offers): what "reviewed" counts. Looking at
        a patch, drawing on it or skipping it does not make it reviewed; marking it done does."""
        return int(np.count_nonzero(self.done & self.eligible)), int(self.eligible.sum())

    def coverage(self, *, done_only: bool = False) -> float:
        """Share of the mirror area inside patches seen (or, with ``done_only``, done)."""
        reviewed = self.done if done_only else self.states != NOT_SEEN
        return self._cells.share(reviewed)
