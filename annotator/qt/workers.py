"""Long Qt-free work off the GUI thread, with a progress dialog and a cancel button."""

from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import QEventLoop, QObject, Qt, QThread, QTimer, Signal
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
        self.returned = False  # set before ``finished`` is emitted

    def run(self) -> None:
        try:
            self.result = self._function(
                progress=self.progressed.emit, cancel=self.cancel_event.is_set
            )
        except BaseException as error:  # handed to the GUI thread, which re-raises it
            self.error = error
        self.returned = True


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
    dialog.setAutoClose(False)
    dialog.setAutoReset(False)
    thread = _Thread(function)
    thread.progressed.connect(lambda done, total: _show_progress(dialog, done, total))
    dialog.canceled.connect(thread.cancel_event.set)
    loop = QEventLoop()
    thread.finished.connect(loop.quit)
    # Shown after a moment even when the work reports no progress (loading files, say).
    show = QTimer(dialog, singleShot=True, interval=_SHOW_AFTER_MS)
    show.timeout.connect(dialog.show)
    show.start()
    thread.start()
    if not thread.isFinished():
        loop.exec()
    thread.wait()
    # Both timers must stop: the dialog's own (minimum duration) and ours would otherwise show
    # it again over the error box that follows, whose event loop does not delete it.
    show.stop()
    dialog.reset()
    dialog.hide()
    dialog.setParent(None)
    dialog.deleteLater()
    if thread.error is not None:
        raise thread.error
    return thread.result


def _show_progress(dialog: QProgressDialog, done: int, total: int) -> None:
    if dialog.maximum() != total:
        dialog.setMaximum(max(int(total), 1))
    dialog.setValue(min(int(done), dialog.maximum()))


class BackgroundJob(QObject):
    """One Qt-free job off the GUI thread while the user works on, which the GUI may cancel.

    ``function(progress=..., cancel=...)`` as for :func:`run_with_progress`, without a dialog:
    ``finished(result)`` or ``failed(error)`` is emitted on the GUI thread; a cancelled job
    emits neither (its result, if it got that far, is dropped).
    """

    finished = Signal(object)
    failed = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._thread: _Thread | None = None

    @property
    def running(self) -> bool:
        """Whether a job runs or has a result not yet delivered."""
        return self._thread is not None

    def start(self, function: Callable) -> None:
        """Run ``function``, cancelling the job that runs, if any."""
        self.cancel()
        self._thread = _Thread(function)
        self._thread.finished.connect(self._done)
        self._thread.start()

    def cancel(self) -> None:
        """Ask the running job to stop and wait until it has (it checks ``cancel()`` between
        its steps); nothing is emitted for it."""
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.cancel_event.set()
            thread.wait()

    def wait(self) -> None:
        """Block until the running job is over and deliver its result (scripts and tests)."""
        while self._thread is not None:
            self._thread.wait()
            self._done()

    def _done(self) -> None:
        thread = self._thread
        # a job cancelled, or delivered by wait(), still has its queued ``finished`` to come,
        # maybe while the next job runs: that one is not done yet
        if thread is None or not thread.returned:
            return
        thread.wait()  # it has returned: only the thread's exit is left
        self._thread = None
        if thread.error is not None:
            self.failed.emit(thread.error)
        else:
            self.finished.emit(thread.result)


class LatestCall(BackgroundJob):
    """Run one Qt-free function at a time off the GUI thread, keeping only the newest request.

    For figures that lag the user's work (scores over 60 Mpx): while a call runs, a new
    request replaces any waiting one, so the GUI never queues outdated work. ``finished(result)``
    is emitted on the GUI thread; errors go to ``failed(error)``.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self._waiting: Callable | None = None

    def submit(self, function: Callable) -> None:
        """Call ``function()`` when the running call (if any) is over."""
        if self.running:
            self._waiting = function
            return
        self.start(lambda progress, cancel: function())

    def _done(self) -> None:
        super()._done()
        if not self.running and self._waiting is not None:
            function, self._waiting = self._waiting, None
            self.submit(function)
