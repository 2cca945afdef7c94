"""The canvas: zoom keeps the cursor's pixel, drags become one stroke, tiles follow changes."""

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt

from annotator.core.pyramid import LayerStack
from annotator.qt.canvas import Canvas
from refinement_model.strokes import Stroke

pytestmark = pytest.mark.gui


def _stack(h=300, w=400):
    rng = np.random.default_rng(0)
    normals = np.zeros((h, w, 3), np.float32)
    normals[..., 2] = 1
    return LayerStack(
        depth=rng.random((h, w)), albedo=rng.random((h, w)), normals=normals, min_size=64
    )


@pytest.fixture
def canvas(qtbot):
    widget = Canvas()
    qtbot.addWidget(widget)
    widget.resize(400, 300)
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_stack(_stack())
    return widget


def test_fit_shows_whole_view(canvas):
    canvas.fit()
    assert canvas.scale == pytest.approx(0.98, rel=1e-6)
    x, y = canvas.widget_to_view(QPointF(200, 150))
    assert (x, y) == pytest.approx((200, 150))


def test_wheel_zoom_keeps_pixel_under_cursor(canvas):
    point = QPointF(123, 77)
    before = canvas.widget_to_view(point)
    canvas.zoom_at(2.0, point)
    assert canvas.scale == pytest.approx(1.96)
    assert canvas.widget_to_view(point) == pytest.approx(before)
    canvas.one_to_one()
    assert canvas.scale == 1.0
    assert canvas.level() == 0
    canvas.zoom_at(0.2, point)
    assert canvas.level() == 2
    for scale, level in ((0.7, 0), (0.557, 1), (0.3, 2)):
        canvas.zoom_at(scale / canvas.scale, point)
        # level pixels are drawn at 2/3 to 4/3 of a screen pixel
        assert canvas.level() == level and 2 / 3 < scale * 2**level <= 4 / 3


def test_drag_emits_one_stroke_in_view_pixels(canvas, qtbot):
    canvas.one_to_one()
    canvas.tool, canvas.radius = "erase", 4.0
    strokes = []
    canvas.strokeFinished.connect(strokes.append)
    start = canvas.view_to_widget(100, 100).toPoint()
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=start)
    for dx in (5, 10, 20):
        qtbot.mouseMove(canvas, start + QPoint(dx, 0))
    assert strokes == []  # nothing goes to the session while dragging
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=start + QPoint(20, 0))
    assert len(strokes) == 1
    (stroke,) = strokes
    assert isinstance(stroke, Stroke)
    assert stroke.kind == "erase" and stroke.radius == 4.0
    assert stroke.points[0] == pytest.approx((100, 100))
    assert stroke.points[-1] == pytest.approx((120, 100))


def test_middle_drag_pans_without_stroke(canvas, qtbot):
    canvas.one_to_one()
    strokes = []
    canvas.strokeFinished.connect(strokes.append)
    before = canvas.widget_to_view(QPointF(0, 0))
    qtbot.mousePress(canvas, Qt.MouseButton.MiddleButton, pos=QPoint(50, 50))
    qtbot.mouseMove(canvas, QPoint(80, 60))
    qtbot.mouseRelease(canvas, Qt.MouseButton.MiddleButton, pos=QPoint(80, 60))
    after = canvas.widget_to_view(QPointF(0, 0))
    assert (before[0] - after[0], before[1] - after[1]) == pytest.approx((30, 10))
    assert strokes == []


def test_invalidate_redraws_changed_tiles(canvas, qtbot):
    canvas.one_to_one()
    canvas.fit()
    stack = canvas.stack
    before = canvas.grab().toImage()
    mask = np.zeros(stack.shape, bool)
    mask[100:140, :] = True
    stack.set_annotation(mask, np.zeros(stack.shape, np.int8), box=(90, 0, 150, 400))
    canvas.invalidate((90, 0, 150, 400))
    after = canvas.grab().toImage()
    centre = canvas.view_to_widget(200, 120).toPoint()
    corner = canvas.view_to_widget(200, 10).toPoint()
    assert before.pixelColor(centre) != after.pixelColor(centre)
    assert before.pixelColor(corner) == after.pixelColor(corner)


def test_tiles_beyond_frame_budget_follow_in_later_frames(canvas, qtbot, monkeypatch):
    from annotator.qt import canvas as canvas_module

    canvas.one_to_one()
    final = canvas.grab().toImage()
    canvas.invalidate()
    monkeypatch.setattr(canvas_module, "_FRAME_BUDGET_S", 0.0)
    first = canvas.grab().toImage()
    assert canvas.pending_tiles  # the coarse overview stands in this frame
    centre = canvas.view_to_widget(200, 150).toPoint()
    assert first.pixelColor(centre) != canvas_module._BACKGROUND
    monkeypatch.setattr(canvas_module, "_FRAME_BUDGET_S", 1.0)
    qtbot.waitUntil(lambda: not canvas.pending_tiles, timeout=2000)
    assert canvas.grab().toImage() == final


def test_zoom_draws_fast_then_smooth_once_settled(canvas, qtbot):
    from annotator.qt import canvas as canvas_module

    canvas.one_to_one()
    canvas.paint_final()
    canvas.zoom_at(0.6, QPointF(200, 150))  # below 1:1: tiles are scaled
    assert canvas.moving
    moving = canvas.grab().toImage()
    qtbot.waitUntil(lambda: not canvas.moving, timeout=10 * canvas_module._SETTLE_MS)
    settled = canvas.grab().toImage()
    assert settled != moving  # bilinear once settled, nearest while moving
    canvas.zoom_at(1.0, QPointF(200, 150))  # a new change: fast again until it settles
    assert canvas.moving
    canvas.paint_final()
    assert not canvas.moving and canvas.grab().toImage() == settled
