"""The first prediction's refinement, finished on a worker thread once a new view is shown.

A view opened the first time shows the base network's prediction as soon as it is computed;
:class:`StartRefinementRunner` then runs the project's ``StartCompletion`` (the refiner over
every patch holding the mirror, worst first: minutes on a full-size view) one small batch at a
time, and a status-bar note counts the patches. A batch waits while the refinement of a
stroke is computed, so that the user's own work keeps the cores; the patch the user goes to is
refined next. Closing the project cancels it (the batch in flight is finished and dropped);
reopening the project goes on where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QLabel

from annotator.core.start_completion import start_completion
from annotator.qt.dialogs import show_error
from annotator.qt.workers import BackgroundJob

# How long a batch waits before looking again whether the cores are free of a stroke's
# refinement (milliseconds).
_RETRY_MS = 100


class StartRefinementRunner(QObject):
    """Refines an open project's pending start in the background (see the module docstring).

    Parameters
    ----------
    window : MainWindow
        The parent; its status bar shows the messages.
    busy : callable() -> bool
        True while a stroke's refinement is being computed.

    Attributes
    ----------
    label : QLabel
        The status-bar note ("Refining the first prediction: 120 / 597 patches").
    completion : StartCompletion or None
        While a project's start is pending.
    """

    def __init__(self, window, busy: Callable[[], bool]):
        super().__init__(window)
        self._window = window
        self._busy = busy
        self.label = QLabel()
        self.label.setContentsMargins(6, 0, 6, 0)
        self.completion = None
        self._job = BackgroundJob(self)
        self._job.finished.connect(self._applied)
        self._job.failed.connect(self._failed)
        self._retry = QTimer(self, singleShot=True, interval=_RETRY_MS)
        self._retry.timeout.connect(self._next)

    def attach(self, project, loader) -> None:
        """Refine ``project``'s pending start, if any, building missing networks with
        ``loader``."""
        self.detach()
        self.completion = start_completion(project, loader=loader)
        self._show()
        self._next()

    def detach(self) -> None:
        """Cancel the batch in flight and forget the project."""
        self._retry.stop()
        self._job.cancel()
        self.completion = None
        self._show()

    def prefer(self, patches) -> None:
        """Refine ``patches`` next (those still pending)."""
        if self.completion is not None:
            self.completion.project.prefer_start(patches)

    def wait(self) -> None:
        """Block until the start is complete (scripts, tests)."""
        while self.completion is not None and not self.completion.finished:
            self._retry.stop()
            if not self._job.running:
                self._start_job()
            self._job.wait()

    def _next(self) -> None:
        if self.completion is None or self._job.running:
            return
        if self.completion.finished:
            self.completion = None
            self._show()
            status = self._window.statusBar()
            if not status.currentMessage():  # a hint or the patch's line matters more
                status.showMessage("The first prediction is refined everywhere", 5000)
            return
        if self._busy():
            self._retry.start()
            return
        self._start_job()

    def _start_job(self) -> None:
        job = self.completion.job()
        self._job.start(lambda progress, cancel: job())

    def _applied(self, result) -> None:
        if self.completion is None:
            return
        self.completion.apply(result)
        self._show()
        self._next()

    def _failed(self, error) -> None:
        self.completion = None
        self._show()
        show_error(self._window, error)

    def _show(self) -> None:
        completion = self.completion
        self.label.setText(
            ""
            if completion is None
            else f"Refining the first prediction: {completion.done} / {completion.total} patches"
        )
        self.label.setVisible(completion is not None)
