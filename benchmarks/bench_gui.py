"""GUI speed on a full-size view (8964 x 6716), offscreen.

Measures: painting per mouse-move event of the brush (target < 8 ms), a zoom or pan frame
(target < 16 ms; warm = tiles cached, cold = every tile rendered anew), and stroke release to the
refined patch on screen (target < 150 ms, with the session's refiner).
Run: .venv/bin/python benchmarks/bench_gui.py [--small]
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from annotator.qt.canvas import Canvas  # noqa: E402
from annotator.qt.pyramid import LayerStack  # noqa: E402

FULL = (6716, 8964)


def synthetic_layers(shape, rng):
    h, w = shape
    yy, xx = np.mgrid[0:h:64, 0:w:64]
    coarse = (np.sin(yy / 900.0) * np.cos(xx / 700.0)).astype(np.float32)
    depth = np.kron(coarse, np.ones((64, 64), np.float32))[:h, :w] * 0.2 + 0.5
    depth[:, ::97] -= 0.3  # engraved grooves
    albedo = np.clip(depth + rng.normal(0, 0.02, (h, 1)).astype(np.float32), 0, 1)
    normals = np.zeros((h, w, 3), np.float32)
    normals[..., 2] = 1.0
    normals[:, ::97, 0] = 0.6
    normals /= np.linalg.norm(normals, axis=2, keepdims=True)
    return depth, albedo, normals


def mouse(canvas, kind, point, buttons=Qt.MouseButton.LeftButton):
    button = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseMove else Qt.MouseButton.LeftButton
    event = QMouseEvent(kind, QPointF(point), QPointF(canvas.mapToGlobal(point)), button, buttons,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(canvas, event)


def bench_brush(canvas, n=200):
    canvas.one_to_one()
    canvas.repaint()
    start = QPoint(300, 500)
    mouse(canvas, QEvent.Type.MouseButtonPress, start)
    canvas.repaint()
    times = []
    for i in range(1, n + 1):
        t0 = time.perf_counter()
        mouse(canvas, QEvent.Type.MouseMove, start + QPoint(4 * i % 1000, int(80 * np.sin(i / 9))))
        canvas.repaint()  # synchronous: the event's cost includes painting what it changed
        times.append(time.perf_counter() - t0)
    mouse(canvas, QEvent.Type.MouseButtonRelease, start + QPoint(4 * n % 1000, 0), Qt.MouseButton.NoButton)
    return np.array(times) * 1000


def bench_zoom_pan(canvas):
    canvas.fit()
    canvas.repaint()
    centre = QPointF(canvas.width() / 2, canvas.height() / 2)
    cold, warm = [], []
    # Wheel steps in, then back out over the same scales: the way back hits the tile cache.
    for factor, bucket in ((1.25, cold), (1 / 1.25, warm)):
        for _ in range(12):
            t0 = time.perf_counter()
            canvas.zoom_at(factor, centre)
            canvas.repaint()
            bucket.append(time.perf_counter() - t0)
    pans = []
    canvas.one_to_one()
    canvas.repaint()
    for i in range(60):
        t0 = time.perf_counter()
        canvas.pan(-15.0, -5.0 if i % 2 else 5.0)
        canvas.repaint()
        pans.append(time.perf_counter() - t0)
    return np.array(cold) * 1000, np.array(warm) * 1000, np.array(pans) * 1000


def main(argv):
    shape = (1343, 1792) if "--small" in argv else FULL
    app = QApplication.instance() or QApplication([])
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    depth, albedo, normals = synthetic_layers(shape, rng)
    stack = LayerStack(depth=depth, albedo=albedo, normals=normals)
    probabilities = np.zeros(shape, np.float32)
    probabilities[:, ::97] = 0.9
    stack.set_annotation(probabilities, probabilities > 0.5, np.zeros(shape, np.int8))
    build_s = time.perf_counter() - t0
    canvas = Canvas()
    canvas.resize(1600, 1000)
    canvas.show()
    app.processEvents()
    canvas.set_stack(stack)
    brush = bench_brush(canvas)
    cold, warm, pans = bench_zoom_pan(canvas)
    figures = {
        "view_shape": list(shape),
        "layer_build_s": round(build_s, 2),
        "brush_move_ms_p50": round(float(np.median(brush)), 2),
        "brush_move_ms_p95": round(float(np.percentile(brush, 95)), 2),
        "zoom_frame_cold_ms_p50": round(float(np.median(cold)), 2),
        "zoom_frame_cold_ms_max": round(float(cold.max()), 2),
        "zoom_frame_warm_ms_p50": round(float(np.median(warm)), 2),
        "pan_frame_ms_p50": round(float(np.median(pans)), 2),
        "pan_frame_ms_p95": round(float(np.percentile(pans, 95)), 2),
    }
    checks = (("brush_move_ms_p95", 8), ("zoom_frame_warm_ms_p50", 16), ("pan_frame_ms_p95", 16),
              ("zoom_frame_cold_ms_p50", 16))
    for key, target in checks:
        verdict = "met" if figures[key] < target else "NOT met"
        print(f"{key}: {figures[key]} ms (target < {target} ms: {verdict})")
    print(f"layer pyramids built in {figures['layer_build_s']} s for {shape[1]} x {shape[0]} px")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
