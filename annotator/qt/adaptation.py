"""Tools > "Adapt to this mirror": runs the session's online adaptation off the GUI thread.

:class:`AdaptationRunner` owns the checkable action, a status-bar note and one worker thread.
After every session change it asks ``annotator.core.adaptation.SessionAdaptation`` for the
next job (an update of the refiner, due every few strokes, or a chunk of propagation), runs
it on the worker and applies its result on the GUI thread, where outdated results are
dropped. Closing the project (or switching the toggle off) cancels the running job, waits
for it and drops its result. The toggle is remembered in the settings; it is off by default:
measured by the protocol (docs/evaluation/adaptive), the adaptation does not help yet.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QSettings, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel

from annotator.core.project import ADAPTED_STATE_PREFIX
from annotator.qt.dialogs import show_error
from annotator.qt.workers import LatestCall
from refinement_model.errors import Cancelled, InputError

if TYPE_CHECKING:
    from annotator.core.adaptation import SessionAdaptation

SETTINGS_KEY = "adaptToMirror"


@dataclass(frozen=True)
class _Prepared:
    """A preparation's result: the project it was made for, its adapter (None: the refiner
    cannot adapt) and the stored states."""

    project: object
    adapter: object
    states: dict


class AdaptationRunner(QObject):
    """The app's side of online adaptation (see the module docstring).

    Attributes
    ----------
    action : QAction
        The checkable "Adapt to this mirror" (for the Tools menu).
    label : QLabel
        The status-bar note ("Refiner adapted to this mirror (n corrected patches)").
    adaptation : SessionAdaptation or None
        While a project with an adaptable (U-Net) refiner is open and the toggle is on.
    busy : bool
        A job runs on the worker.

    Parameters
    ----------
    window : QWidget
        Parent of the action, the note and the error dialogs.
    settle : callable()
        Accepts a pending refinement proposal (switching the toggle off does, as moving on
        does, so that the next strokes refine with the shipped refiner).
    """

    def __init__(self, window, settle):
        super().__init__(window)
        self._window, self._settle = window, settle
        self.action = QAction("Adapt to this &mirror", window, checkable=True)
        self.action.setToolTip(
            "Fine-tune the refiner on your corrections while you work and "
            "re-predict the patches you have not reviewed"
        )
        self.action.setChecked(QSettings().value(SETTINGS_KEY, False, type=bool))
        self.action.toggled.connect(self._toggled)
        self.label = QLabel()
        self.label.setContentsMargins(6, 0, 6, 0)
        self.project = None
        self.adaptation: SessionAdaptation | None = None
        self.busy = False
        self._cancel = threading.Event()
        self._calls = LatestCall(self)
        self._calls.finished.connect(self._done)
        self._calls.failed.connect(self._failed)

    def attach(self, project) -> None:
        """Work on ``project`` (adapting if the toggle is on)."""
        self.detach()
        self.project = project
        if self.action.isChecked():
            self._start()

    def detach(self) -> None:
        """Cancel and wait for the running job; forget the project."""
        self.project = None  # first: a preparation delivered while waiting finds it gone
        self._stop()

    def wait(self) -> None:
        """Block until no job runs (tests)."""
        self._calls.wait()

    # ----------------------------------------------------------------- internals
    def _start(self) -> None:
        project = self.project
        # the blobs here, on the thread that owns the project; torch and the networks (seconds)
        # on the worker, so that switching the toggle on or opening a project never waits
        blobs = project.store.blobs(ADAPTED_STATE_PREFIX)
        session, source = project.session, project.store.path
        refiner, journal, strokes = session.refiner, session.journal, session.stroke_events

        def prepare():
            from annotator.core.adaptation import prepare_adapter

            try:
                prepared = prepare_adapter(
                    refiner, blobs, source=source, journal=journal, stroke_events=strokes
                )
                return _Prepared(project, *prepared)
            except InputError:  # a damaged state, or one of another refiner: shown
                raise
            except ValueError:  # no refiner, or not a U-Net: nothing to adapt
                return _Prepared(project, None, {})

        self.busy = True
        self.label.setText("Preparing the adaptation to this mirror...")
        self._calls.submit(prepare)

    def _started(self, prepared: _Prepared) -> None:
        from annotator.core.adaptation import SessionAdaptation, state_writer

        self.label.setText("")
        project = self.project
        if prepared.adapter is None or project is not prepared.project:
            return
        if not self.action.isChecked() or self.adaptation is not None:
            return
        session = project.session
        try:
            self.adaptation = SessionAdaptation(
                session,
                prepared.adapter,
                states=prepared.states,
                store_state=state_writer(project),
            )
        except Exception as error:  # noqa: BLE001 (a slot: shown, and the app goes on)
            show_error(self._window, error)
            return
        session.add_listener(self._on_change)
        self._note()
        self._schedule()

    def _stop(self) -> bool:
        """Cancel and wait; returns whether an adaptation was running."""
        if self.adaptation is None:
            self._calls.wait()  # a preparation: _started then finds the project gone
            self.busy = False
            self.label.setText("")
            return False
        # first: the job's result, delivered while waiting, finds no adaptation to apply to
        adaptation, self.adaptation = self.adaptation, None
        adaptation.session.remove_listener(self._on_change)
        adaptation.close()
        self._cancel.set()
        self._calls.wait()
        self._cancel = threading.Event()
        self.busy = False
        self.label.setText("")
        return True

    def _toggled(self, on: bool) -> None:
        QSettings().setValue(SETTINGS_KEY, on)
        if self.project is None:
            return
        if on:
            self._start()
            return
        if self._stop():
            self._settle()  # a proposal shown was refined by the adapted refiner: kept as it is
            self.project.session.use_adapted_refiner(None)  # strokes refine with the shipped one

    def _on_change(self, change) -> None:
        # not from inside the session's listener call: applying a result commits events too
        self._schedule()

    def _schedule(self) -> None:
        QTimer.singleShot(0, self._run_next)

    def _run_next(self) -> None:
        adaptation = self.adaptation
        if adaptation is None:
            return
        adaptation.resume()  # nothing is held while a job runs
        # also while one runs: after an undo, new strokes must not refine with an update no
        # longer in effect
        adaptation.sync()
        if self.busy:
            return
        job = adaptation.next_job()
        self._note()
        if job is None:
            return
        self.busy = True
        cancel = self._cancel.is_set
        self._calls.submit(lambda: job.run(cancel))

    def _done(self, outcome) -> None:
        self.busy = False
        if isinstance(outcome, _Prepared):
            self._started(outcome)
            return
        if self.adaptation is None or outcome[0].adaptation is not self.adaptation:
            return
        try:
            self.adaptation.apply(outcome)  # writes an accepted state into the project file
        except Exception as error:  # noqa: BLE001 (a slot: shown, and the app goes on)
            show_error(self._window, error)
        self._note()
        self._schedule()

    def _failed(self, error) -> None:
        self.busy = False
        self._note()
        if not isinstance(error, Cancelled):
            show_error(self._window, error)

    def _note(self) -> None:
        adaptation = self.adaptation
        if adaptation is None:
            text = ""
        elif adaptation.session.adapted_update is not None:
            text = f"Refiner adapted to this mirror ({adaptation.examples} corrected patches)"
        elif adaptation.rejected:
            # say that it runs, and why nothing changed
            updates = "update" if adaptation.rejected == 1 else "updates"
            text = (
                f"Adaptation: {adaptation.rejected} {updates} not kept "
                "(no better on your corrections)"
            )
        else:
            text = ""
        self.label.setText(text)
