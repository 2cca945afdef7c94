"""The display's other maps (albedo, normals), read off the GUI thread once a view is shown.

A view opens with the maps its networks read (the depth); :class:`DisplayMapsLoader` then reads
the rest and builds their pyramids on a worker (``document.load_display_layers``), while the
Albedo / Normals / Raking choices of the layer panel are greyed out. Closing the view cancels
the reading; a failure shows the error and leaves the depth view working.
"""

from __future__ import annotations

from PySide6.QtCore import QObject

from annotator.core import render
from annotator.qt import document
from annotator.qt.dialogs import show_error
from annotator.qt.workers import BackgroundJob


class DisplayMapsLoader(QObject):
    """Adds the missing base layers to a view's ``LayerStack`` as they are read.

    Parameters
    ----------
    window : MainWindow
        Whose ``layers`` panel, ``canvas`` and status bar show the progress (the parent).
    """

    def __init__(self, window):
        super().__init__(window)
        self._window = window
        self._stack = None
        self._job = BackgroundJob(self)
        self._job.finished.connect(self._add)
        self._job.failed.connect(self._failed)

    def start(self, stack, view) -> None:
        """Read what ``stack`` lacks of ``view``'s maps; its layers are greyed out meanwhile."""
        self._stack = stack
        missing = stack.missing_maps
        self._show("loading...")
        if not missing:
            return
        if view.files is None:  # a view known from its project file alone
            self._show("no maps")
            return
        files, mirror_mask = view.files, view.mirror_mask
        self._job.start(
            lambda progress, cancel: (
                stack,
                document.load_display_layers(
                    files, mirror_mask, missing, min_size=stack.min_size, cancel=cancel
                ),
            )
        )

    def cancel(self) -> None:
        """Stop the reading (the view closes); nothing is delivered for it."""
        self._job.cancel()
        self._stack = None

    def wait(self) -> None:
        """Block until the layers are added (scripts, screenshots, tests)."""
        self._job.wait()

    def _show(self, note: str) -> None:
        stack = self._stack
        available = [name for name in render.BASE_LAYERS if stack.has_layer(name)]
        self._window.layers.set_base_layers(available, note)

    def _add(self, result) -> None:
        stack, (pyramids, warnings) = result
        if stack is not self._stack:
            return  # for a view closed meanwhile
        canvas = self._window.canvas
        shown_before = stack.has_layer(canvas.settings.base)
        stack.add_layers(pyramids)
        self._show("loading...")
        if not shown_before:
            canvas.invalidate()  # the depth stood in for the chosen layer
        if warnings:
            self._window.statusBar().showMessage("; ".join(warnings), 10000)

    def _failed(self, error) -> None:
        # the depth view goes on; the job of a view closed meanwhile was cancelled: no call
        self._show("not loaded")
        show_error(self._window, error)
