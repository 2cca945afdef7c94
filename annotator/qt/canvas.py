"""The zoomable, pannable view of a 60 Mpx mirror, painted tile by tile from a pyramid.

Only the visible tiles are drawn, each rendered once at the resolution of the zoom level and kept
in a small LRU cache; a change in the annotation drops only the tiles under the changed box. The
brush paints its stroke locally while the mouse moves (no session call); the stroke is handed
over once, on release. Zoom and pan are a :class:`~annotator.core.camera.Camera`, a drag is a
:class:`~annotator.core.brush.BrushDrag`: this widget renders, caches tiles and forwards input.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen, QPixmap, QTransform
from PySide6.QtWidgets import QWidget

from annotator.core import render
from annotator.core.brush import BrushDrag
from annotator.core.camera import Camera, wheel_factor

TILE = 256
_CACHE_TILES = 600
# Rendering new tiles stops after this much of a frame (counted from its start); the rest
# follow in the next frames. Drawing the cached tiles takes up to about 6 ms more.
_FRAME_BUDGET_S = 0.006
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

    Coordinates: a widget point ``p`` shows the view pixel ``p / scale + offset`` (x, y), the
    :class:`~annotator.core.camera.Camera`'s screen and image points.

    Signals
    -------
    strokeFinished(stroke: Stroke)
        Emitted once per drag of the add or erase brush, in view pixels.
    cursorMoved(x: float, y: float)
        The view position under the mouse.
    viewChanged()
        Zoom or pan changed.
    """

    strokeFinished = Signal(object)
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
        self._camera = Camera()
        self._proposal = None  # (QImage, x0, y0) in view pixels
        self._highlight = None  # (y0, x0, y1, x1) of the current patch
        self._done_boxes = np.zeros((0, 4), np.int64)  # patches marked done
        self.tool = "add"
        self.radius = 6.0
        self._drag: BrushDrag | None = None
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
        """Screen pixels per view pixel."""
        return self._camera.scale

    def view_to_widget(self, x: float, y: float) -> QPointF:
        return QPointF(*self._camera.to_screen((x, y)))

    def widget_to_view(self, point) -> tuple[float, float]:
        return self._camera.to_image((point.x(), point.y()))

    def _window_size(self) -> tuple[int, int]:
        return self.width(), self.height()

    def fit(self) -> None:
        """Show the whole view, centred."""
        if self._stack is None:
            return
        h, w = self._stack.shape
        self._camera.fit(self._window_size(), (w, h))
        self._view_changed()

    def one_to_one(self) -> None:
        """One view pixel per screen pixel, keeping the centre of the window in place."""
        self._camera.one_to_one(self._window_size())
        self._view_changed()

    def zoom_at(self, factor: float, point) -> None:
        """Zoom by ``factor`` keeping the view pixel under the widget ``point`` where it is."""
        self._camera.zoom_about((point.x(), point.y()), factor)
        self._view_changed()

    def centre_on(self, box, *, margin: float = 1.5) -> None:
        """Zoom to show ``box`` = (y0, x0, y1, x1) with some context around it."""
        self._camera.frame(box, self._window_size(), margin=margin)
        self._view_changed()

    def pan(self, dx: float, dy: float) -> None:
        """Move the picture by (dx, dy) screen pixels."""
        self._camera.pan(dx, dy)
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
        """The pyramid level drawn at the current zoom (:meth:`Camera.level`)."""
        return 0 if self._stack is None else self._camera.level(self._stack.n_levels)

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
            if self._drag is not None:
                self._paint_stroke(painter, event.rect())
            painter.resetTransform()
            if self._mouse is not None and self.tool in _STROKE_COLORS:
                self._paint_cursor(painter)
        painter.end()

    def _view_transform(self) -> QTransform:
        return self._level_transform(0)

    @property
    def pending_tiles(self) -> bool:
        """Whether the last frame left tiles to render (they follow in the next frames)."""
        return self._pending

    def _level_transform(self, level: int) -> QTransform:
        """Level pixels to widget pixels."""
        factor = self._camera.scale * (1 << level)
        dx, dy = self._camera.to_screen((0.0, 0.0))
        return QTransform(factor, 0, 0, factor, dx, dy)

    def _paint_tiles(self, painter: QPainter, rect: QRect, deadline: float) -> None:
        """Draw the visible tiles; those not cached are rendered until ``deadline``.

        Tiles beyond the budget show the coarsest level (one small image of the whole view)
        for a frame or two, as map viewers do, so zooming and panning never stall.
        """
        level = self.level()
        rows, columns = self._camera.visible_tiles(
            (rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1),
            self._stack.shape,
            tile=TILE,
            level=level,
        )
        # Bilinear below 1:1 once the view has settled; above it the user inspects pixels,
        # drawn as squares.
        painter.setRenderHint(
            QPainter.RenderHint.SmoothPixmapTransform, self.scale < 1 and not self._moving
        )
        painter.setTransform(self._level_transform(level))
        # Render first, then draw: the budget goes to new tiles, not to drawing cached ones.
        # The first new tile of a frame always renders, so that the view fills in even when
        # one tile costs more than the budget.
        rendered = 0

        def affordable() -> bool:
            return rendered == 0 or time.perf_counter() + self._tile_seconds < deadline

        tiles = []
        for ty in rows:
            for tx in columns:
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
        tick = 14 / self.scale  # 14 screen pixels at any zoom
        for y0, x0, y1, x1 in self._done_boxes.tolist():
            # inset by a screen pixel: overlapping done patches keep separate outlines
            inset = 2 / self.scale
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
        """Draw the stroke in progress, only its parts near ``rect`` (widget pixels).

        A mouse move dirties a small rectangle; stroking only the parts there keeps the cost
        per event constant however long the drag. One path per call, so the translucent ink
        is not doubled where segments overlap.
        """
        drag = self._drag
        pen = QPen(_STROKE_COLORS[drag.kind], 2 * drag.radius)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        painter.setPen(pen)
        box = (*self.widget_to_view(rect.topLeft()), *self.widget_to_view(rect.bottomRight()))
        path = QPainterPath()
        for run in drag.runs_near(box):
            path.moveTo(*run[0])
            if len(run) == 1:  # a dot: Qt draws no cap on a line of length zero
                path.lineTo(run[0][0] + 1e-3, run[0][1])
            for x, y in run[1:].tolist():
                path.lineTo(x, y)
        painter.drawPath(path)

    def _paint_cursor(self, painter: QPainter) -> None:
        r = self.radius * self.scale
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(QPen(QColor(0, 0, 0, 160), 3))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawEllipse(self._mouse, r, r)
        painter.setPen(QPen(_STROKE_COLORS[self.tool].lighter(130), 1))
        painter.drawEllipse(self._mouse, r, r)

    def _dirty_rect(self, a: QPointF, b: QPointF) -> QRect:
        pad = int(self.radius * self.scale) + 4
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
            self._drag = BrushDrag(self.tool, self.radius, self.widget_to_view(event.position()))
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
        if self._drag is not None:
            self._drag.move(self.widget_to_view(position))
        self.update(self._dirty_rect(previous, position))
        self.cursorMoved.emit(*self.widget_to_view(position))

    def mouseReleaseEvent(self, event) -> None:
        if self._pan_from is not None:
            self._pan_from = None
            self.restore_cursor()
            return
        if event.button() == Qt.MouseButton.LeftButton and self._drag is not None:
            drag, self._drag = self._drag, None
            self.strokeFinished.emit(drag.finish())
            self.update()

    def leaveEvent(self, event) -> None:
        self._mouse = None
        self.update()

    def wheelEvent(self, event) -> None:
        turn = event.angleDelta().y()
        if turn:
            self.zoom_at(wheel_factor(turn), event.position())

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
