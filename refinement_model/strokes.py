"""Correction strokes: a small immutable value and its exact rasterisation.

A stroke is a round-capped thick polyline, ``kind`` "add" (paint the line in) or "erase" (paint it
out). Its coordinates are in whatever frame the caller works in (view pixels in the app, patch
pixels in the simulation); rasterising maps a point ``(x, y)`` to
``((x - origin_x) * scale, (y - origin_y) * scale)`` in the target window and the radius to
``radius * scale``. Pixel ``(row i, column j)`` is covered when its centre ``(j, i)`` lies within
the scaled radius of the scaled polyline. The distances are computed exactly with numpy in small
boxes, so a one-point stroke is an exact digital disc at any radius (OpenCV's polygonal circles
turn into squares below three pixels, which matters at patch resolution).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

KINDS = ("add", "erase")

# Distance evaluations per vectorised chunk: big enough to amortise numpy overhead, small enough
# to stay in cache. Longer strokes are split recursively into chunks with their own boxes.
_CHUNK_BUDGET = 1 << 14
# Squared-distance slack so that pixels exactly on the rim survive floating-point rounding.
_EPS = 1e-9


@dataclass(frozen=True)
class Stroke:
    """One correction stroke.

    Parameters
    ----------
    kind : {"add", "erase"}
        Whether the stroke paints the line in (+1) or out (-1).
    points : sequence of (x, y)
        The centre line, at least one point; converted to a tuple of float pairs.
    radius : float
        Half the stroke width, > 0, in the pixels of the points' frame.

    Examples
    --------
    >>> s = Stroke("add", [(2, 2)], 1.0)
    >>> s.sign, s.bounds()
    (1, (1, 1, 4, 4))
    """

    kind: str
    points: tuple[tuple[float, float], ...]
    radius: float

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        try:
            array = np.asarray(self.points, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"points must be a sequence of (x, y) numbers, got {self.points!r}"
            ) from None
        if array.ndim != 2 or array.shape[1] != 2 or len(array) == 0:
            raise ValueError(f"points must hold at least one (x, y) pair, got shape {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError("points must be finite")
        try:
            radius = float(self.radius)
        except (TypeError, ValueError):
            raise ValueError(f"radius must be a number, got {self.radius!r}") from None
        if not (math.isfinite(radius) and radius > 0):
            raise ValueError(f"radius must be finite and > 0, got {self.radius!r}")
        object.__setattr__(self, "points", tuple((float(x), float(y)) for x, y in array))
        object.__setattr__(self, "radius", radius)

    @property
    def sign(self) -> int:
        """+1 for an add stroke, -1 for an erase stroke."""
        return 1 if self.kind == "add" else -1

    def as_array(self) -> np.ndarray:
        """The centre line as a new (N, 2) float64 array of (x, y)."""
        return np.array(self.points, dtype=np.float64)

    def bounds(
        self, scale: float = 1.0, *, origin: Sequence[float] = (0, 0)
    ) -> tuple[int, int, int, int]:
        """Integer box ``(y0, x0, y1, x1)`` (end exclusive) covering the rasterised stroke.

        The box is in the target frame of :func:`rasterize_stroke` with the same ``scale`` and
        ``origin``; it is not clipped to any window.
        """
        scale = _check_scale(scale)
        pts = _to_target(self, origin, scale)
        r = self.radius * scale
        lo = np.floor(pts.min(axis=0) - r).astype(int)
        hi = np.floor(pts.max(axis=0) + r).astype(int) + 1
        return int(lo[1]), int(lo[0]), int(hi[1]), int(hi[0])

    def to_dict(self) -> dict:
        """The app's JSON form: ``{"kind": ..., "radius": ..., "points": [[x, y], ...]}``."""
        return {"kind": self.kind, "radius": self.radius, "points": [list(p) for p in self.points]}

    @classmethod
    def from_dict(cls, data: Mapping) -> Stroke:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` naming a missing or bad field."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a stroke must be a mapping, got {type(data).__name__}")
        missing = [key for key in ("kind", "radius", "points") if key not in data]
        if missing:
            raise ValueError(f"stroke is missing the field(s) {', '.join(missing)}")
        return cls(data["kind"], data["points"], data["radius"])


def rasterize_stroke(
    stroke: Stroke,
    shape: tuple[int, int],
    *,
    origin: Sequence[float] = (0, 0),
    scale: float = 1.0,
) -> np.ndarray:
    """Pixels of a window covered by a stroke.

    Parameters
    ----------
    stroke : Stroke
    shape : (H, W)
        Size of the target window.
    origin : (x, y), optional
        Point of the stroke's frame that maps to pixel centre (0, 0) of the window.
    scale : float, optional
        Window pixels per stroke-frame pixel (> 0); the radius is scaled too.

    Returns
    -------
    mask : (H, W) bool
        True where the pixel centre is within ``radius * scale`` of the scaled centre line; all
        False when the stroke lies outside the window.

    Examples
    --------
    >>> rasterize_stroke(Stroke("add", [(1, 1)], 1.0), (3, 3)).astype(int)
    array([[0, 1, 0],
           [1, 1, 1],
           [0, 1, 0]])
    """
    shape = _check_shape(shape)
    out = np.zeros(shape, dtype=bool)
    _paint(out, stroke, origin, _check_scale(scale), True)
    return out


def stroke_channel(
    strokes: Iterable[Stroke],
    shape: tuple[int, int],
    *,
    origin: Sequence[float] = (0, 0),
    scale: float = 1.0,
) -> np.ndarray:
    """The refiner's guidance channel: +1 where added, -1 where erased, 0 elsewhere.

    Parameters
    ----------
    strokes : iterable of Stroke
        In drawing order; later strokes paint over earlier ones.
    shape, origin, scale
        As in :func:`rasterize_stroke`.

    Returns
    -------
    channel : (H, W) float32 with values in {-1, 0, +1}
    """
    shape = _check_shape(shape)
    scale = _check_scale(scale)
    out = np.zeros(shape, dtype=np.float32)
    for stroke in strokes:
        _paint(out, stroke, origin, scale, np.float32(stroke.sign))
    return out


def burn_in(
    mask: np.ndarray,
    strokes: Iterable[Stroke],
    *,
    origin: Sequence[float] = (0, 0),
    scale: float = 1.0,
) -> np.ndarray:
    """Apply strokes to a binary mask: add strokes set True, erase strokes set False, in order.

    Parameters
    ----------
    mask : (H, W) array_like of bool
        Not modified.
    strokes : iterable of Stroke
    origin, scale
        As in :func:`rasterize_stroke`.

    Returns
    -------
    result : (H, W) bool
        A new array.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    scale = _check_scale(scale)
    out = mask.astype(bool, copy=True)
    for stroke in strokes:
        _paint(out, stroke, origin, scale, stroke.kind == "add")
    return out


def _check_shape(shape) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be (H, W), got {shape!r}") from None
    if h < 0 or w < 0:
        raise ValueError(f"shape must not be negative, got {shape!r}")
    return h, w


def _check_scale(scale) -> float:
    scale = float(scale)
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be finite and > 0, got {scale!r}")
    return scale


def _to_target(stroke: Stroke, origin: Sequence[float], scale: float) -> np.ndarray:
    try:
        ox, oy = (float(v) for v in origin)
    except (TypeError, ValueError):
        raise ValueError(f"origin must be (x, y), got {origin!r}") from None
    return (stroke.as_array() - (ox, oy)) * scale


def _paint(out: np.ndarray, stroke: Stroke, origin, scale: float, value) -> None:
    """Set ``out`` to ``value`` where the stroke covers it (in place, on our own array)."""
    if not isinstance(stroke, Stroke):
        raise ValueError(f"strokes must be Stroke values, got {type(stroke).__name__}")
    pts = _to_target(stroke, origin, scale)
    _paint_chunk(out, pts, stroke.radius * scale, value)


def _paint_chunk(out: np.ndarray, pts: np.ndarray, r: float, value) -> None:
    h, w = out.shape
    lo = np.floor(pts.min(axis=0) - r).astype(int)
    hi = np.floor(pts.max(axis=0) + r).astype(int) + 1
    x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    x1, y1 = min(int(hi[0]), w), min(int(hi[1]), h)
    if x0 >= x1 or y0 >= y1:
        return
    n_seg = max(len(pts) - 1, 1)
    if n_seg > 1 and n_seg * (y1 - y0) * (x1 - x0) > _CHUNK_BUDGET:
        # Long stroke: halve it (sharing the middle point) so that each half gets a tight box.
        mid = len(pts) // 2
        _paint_chunk(out, pts[: mid + 1], r, value)
        _paint_chunk(out, pts[mid:], r, value)
        return
    # Offsets of the pixel centres from each segment start: (K, 1, W) and (K, H, 1).
    a = pts[:-1] if len(pts) > 1 else pts
    ab = pts[1:] - a if len(pts) > 1 else np.zeros_like(pts)
    px = np.arange(x0, x1, dtype=np.float64)[None, None, :] - a[:, 0, None, None]
    py = np.arange(y0, y1, dtype=np.float64)[None, :, None] - a[:, 1, None, None]
    abx, aby = ab[:, 0, None, None], ab[:, 1, None, None]
    length2 = abx * abx + aby * aby
    # Zero-length segments (repeated points) project onto their start: t = 0.
    inverse = np.divide(1.0, length2, out=np.zeros_like(length2), where=length2 > 0)
    t = np.clip((px * abx + py * aby) * inverse, 0.0, 1.0)
    dx = px - t * abx
    dy = py - t * aby
    covered = (dx * dx + dy * dy).min(axis=0) <= r * r + _EPS
    out[y0:y1, x0:x1][covered] = value
