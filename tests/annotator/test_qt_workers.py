"""Work off the GUI thread: result, errors and cancel come back to the caller."""

import threading
import time

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QProgressDialog, QPushButton

from annotator.qt.workers import run_with_progress
from refinement_model.errors import Cancelled, InputError

pytestmark = pytest.mark.gui


def test_result_and_progress_from_another_thread(qapp):
    threads = []

    def work(progress, cancel):
        threads.append(threading.get_ident())
        for i in range(3):
            progress(i + 1, 3)
        return "done"

    assert run_with_progress(work, label="x") == "done"
    assert threads and threads[0] != threading.get_ident()


def test_error_is_raised_on_the_gui_thread(qapp):
    def work(progress, cancel):
        raise InputError("a.tif", "truncated")

    with pytest.raises(InputError, match="a.tif"):
        run_with_progress(work, label="x")


def test_cancel_button_stops_the_work(qapp):
    def work(progress, cancel):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            progress(1, 100)
            if cancel():
                raise Cancelled("stopped")
            time.sleep(0.01)
        return "not cancelled"

    def press_cancel():
        dialogs = [w for w in QApplication.topLevelWidgets() if isinstance(w, QProgressDialog)]
        if dialogs and dialogs[0].isVisible():
            dialogs[0].findChild(QPushButton).click()  # as the user does
        else:
            QTimer.singleShot(50, press_cancel)

    QTimer.singleShot(50, press_cancel)
    started = time.monotonic()
    with pytest.raises(Cancelled):
        run_with_progress(work, label="long work")
    assert time.monotonic() - started < 5


def test_latest_call_keeps_only_the_newest_request(qapp, qtbot):
    from annotator.qt.workers import LatestCall

    calls = LatestCall()
    results = []
    calls.finished.connect(results.append)
    release = threading.Event()
    calls.submit(lambda: release.wait(5) and "first")
    calls.submit(lambda: "outdated")
    calls.submit(lambda: "newest")
    release.set()
    qtbot.waitUntil(lambda: len(results) == 2, timeout=3000)
    assert results == ["first", "newest"]
    errors = []
    calls.failed.connect(errors.append)
    calls.submit(lambda: 1 / 0)
    calls.wait()
    assert isinstance(errors[0], ZeroDivisionError)


def test_latest_call_waited_for_then_submitted_again_delivers_each_result_once(qapp, qtbot):
    from annotator.qt.workers import LatestCall

    calls = LatestCall()
    results = []
    calls.finished.connect(results.append)
    calls.submit(lambda: "waited for")
    calls.wait()  # delivered here; the thread's queued ``finished`` arrives later
    release = threading.Event()
    calls.submit(lambda: release.wait(5) and "next")
    qapp.processEvents()  # the stale ``finished`` must not hand over the running call
    assert results == ["waited for"]
    release.set()
    qtbot.waitUntil(lambda: len(results) == 2, timeout=3000)
    qapp.processEvents()
    assert results == ["waited for", "next"]


def test_a_cancelled_background_job_stops_and_delivers_nothing(qapp, qtbot):
    from annotator.qt.workers import BackgroundJob

    job = BackgroundJob()
    results, errors = [], []
    job.finished.connect(results.append)
    job.failed.connect(errors.append)
    started = threading.Event()

    def work(progress, cancel):
        started.set()
        while not cancel():
            time.sleep(0.01)
        raise Cancelled("stopped")

    job.start(work)
    assert started.wait(5) and job.running
    job.cancel()
    assert not job.running
    job.start(lambda progress, cancel: "next")  # a new job after the cancelled one
    qtbot.waitUntil(lambda: results == ["next"], timeout=3000)
    qapp.processEvents()  # the cancelled job's queued ``finished`` delivers nothing
    assert results == ["next"] and errors == []
    job.start(lambda progress, cancel: 1 / 0)
    job.wait()
    assert isinstance(errors[0], ZeroDivisionError) and results == ["next"]


def test_no_progress_dialog_is_left_over_the_error_box(qapp):
    # The error box runs its own event loop at once; the progress dialog must not come back
    # over it (it would take the clicks meant for OK).
    from PySide6.QtCore import QEventLoop

    def work(progress, cancel):
        progress(0, 10)
        time.sleep(0.05)
        raise InputError("a.tif", "truncated")

    visible = []

    def open_then_show_the_error():
        try:
            run_with_progress(work, label="Opening...")
        except InputError:
            box_loop = QEventLoop()
            QTimer.singleShot(1200, box_loop.quit)
            box_loop.exec()
            visible.extend(
                w
                for w in QApplication.topLevelWidgets()
                if isinstance(w, QProgressDialog) and w.isVisible()
            )
        outer.quit()

    outer = QEventLoop()
    QTimer.singleShot(0, open_then_show_the_error)
    outer.exec()
    assert visible == []
