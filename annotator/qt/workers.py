"""Long Qt-free work off the GUI thread, with a progress dialog and a cancel button."""

from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import QEventLoop, Qt, QThread, Signal
from PySide6.QtWidgets import QProgressDialog, QWidget

# The dialog appears only when work takes longer than this (milliseconds).
_SHOW_AFTER_MS = 400


class _Thread(QThread):
    progressed = Signal(int, int)

    def __init__(self, function: Callable):
        super().__init__()
        self._function = function
        self.cancel_event = threading.Event()
        self.result = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._function(progress=self.progressed.emit, cancel=self.cancel_event.is_set)
        except BaseException as error:  # handed to the GUI thread, which re-raises it
            self.error = error


def run_with_progress(function: Callable, *, label: str, parent: QWidget | None = None):
    """Run ``function(progress=..., cancel=...)`` in a worker thread and wait for it.

    The GUI keeps painting meanwhile; a modal progress dialog shows ``label``, the progress the
    function reports as ``progress(done, total)`` and a Cancel button that makes ``cancel()``
    return True (the function then raises ``refinement_model.errors.Cancelled``).

    Returns
    -------
    Whatever ``function`` returns; its exception, if any, is raised here on the GUI thread.
    """
    dialog = QProgressDialog(label, "Cancel", 0, 0, parent)
    dialog.setWindowTitle("etmira")
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    dialog.setMinimumDuration(_SHOW_AFTER_MS)
    dialog.setAutoReset(False)
    thread = _Thread(function)
    thread.progressed.connect(lambda done, total: _show_progress(dialog, done, total))
    dialog.canceled.connect(thread.cancel_event.set)
    loop = QEventLoop()
    thread.finished.connect(loop.quit)
    thread.start()
    if not thread.isFinished():
        loop.exec()
    thread.wait()
    dialog.close()
    dialog.deleteLater()
    if thread.error is not None:
        raise thread.error
    return thread.result


def _show_progress(dialog: QProgressDialog, done: int, total: int) -> None:
    if dialog.maximum() != total:
        dialog.setMaximum(max(int(total), 1))
    dialog.setValue(min(int(done), dialog.maximum()))
