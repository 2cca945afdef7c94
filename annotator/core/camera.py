"""Zoom and pan of the canvas as plain numbers: which image pixel a screen pixel shows.

Two frames: *screen* pixels of the canvas widget, origin at its top-left corner, and *image*
pixels of the mirror view (what the session, the strokes and the rest of the app call view
pixels). Points are ``(x, y)`` in both. A screen point ``p`` shows the image point
``p / scale + offset``: ``offset`` is the image point at the widget's top-left corner.
"""

from __future__ import annotations

import math

MIN_SCALE, MAX_SCALE = 1 / 64, 32.0
#: Zoom factor of one wheel notch (120 eighths of a degree).
WHEEL_STEP = 1.25
#: What :meth:`Camera.fit` leaves of the window: a thin margin shows where the view ends.
FIT_FILL = 0.98
# log2(4/3): see Camera.level
_LEVEL_BIAS = math.log2(4 / 3)


class Camera:
    """The canvas's zoom (``scale``, screen pixels per image pixel) and pan (``offset``).

    Every change clamps the scale to [:data:`MIN_SCALE`, :data:`MAX_SCALE`] (a window of no
    size yet fits at the smallest scale); a negative or NaN scale is a ValueError.

    Examples
    --------
    >>> camera = Camera()
    >>> camera.fit((400, 300), (200, 100))  # a 200 x 100 image in a 400 x 300 window
    >>> camera.scale, camera.to_image((200, 150))
    (1.96, (100.0, 50.0))
    """

    def __init__(self, scale: float = 1.0, offset: tuple[float, float] = (0.0, 0.0)):
        self.scale = _clamp_scale(scale)
        self.offset = (float(offset[0]), float(offset[1]))

    def __repr__(self) -> str:
        return f"Camera(scale={self.scale!r}, offset={self.offset!r})"

    # ---- coordinates ---------------------------------------------------------------------
    def to_image(self, screen_point) -> tuple[float, float]:
        """The image point ``(x, y)`` shown at the screen point ``(x, y)``."""
        x, y = screen_point
        return (x / self.scale + self.offset[0], y / self.scale + self.offset[1])

    def to_screen(self, image_point) -> tuple[float, float]:
        """The screen point ``(x, y)`` where the image point ``(x, y)`` is shown."""
        x, y = image_point
        return ((x - self.offset[0]) * self.scale, (y - self.offset[1]) * self.scale)

    # ---- changes -------------------------------------------------------------------------
    def look_at(self, scale: float, image_point, screen_point) -> None:
        """Zoom to ``scale`` (clamped) with ``image_point`` shown at ``screen_point``."""
        self.scale = _clamp_scale(scale)
        self.offset = (
            float(image_point[0]) - screen_point[0] / self.scale,
            float(image_point[1]) - screen_point[1] / self.scale,
        )

    def fit(self, window_size, image_size) -> None:
        """Show the whole image centred in a window of ``(width, height)`` screen pixels.

        ``image_size`` is ``(width, height)`` in image pixels; the image fills
        :data:`FIT_FILL` of the tighter direction.
        """
        (window_w, window_h), (image_w, image_h) = window_size, image_size
        scale = min(window_w / image_w, window_h / image_h) * FIT_FILL
        self.look_at(scale, (image_w / 2, image_h / 2), (window_w / 2, window_h / 2))

    def frame(self, box, window_size, *, margin: float = 1.5) -> None:
        """Centre ``box`` = (y0, x0, y1, x1) in image pixels, ``margin`` times its size showing."""
        y0, x0, y1, x1 = box
        window_w, window_h = window_size
        scale = min(window_w / ((x1 - x0) * margin), window_h / ((y1 - y0) * margin))
        self.look_at(scale, ((x0 + x1) / 2, (y0 + y1) / 2), (window_w / 2, window_h / 2))

    def zoom_about(self, screen_point, factor: float) -> None:
        """Zoom by ``factor``; the image point under ``screen_point`` stays there."""
        self.look_at(self.scale * factor, self.to_image(screen_point), screen_point)

    def one_to_one(self, window_size) -> None:
        """One image pixel per screen pixel, the point at the window's centre kept in place."""
        centre = (window_size[0] / 2, window_size[1] / 2)
        self.look_at(1.0, self.to_image(centre), centre)

    def pan(self, dx: float, dy: float) -> None:
        """Move the picture by ``(dx, dy)`` screen pixels (right and down for positive)."""
        self.offset = (self.offset[0] - dx / self.scale, self.offset[1] - dy / self.scale)

    # ---- what to draw --------------------------------------------------------------------
    def level(self, n_levels: int) -> int:
        """The pyramid level (0: full resolution, each next one half as fine) drawn at this zoom.

        Below 1:1 its pixels are drawn at 2/3 to 4/3 of a screen pixel: a slight upscale of
        the next coarser level is as sharp as a strong bilinear downscale of the finer one
        (which aliases), and draws up to four times fewer tiles per frame. Clamped to the
        ``n_levels`` levels there are.
        """
        if self.scale >= 1.0:
            return 0
        level = math.floor(math.log2(1.0 / self.scale) + _LEVEL_BIAS)
        return min(max(level, 0), n_levels - 1)

    def visible_tiles(self, screen_box, image_shape, *, tile: int, level: int):
        """The tiles of pyramid ``level`` that cover ``screen_box``, as (rows, columns) ranges.

        ``screen_box`` = (x0, y0, x1, y1) in screen pixels, ends exclusive; ``image_shape`` =
        (height, width) at full resolution; a tile of ``level`` holds ``tile`` level pixels,
        ``tile << level`` image pixels, tile (row, column) starting at image point
        ``(column, row) * (tile << level)``. Only tiles inside the image are given (empty
        ranges when the box shows none of it).
        """
        size = tile << level
        height, width = image_shape
        x0, y0 = self.to_image(screen_box[:2])
        x1, y1 = self.to_image(screen_box[2:])
        columns = range(max(int(x0 // size), 0), min(int(x1 // size), (width - 1) // size) + 1)
        rows = range(max(int(y0 // size), 0), min(int(y1 // size), (height - 1) // size) + 1)
        return rows, columns


def wheel_factor(eighths_of_degree: float) -> float:
    """The zoom factor of a wheel turn: :data:`WHEEL_STEP` per notch of 120, any sign."""
    return WHEEL_STEP ** (eighths_of_degree / 120.0)


def _clamp_scale(scale: float) -> float:
    if not scale >= 0:  # NaN too
        raise ValueError(f"scale must be >= 0, got {scale!r}")
    return float(min(max(scale, MIN_SCALE), MAX_SCALE))
