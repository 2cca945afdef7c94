"""The brush: its width, and one drag of the add or erase tool collected into a stroke.

Everything is in image pixels (the view pixels of the session); the canvas converts the mouse
positions with its :class:`~annotator.core.camera.Camera` and hands the finished
:class:`~refinement_model.strokes.Stroke` to the session once, on release.
"""

from __future__ import annotations

import numpy as np

from refinement_model.strokes import KINDS, Stroke

#: The brush radius (half its width) the tools allow, in image pixels.
MIN_RADIUS, MAX_RADIUS = 0.5, 200.0
#: One press of ``[`` or ``]`` changes the width by this factor: ten presses double or halve it.
WIDTH_STEP = 2**0.1
#: A mouse move adds a point only this far (|dx| + |dy|, image pixels) from the last one:
#: sub-pixel jitter would add points but no ink.
MIN_SPACING = 0.5


def clip_radius(radius: float) -> float:
    """``radius`` clipped to [:data:`MIN_RADIUS`, :data:`MAX_RADIUS`]."""
    return min(max(float(radius), MIN_RADIUS), MAX_RADIUS)


def step_radius(radius: float, steps: int) -> float:
    """The radius ``steps`` presses of ``]`` wider (``[`` narrower when negative), clipped."""
    return clip_radius(radius * WIDTH_STEP**steps)


class BrushDrag:
    """The centre line of one drag of the brush, from the press to the release.

    Parameters
    ----------
    kind : {"add", "erase"}
        The tool the drag paints with.
    radius : float
        Half the brush width in image pixels, > 0; fixed for the whole drag.
    start : (x, y)
        The image point where the button went down: a drag that never moves is a dot.
    min_spacing : float
        See :data:`MIN_SPACING`.

    Examples
    --------
    >>> drag = BrushDrag("add", 3.0, (10, 10))
    >>> drag.move((10.2, 10.1)), drag.move((14, 10))
    (False, True)
    >>> drag.finish()
    Stroke(kind='add', points=((10.0, 10.0), (14.0, 10.0)), radius=3.0)
    """

    def __init__(self, kind: str, radius: float, start, *, min_spacing: float = MIN_SPACING):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if not (np.isfinite(radius) and radius > 0):
            raise ValueError(f"radius must be finite and > 0, got {radius!r}")
        self.kind = kind
        self.radius = float(radius)
        self.min_spacing = float(min_spacing)
        self._points = [(float(start[0]), float(start[1]))]

    def move(self, point) -> bool:
        """Extend the line to the image point ``(x, y)``; whether it became a new point."""
        x, y = float(point[0]), float(point[1])
        last_x, last_y = self._points[-1]
        if abs(x - last_x) + abs(y - last_y) < self.min_spacing:
            return False
        self._points.append((x, y))
        return True

    @property
    def points(self) -> np.ndarray:
        """The centre line so far, (N, 2) float64 of (x, y), N >= 1 (a copy)."""
        return np.array(self._points, np.float64)

    def runs_near(self, box) -> list[np.ndarray]:
        """The parts of the line whose ink may reach ``box`` = (x0, y0, x1, y1), image pixels.

        Each part is a run of consecutive points, (K, 2) float64; a segment belongs when its
        bounding box, grown by the radius, meets ``box``. Drawing only these keeps the cost of
        a mouse move constant however long the drag. A drag of one point gives that point
        alone (a run of one) when near.
        """
        points = self.points
        if len(points) == 1:
            lo = hi = points
        else:
            lo, hi = np.minimum(points[:-1], points[1:]), np.maximum(points[:-1], points[1:])
        x0, y0, x1, y1 = box
        r = self.radius
        near = (hi[:, 0] >= x0 - r) & (lo[:, 0] <= x1 + r)
        near &= (hi[:, 1] >= y0 - r) & (lo[:, 1] <= y1 + r)
        if len(points) == 1:
            return [points] if near[0] else []
        # Split the near segments where a far one interrupts them.
        index = np.flatnonzero(near)
        breaks = np.flatnonzero(np.diff(index) > 1) + 1
        return [points[run[0] : run[-1] + 2] for run in np.split(index, breaks) if len(run)]

    def finish(self) -> Stroke:
        """The drag as the stroke the session takes."""
        return Stroke(self.kind, tuple(self._points), self.radius)
