"""The patch queue panel: worst patches first, with thumbnails, jump, skip, done and coverage."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from annotator.core import render
from annotator.core.patch_queue import DONE, STATE_NAMES
from annotator.qt.canvas import numpy_to_qimage
from annotator.qt.tools import icon

THUMBNAIL = 64
# Thumbnails keep one look whatever the canvas shows, so they are drawn once per mask change.
THUMBNAIL_SETTINGS = render.LayerSettings(base="depth", prediction_opacity=0.45, strokes=True)
DONE_MARK = "\u2713 "
DOUBT_TIP = (
    "Doubt: how undecided the prediction is about the lines it draws in this patch "
    "(the mean of 4 p (1 - p) per predicted line pixel). Higher: look here first."
)
# The list shows this many of the worst open patches; more would only slow the refresh.
_LISTED = 80


class QueuePanel(QWidget):
    """Reads a ``PatchQueue`` and a ``LayerStack``; asks for changes through signals.

    Signals
    -------
    jumpRequested(int)
        Show this patch (double click or Enter on a row).
    nextRequested(), skipRequested(), doneRequested()
        The buttons (the main window holds the current patch).
    """

    jumpRequested = Signal(int)
    nextRequested = Signal()
    skipRequested = Signal()
    doneRequested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.coverage = QProgressBar()
        self.coverage.setRange(0, 1)
        self.coverage.setFormat("reviewed %v of %m patches")
        self.coverage.setToolTip(
            "Patches you marked done (D) among those the queue offers; looking at a patch, "
            "drawing on it or skipping it does not count"
        )
        layout.addWidget(self.coverage)
        self.summary = QLabel()
        layout.addWidget(self.summary)
        buttons = QHBoxLayout()
        for text, icon_name, signal, tip in (
            ("Next", "next", self.nextRequested, "Go to the worst patch not seen yet (N)"),
            ("Skip", None, self.skipRequested, "Put this patch at the back of the queue"),
            ("Done", "accept", self.doneRequested, "Mark this patch as finished"),
        ):
            button = QPushButton(text)
            if icon_name:
                button.setIcon(icon(icon_name))
            button.setToolTip(tip)
            button.clicked.connect(signal.emit)
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.list = QListWidget()
        self.list.setIconSize(QSize(THUMBNAIL, THUMBNAIL))
        self.list.setUniformItemSizes(True)
        self.list.itemActivated.connect(
            lambda item: self.jumpRequested.emit(item.data(Qt.ItemDataRole.UserRole))
        )
        layout.addWidget(self.list, 1)
        self._thumbnails: dict[int, QIcon] = {}

    def refresh(self, queue, stack, *, current: int | None = None) -> None:
        """Rebuild the list from the queue's scores and states: the open patches worst first,
        then the done ones (marked so)."""
        states = queue.states
        open_patches = np.flatnonzero(queue.eligible & (states != DONE))
        done_patches = np.flatnonzero(queue.eligible & (states == DONE))
        order = open_patches[np.argsort(-queue.scores[open_patches], kind="stable")][:_LISTED]
        self.list.clear()
        for index in [*order.tolist(), *done_patches[:_LISTED].tolist()]:
            done = states[index] == DONE
            item = QListWidgetItem(
                self._thumbnail(index, queue, stack),
                f"{DONE_MARK if done else ''}#{index}  {STATE_NAMES[states[index]]}\n"
                f"doubt {queue.scores[index]:.2f}",
            )
            item.setData(Qt.ItemDataRole.UserRole, index)
            item.setToolTip(DOUBT_TIP)
            if done:
                item.setForeground(QColor(*render.PALETTE["done"]))
            self.list.addItem(item)
            if index == current:
                self.list.setCurrentItem(item)
        reviewed, queued = queue.reviewed()
        self.coverage.setMaximum(max(queued, 1))
        self.coverage.setValue(reviewed)
        self.summary.setText(f"{len(open_patches)} open, {reviewed} done")

    def forget_thumbnails(self, indices=None) -> None:
        """Drop cached thumbnails (all, or of the given patches) after the mask changed."""
        if indices is None:
            self._thumbnails.clear()
            return
        for index in np.asarray(indices).ravel().tolist():
            self._thumbnails.pop(int(index), None)

    def _thumbnail(self, index: int, queue, stack) -> QIcon:
        cached = self._thumbnails.get(index)
        if cached is None:
            y0, x0, y1, x1 = (int(v) for v in queue.grid.boxes[index])
            level = max(int(np.log2(max(y1 - y0, x1 - x0) / THUMBNAIL)), 0)
            level = min(level, stack.n_levels - 1)
            box = (
                y0 >> level,
                x0 >> level,
                max(y1 >> level, (y0 >> level) + 1),
                max(x1 >> level, (x0 >> level) + 1),
            )
            rgb = render.compose(stack.tile(level, box, THUMBNAIL_SETTINGS), THUMBNAIL_SETTINGS)
            pixmap = QPixmap.fromImage(numpy_to_qimage(rgb)).scaled(
                THUMBNAIL,
                THUMBNAIL,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
            cached = self._thumbnails[index] = QIcon(pixmap)
        return cached
