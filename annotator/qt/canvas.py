"""The zoomable, pannable view of a 60 Mpx mirror, painted tile by tile from a pyramid.

Only the visible tiles are drawn, each rendered once at the resolution of the zoom level and kept
in a small LRU cache; a change in the annotation drops only the tiles under the changed box. The
brush paints its stroke locally while the mouse moves (no session call); the stroke is handed
over once, on release.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen, QPixmap, QTransform
from PySide6.QtWidgets import QWidget

from annotator.core import render

TILE = 256
MIN_SCALE, MAX_SCALE = 1 / 64, 32.0
WHEEL_STEP = 1.25
_CACHE_TILES = 600
# Rendering new tiles stops after this much of a frame (counted from its start); the rest
# follow in the next frames. Drawing the cached tiles takes up to about 6 ms more.
_FRAME_BUDGET_S = 0.006
# log2(4/3): see Canvas.level
_LEVEL_BIAS = math.log2(4 / 3)
# While zooming or panning tiles are scaled nearest-neighbour (about 3x cheaper than bilinear);
# this long after the last change the view is drawn once more, smoothly.
_SETTLE_MS = 150
_BACKGROUND = QColor(38, 38, 40)
_STROKE_COLORS = {"add": QColor(*render.ADD_COLOR, 170), "erase": QColor(*render.ERASE_COLOR, 170)}


def numpy_to_qimage(array: np.ndarray) -> QImage:
    """A QImage owning a copy of an (H, W, 3) or (H, W, 4) uint8 array (RGB or straight RGBA)."""
    array = np.ascontiguousarray(array)
    h, w, c = array.shape
    fmt = QImage.Format.Format_RGB888 if c == 3 else QImage.Format.Format_RGBA8888
    return QImage(array.data, w, h, array.strides[0], fmt).copy()


class Canvas(QWidget):
    """Paints a :class:`~annotator.core.pyramid.LayerStack` and turns drags into strokes.

    Coordinates: a widget point ``p`` shows the view pixel ``p / scale + offset`` (x, y).

    Signals
    -------
    strokeFinished(kind: str, points: tuple of (x, y), radius: float)
        Emitted once per drag of the add or erase brush, in view pixels.
    cursorMoved(x: float, y: float)
        The view position under the mouse.
    viewChanged()
        Zoom or pan changed.
    """

    strokeFinished = Signal(str, object, float)
    cursorMoved = Signal(float, float)
    viewChanged = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setMinimumSize(200, 150)
        self._stack = None
        self._settings = render.LayerSettings()
        self._tiles: OrderedDict = OrderedDict()
        # Running mean of one tile's render time: a tile starts only if it should end in budget.
        self._tile_seconds = 0.002
        self._pending = False
        self._scale = 1.0
        self._offset = np.zeros(2)  # view (x, y) at the widget's top-left corner
        self._proposal = None  # (QImage, x0, y0) in view pixels
        self._highlight = None  # (y0, x0, y1, x1) of the current patch
        self._done_boxes = np.zeros((0, 4), np.int64)  # patches marked done
        self.tool = "add"
        self.radius = 6.0
        self._stroke: list[tuple[float, float]] = []
        self._pan_from = None
        self._space = False  # held: the left button pans, as in image tools
        self._mouse = None  # widget position of the brush cursor
        self._moving = False  # zoom or pan in progress: draw fast, smooth once settled
        self._settle = QTimer(self, singleShot=True, interval=_SETTLE_MS)
        self._settle.timeout.connect(self._settled)

    # ---- content -------------------------------------------------------------------------
    def set_stack(self, stack) -> None:
        """Show a new view (a LayerStack) and fit it to the window."""
        self._stack = stack
        self._tiles.clear()
        self._proposal = None
        self._highlight = None
        self._done_boxes = np.zeros((0, 4), np.int64)
        self.fit()

    @property
    def stack(self):
        return self._stack

    @property
    def settings(self) -> render.LayerSettings:
        return self._settings

    def set_settings(self, settings: render.LayerSettings) -> None:
        """Change what is shown; every cached tile is redrawn."""
        if settings != self._settings:
            self._settings = settings
            self._tiles.clear()
            self.update()

    def invalidate(self, box=None) -> None:
        """Drop the cached tiles over ``box`` = (y0, x0, y1, x1) in view pixels (None: all)."""
        if box is None:
            self._tiles.clear()
        else:
            y0, x0, y1, x1 = box
            for key in list(self._tiles):
                level, ty, tx, whole = key
                size = TILE << level
                over = (
                    ty * size < y1
                    and (ty + 1) * size > y0
                    and tx * size < x1
                    and (tx + 1) * size > x0
                )
                if whole or over:
                    del self._tiles[key]
        self.update()

    def set_proposal(self, box=None, rgba=None) -> None:
        """Show a pending refinement's difference (RGBA over ``box``), or hide it (None)."""
        self._proposal = None if rgba is None else (numpy_to_qimage(rgba), box[1], box[0])
        self.update()

    @property
    def has_proposal(self) -> bool:
        """Whether a refinement's difference is shown."""
        return self._proposal is not None

    def set_highlight(self, box=None) -> None:
        """Outline the patch ``box`` = (y0, x0, y1, x1) the user works on (None: none)."""
        self._highlight = box
        self.update()

    def set_done(self, boxes) -> None:
        """Mark the patches ``boxes`` ((N, 4) of y0, x0, y1, x1) as done: a thin outline and a
        tick in their corner, faint enough to draw over."""
        self._done_boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
        self.update()

    # ---- zoom and pan --------------------------------------------------------------------
    @property
    def scale(self) -> float:
        return self._scale

    def view_to_widget(self, x: float, y: float) -> QPointF:
        return QPointF((x - self._offset[0]) * self._scale, (y - self._offset[1]) * self._scale)

    def widget_to_view(self, point) -> tuple[float, float]:
        return (
            point.x() / self._scale + self._offset[0],
            point.y() / self._scale + self._offset[1],
        )

    def fit(self) -> None:
        """Show the whole view, centred."""
        if self._stack is None:
            return
        h, w = self._stack.shape
        scale = min(self.width() / w, self.height() / h) * 0.98
        self._set_view(scale, (w / 2, h / 2), (self.width() / 2, self.height() / 2))

    def one_to_one(self) -> None:
        """One view pixel per screen pixel, keeping the centre of the window in place."""
        centre = QPointF(self.width() / 2, self.height() / 2)
        self._set_view(1.0, self.widget_to_view(centre), (centre.x(), centre.y()))

    def zoom_at(self, factor: float, point) -> None:
        """Zoom by ``factor`` keeping the view pixel under the widget ``point`` where it is."""
        self._set_view(self._scale * factor, self.widget_to_view(point), (point.x(), point.y()))

    def centre_on(self, box, *, margin: float = 1.5) -> None:
        """Zoom to show ``box`` = (y0, x0, y1, x1) with some context around it."""
        y0, x0, y1, x1 = box
        scale = min(self.width() / ((x1 - x0) * margin), self.height() / ((y1 - y0) * margin))
        self._set_view(scale, ((x0 + x1) / 2, (y0 + y1) / 2), (self.width() / 2, self.height() / 2))

    def pan(self, dx: float, dy: float) -> None:
        """Move the picture by (dx, dy) screen pixels."""
        self._offset = self._offset - np.array([dx, dy]) / self._scale
        self._view_changed()

    def _set_view(self, scale, view_point, widget_point) -> None:
        self._scale = float(min(max(scale, MIN_SCALE), MAX_SCALE))
        self._offset = np.asarray(view_point, float) - np.asarray(widget_point, float) / self._scale
        self._view_changed()

    def _view_changed(self) -> None:
        self._moving = True
        self._settle.start()
        self.update()
        self.viewChanged.emit()

    @property
    def moving(self) -> bool:
        """Whether a zoom or pan is in progress (tiles drawn without smoothing)."""
        return self._moving

    def paint_final(self) -> None:
        """Paint now as the view looks once settled: smooth, every tile sharp (screenshots)."""
        self._settle.stop()
        self._moving = False
        self.repaint()
        while self._pending:  # the coarse stand-ins replaced by their tiles
            self.repaint()

    def _settled(self) -> None:
        self._moving = False
        self.update()

    def level(self) -> int:
        """The pyramid level drawn at the current zoom.

        Below 1:1 its pixels are drawn at 2/3 to 4/3 of a screen pixel: a slight upscale of
        the next coarser level is as sharp as a strong bilinear downscale of the finer one
        (which aliases), and draws up to four times fewer tiles per frame.
        """
        if self._stack is None or self._scale >= 1.0:
            return 0
        level = math.floor(math.log2(1.0 / self._scale) + _LEVEL_BIAS)
        return min(max(level, 0), self._stack.n_levels - 1)

    # ---- painting ------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        deadline = time.perf_counter() + _FRAME_BUDGET_S
        painter = QPainter(self)
        painter.fillRect(event.rect(), _BACKGROUND)
        if self._stack is not None:
            self._paint_tiles(painter, event.rect(), deadline)
            painter.setTransform(self._view_transform())
            if self._proposal is not None:
                image, x0, y0 = self._proposal
                painter.drawImage(QPointF(x0, y0), image)
            if len(self._done_boxes):
                self._paint_done(painter)
            if self._highlight is not None:
                self._paint_highlight(painter)
            if self._stroke:
                self._paint_stroke(painter, event.rect())
            painter.resetTransform()
            if self._mouse is not None and self.tool in _STROKE_COLORS:
                self._paint_cursor(painter)
        painter.end()

    def _view_transform(self) -> QTransform:
        s = self._scale
        return QTransform(s, 0, 0, s, -self._offset[0] * s, -self._offset[1] * s)

    @property
    def pending_tiles(self) -> bool:
        """Whether the last frame left tiles to render (they follow in the next frames)."""
        return self._pending

    def _level_transform(self, level: int) -> QTransform:
        factor = self._scale * (1 << level)
        return QTransform(
            factor, 0, 0, factor, -self._offset[0] * self._scale, -self._offset[1] * self._scale
        )

    def _paint_tiles(self, painter: QPainter, rect: QRect, deadline: float) -> None:
        """Draw the visible tiles; those not cached are rendered until ``deadline``.

        Tiles beyond the budget show the coarsest level (one small image of the whole view)
        for a frame or two, as map viewers do, so zooming and panning never stall.
        """
        level = self.level()
        size = TILE << level
        h, w = self._stack.shape
        x0, y0 = self.widget_to_view(rect.topLeft())
        x1, y1 = self.widget_to_view(QPointF(rect.right() + 1, rect.bottom() + 1))
        tx0, ty0 = max(int(x0 // size), 0), max(int(y0 // size), 0)
        tx1, ty1 = min(int(x1 // size), (w - 1) // size), min(int(y1 // size), (h - 1) // size)
        # Bilinear below 1:1 once the view has settled; above it the user inspects pixels,
        # drawn as squares.
        painter.setRenderHint(
            QPainter.RenderHint.SmoothPixmapTransform, self._scale < 1 and not self._moving
        )
        painter.setTransform(self._level_transform(level))
        # Render first, then draw: the budget goes to new tiles, not to drawing cached ones.
        # The first new tile of a frame always renders, so that the view fills in even when
        # one tile costs more than the budget.
        rendered = 0

        def affordable() -> bool:
            return rendered == 0 or time.perf_counter() + self._tile_seconds < deadline

        tiles = []
        for ty in range(ty0, ty1 + 1):
            for tx in range(tx0, tx1 + 1):
                cached = (level, ty, tx, False) in self._tiles
                tile = self._tile(level, ty, tx, now=cached or affordable())
                rendered += tile is not None and not cached
                tiles.append(((ty, tx), tile))
        missing = []
        for (ty, tx), tile in tiles:
            if tile is None:
                missing.append(QRectF(tx * TILE, ty * TILE, TILE, TILE))
            else:
                painter.drawPixmap(QPointF(tx * TILE, ty * TILE), tile)
        self._pending = bool(missing)
        if missing:
            top = self._stack.n_levels - 1
            overview = self._tile(top, 0, 0, whole=True)
            shrink = 1.0 / (1 << (top - level))
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, not self._moving)
            for target in missing:
                source = QRectF(
                    target.x() * shrink,
                    target.y() * shrink,
                    target.width() * shrink,
                    target.height() * shrink,
                )
                painter.drawPixmap(target, overview, source)
            QTimer.singleShot(0, self.update)
        painter.resetTransform()

    def _tile(self, level: int, ty: int, tx: int, *, now: bool = True, whole: bool = False):
        """The cached pixmap of a tile; rendered if needed and ``now`` (else None).

        ``whole`` asks for the entire level as one tile (the top level, for the fallback).
        """
        key = (level, ty, tx, whole)
        image = self._tiles.get(key)
        if image is not None:
            self._tiles.move_to_end(key)
            return image
        if not now:
            return None
        shape = self._stack.depth.levels[level].shape
        if whole:
            box = (0, 0, *shape[:2])
        else:
            box = (
                ty * TILE,
                tx * TILE,
                min((ty + 1) * TILE, shape[0]),
                min((tx + 1) * TILE, shape[1]),
            )
        started = time.perf_counter()
        # A pixmap is in the screen's format: drawing it needs no conversion, frame after frame.
        rgb = render.compose(self._stack.tile(level, box, self._settings), self._settings)
        image = QPixmap.fromImage(numpy_to_qimage(rgb))
        if not whole:
            self._tile_seconds += 0.2 * (time.perf_counter() - started - self._tile_seconds)
        self._tiles[key] = image
        if len(self._tiles) > _CACHE_TILES:
            self._tiles.popitem(last=False)
        return image

    def _paint_highlight(self, painter: QPainter) -> None:
        y0, x0, y1, x1 = self._highlight
        painter.setBrush(Qt.BrushStyle.NoBrush)
        # A dark line under a bright dashed one stays visible on light and dark bronze.
        for color, width, style in (
            (QColor(0, 0, 0, 170), 4.0, Qt.PenStyle.SolidLine),
            (QColor(*render.PALETTE["current"]), 2.0, Qt.PenStyle.DashLine),
        ):
            pen = QPen(color, width, style)
            pen.setCosmetic(True)
            painter.setPen(pen)
            painter.drawRect(QRectF(x0, y0, x1 - x0, y1 - y0))

    def _paint_done(self, painter: QPainter) -> None:
        painter.setBrush(Qt.BrushStyle.NoBrush)
        pen = QPen(QColor(*render.PALETTE["done"], 150), 1.5)
        pen.setCosmetic(True)
        painter.setPen(pen)
        tick = 14 / self._scale  # 14 screen pixels at any zoom
        for y0, x0, y1, x1 in self._done_boxes.tolist():
            # inset by a screen pixel: overlapping done patches keep separate outlines
            inset = 2 / self._scale
            painter.drawRect(
                QRectF(x0 + inset, y0 + inset, x1 - x0 - 2 * inset, y1 - y0 - 2 * inset)
            )
            left, top = x0 + tick * 0.5, y0 + tick * 0.5
            painter.drawPolyline(
                [
                    QPointF(left, top + tick * 0.5),
                    QPointF(left + tick * 0.35, top + tick * 0.85),
                    QPointF(left + tick, top),
                ]
            )

    def _paint_stroke(self, painter: QPainter, rect: QRect) -> None:
        """Draw the stroke in progress, only its segments near ``rect`` (widget pixels).

        A mouse move dirties a small rectangle; stroking only the segments there keeps the cost
        per event constant however long the drag. One path per call, so the translucent ink
        is not doubled where segments overlap.
        """
        pen = QPen(_STROKE_COLORS[self.tool], 2 * self.radius)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        painter.setPen(pen)
        points = np.asarray(self._stroke)
        if len(points) == 1:
            points = np.vstack([points, points + (1e-3, 0)])
        (x0, y0), (x1, y1) = (
            self.widget_to_view(rect.topLeft()),
            self.widget_to_view(rect.bottomRight()),
        )
        lo, hi = np.minimum(points[:-1], points[1:]), np.maximum(points[:-1], points[1:])
        near = (
            (hi[:, 0] >= x0 - self.radius)
            & (lo[:, 0] <= x1 + self.radius)
            & (hi[:, 1] >= y0 - self.radius)
            & (lo[:, 1] <= y1 + self.radius)
        )
        path = QPainterPath()
        previous = -2
        for i in np.flatnonzero(near).tolist():
            if i != previous + 1:
                path.moveTo(*points[i])
            path.lineTo(*points[i + 1])
            previous = i
        painter.drawPath(path)

    def _paint_cursor(self, painter: QPainter) -> None:
        r = self.radius * self._scale
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(QPen(QColor(0, 0, 0, 160), 3))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawEllipse(self._mouse, r, r)
        painter.setPen(QPen(_STROKE_COLORS[self.tool].lighter(130), 1))
        painter.drawEllipse(self._mouse, r, r)

    def _dirty_rect(self, a: QPointF, b: QPointF) -> QRect:
        pad = int(self.radius * self._scale) + 4
        return QRectF(a, b).normalized().toAlignedRect().adjusted(-pad, -pad, pad, pad)

    # ---- input ---------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (
            button == Qt.MouseButton.LeftButton and self._space
        ):
            self._pan_from = event.position()
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        elif (
            button == Qt.MouseButton.LeftButton
            and self._stack is not None
            and self.tool in _STROKE_COLORS
        ):
            self._stroke = [self.widget_to_view(event.position())]
            self.update(self._dirty_rect(event.position(), event.position()))

    def mouseMoveEvent(self, event) -> None:
        position = event.position()
        if self._pan_from is not None:
            delta = position - self._pan_from
            self._pan_from = position
            self.pan(delta.x(), delta.y())
            return
        previous = self._mouse if self._mouse is not None else position
        self._mouse = position
        if self._stroke:
            point = self.widget_to_view(position)
            last = self._stroke[-1]
            # Sub-pixel jitter adds points but no ink.
            if abs(point[0] - last[0]) + abs(point[1] - last[1]) >= 0.5:
                self._stroke.append(point)
        self.update(self._dirty_rect(previous, position))
        self.cursorMoved.emit(*self.widget_to_view(position))

    def mouseReleaseEvent(self, event) -> None:
        if self._pan_from is not None:
            self._pan_from = None
            self.restore_cursor()
            return
        if event.button() == Qt.MouseButton.LeftButton and self._stroke:
            points, self._stroke = tuple(self._stroke), []
            self.strokeFinished.emit(self.tool, points, float(self.radius))
            self.update()

    def leaveEvent(self, event) -> None:
        self._mouse = None
        self.update()

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_at(WHEEL_STEP**steps, event.position())

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Space:
            if not event.isAutoRepeat():
                self._space = True
                self.setCursor(Qt.CursorShape.OpenHandCursor)
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Space:
            if not event.isAutoRepeat():
                self._space = False
                if self._pan_from is None:
                    self.restore_cursor()
            return
        super().keyReleaseEvent(event)

    def restore_cursor(self) -> None:
        """The cursor of the current tool (after panning, or when the tool changed)."""
        self.setCursor(
            Qt.CursorShape.OpenHandCursor if self.tool == "pan" else Qt.CursorShape.CrossCursor
        )

    def resizeEvent(self, event) -> None:
        if self._stack is not None and event.oldSize().width() <= 0:
            self.fit()
        super().resizeEvent(event)
