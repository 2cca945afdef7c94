"""Undo / redo stacks of committed steps, and a bounded cache of refined patch changes.

The history is memory-light because a step stores no pixels at all: a stroke step keeps the
stroke and, for each patch its refinement changed, the patch's version before and after (the
journal index of the stroke whose refinement the patch shows, or -1 for the base prediction).
Pixels are recomputed on undo and redo: the user map from the remaining strokes in the stroke's
box, the patch changes from :class:`DeltaCache` or, when evicted, by calling the stateless refiner
again on the strokes the version stands for. Everything the history holds can be rebuilt from
the journal, which is how it survives closing and reopening (see ``session``).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np

from refinement_model.strokes import Stroke

__all__ = ["BASE_VERSION", "DeltaCache", "DoneStep", "History", "StrokeRecord", "StrokeStep"]

BASE_VERSION = -1


@dataclass(frozen=True, eq=False)
class StrokeRecord:
    """A stroke in the session's stroke stack.

    Attributes
    ----------
    seq : int
        Index of its event in the journal (unique for the session's lifetime).
    stroke : Stroke
        In view pixels.
    box : (y0, x0, y1, x1)
        Its bounds clipped to the view (non-empty).
    patches : frozenset of int
        The patches whose boxes it touches.
    """

    seq: int
    stroke: Stroke
    box: tuple[int, int, int, int]
    patches: frozenset = field(default_factory=frozenset)


@dataclass(frozen=True, eq=False)
class StrokeStep:
    """A stroke and what its (accepted) refinement did to the patch versions."""

    record: StrokeRecord
    old_versions: dict
    new_versions: dict


@dataclass(frozen=True)
class DoneStep:
    """A patch marked done (``new`` True) or reopened (``new`` False)."""

    patch: int
    old: bool
    new: bool


class History:
    """Bounded undo stack and redo stack; a new step clears the redo stack.

    Parameters
    ----------
    limit : int
        Most steps kept for undo (> 0); the oldest are forgotten beyond it.
    """

    def __init__(self, limit: int = 1000):
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        self.limit = limit
        self._undo: deque = deque(maxlen=limit)
        self._redo: list = []

    def push(self, step) -> None:
        self._undo.append(step)
        self._redo.clear()

    def undo(self):
        """Move the latest step to the redo stack and return it (``ValueError`` if none)."""
        if not self._undo:
            raise ValueError("nothing to undo")
        step = self._undo.pop()
        self._redo.append(step)
        return step

    def redo(self):
        """Move the latest undone step back and return it (``ValueError`` if none)."""
        if not self._redo:
            raise ValueError("nothing to redo")
        step = self._redo.pop()
        self._undo.append(step)
        return step

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def __len__(self) -> int:
        return len(self._undo)


class DeltaCache:
    """Least-recently-used store of patch changes keyed by ``(patch, version)``.

    Parameters
    ----------
    max_bytes : int
        Evict the oldest entries once the arrays together take more than this (>= 0).
    """

    def __init__(self, max_bytes: int = 64 << 20):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be a non-negative integer, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._entries: OrderedDict = OrderedDict()

    def put(self, key, delta: np.ndarray) -> None:
        self.pop(key)
        self._entries[key] = delta
        self.nbytes += delta.nbytes
        while self.nbytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.nbytes -= evicted.nbytes

    def pop(self, key):
        """Remove and return the entry, or ``None``."""
        delta = self._entries.pop(key, None)
        if delta is not None:
            self.nbytes -= delta.nbytes
        return delta

    def __len__(self) -> int:
        return len(self._entries)
