"""Tools > "Adapt to this mirror": the toggle, an update and its propagation off the GUI
thread, the status note, and a cancel when the project closes."""

import dataclasses
import threading
import time

import pytest

from annotator.core.adaptation import state_key
from refinement_model.adaptation import AdaptationOptions, OnlineAdapter
from refinement_model.errors import ProjectError
from refinement_model.strokes import Stroke
from tests.annotator.test_qt_app import dialogs, files, window  # noqa: F401 (fixtures)

pytestmark = pytest.mark.gui


def _always_accepted(adapter):
    """The adapter's updates as if validation had improved (the tiny refiner's is noise)."""
    update = adapter.update

    def accepted(patches, *, cancel=None):
        result = dataclasses.replace(update(patches, cancel=cancel), accepted=True)
        adapter.state = result.state
        return result

    adapter.update = accepted


def _fast(refiner):
    adapter = OnlineAdapter(refiner, AdaptationOptions(steps=4, crop=32, batch_size=4, variants=0))
    _always_accepted(adapter)
    return adapter


def _prepared(runner, qtbot):
    """The runner's SessionAdaptation, once the worker has prepared it (the GUI went on)."""
    assert runner.adaptation is None and "Preparing" in runner.label.text()
    qtbot.waitUntil(lambda: runner.adaptation is not None, timeout=30000)
    return runner.adaptation


def test_toggle_update_status_note_and_cancel_on_close(window, qtbot):
    runner = window.adaptation
    tools = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Tools")
    # off by default: measured by the protocol, the adaptation does not help yet
    assert runner.action in tools.actions() and not runner.action.isChecked()
    assert runner.adaptation is None
    runner.action.setChecked(True)
    session = window.project.session
    adaptation = _prepared(runner, qtbot)
    adaptation.adapter = _fast(session.refiner)
    adaptation.every = 3
    for y in (20.0, 50.0, 80.0):
        session.apply_stroke(Stroke("add", [(10.0, y), (30.0, y)], 2.0))
    # the update trains on the worker while the GUI thread goes on handling events
    qtbot.waitUntil(lambda: runner.busy, timeout=5000)
    qtbot.waitUntil(lambda: session.adapted_update is not None, timeout=30000)
    assert session.journal[session.adapted_update]["type"] == "adapt"
    assert "Refiner adapted to this mirror" in runner.label.text()
    qtbot.waitUntil(lambda: any(e["type"] == "propagate" for e in session.journal), timeout=30000)
    # a stroke on a fresh patch starts more work; closing cancels and waits for it
    session.apply_stroke(Stroke("add", [(100.0, 20.0), (120.0, 20.0)], 2.0))
    window.close_project()
    assert runner.adaptation is None and not runner.busy


def test_the_status_note_says_when_updates_were_not_kept(window, qtbot):
    runner = window.adaptation
    runner.action.setChecked(True)
    session = window.project.session
    adaptation = _prepared(runner, qtbot)
    adapter = OnlineAdapter(
        session.refiner, AdaptationOptions(steps=4, crop=32, batch_size=4, variants=0)
    )
    update = adapter.update
    adapter.update = lambda patches, *, cancel=None: dataclasses.replace(
        update(patches, cancel=cancel), accepted=False
    )
    adaptation.adapter, adaptation.every = adapter, 3
    for y in (20.0, 50.0, 80.0):
        session.apply_stroke(Stroke("add", [(10.0, y), (30.0, y)], 2.0))
    qtbot.waitUntil(lambda: adaptation.rejected == 1, timeout=30000)
    assert session.adapted_update is None
    assert runner.label.text() == "Adaptation: 1 update not kept (no better on your corrections)"


def test_switching_the_toggle_off_refines_with_the_shipped_refiner(window, qtbot):
    runner = window.adaptation
    runner.action.setChecked(False)
    assert runner.adaptation is None and window.project.session.adapted_update is None
    session = window.project.session
    for y in (20.0, 50.0, 80.0):
        session.apply_stroke(Stroke("add", [(10.0, y), (30.0, y)], 2.0))
    qtbot.wait(50)
    assert not runner.busy
    runner.action.setChecked(True)  # remembered for the next test run's settings
    _prepared(runner, qtbot)


def test_a_reopened_project_adapts_with_its_stored_weights_built_off_the_gui_thread(window, qtbot):
    runner = window.adaptation
    runner.action.setChecked(True)
    session = window.project.session
    _prepared(runner, qtbot).adapter = _fast(session.refiner)
    runner.adaptation.every = 3
    for y in (20.0, 50.0, 80.0):
        session.apply_stroke(Stroke("add", [(10.0, y), (30.0, y)], 2.0))
    qtbot.waitUntil(lambda: session.adapted_update is not None, timeout=30000)
    update, path = session.adapted_update, window.project.path
    runner.wait()
    window.close_project()
    assert runner.adaptation is None and not runner.busy

    assert window.open_path(path) is True
    reopened = window.project.session
    # the refiner is deferred on reopening; the worker builds it and the adapted one
    assert not reopened.refiner.built
    adaptation = _prepared(runner, qtbot)
    assert reopened.adapted_update == update and adaptation.valid_update() == update
    assert "Refiner adapted to this mirror" in runner.label.text()
    # a stroke now refines with the stored adapted weights
    reopened.apply_stroke(Stroke("add", [(100.0, 20.0), (120.0, 20.0)], 2.0))
    assert reopened.journal[-1]["adapted"] == update


def _adapting(window, qtbot):
    """The runner and session, the toggle on, the adaptation fast and due every 3 strokes."""
    runner = window.adaptation
    runner.action.setChecked(True)
    session = window.project.session
    adaptation = _prepared(runner, qtbot)
    adaptation.adapter, adaptation.every = _fast(session.refiner), 3
    return runner, session


def _three_strokes(session):
    for y in (20.0, 50.0, 80.0):
        session.apply_stroke(Stroke("add", [(10.0, y), (30.0, y)], 2.0))


def test_switching_off_during_a_proposal_keeps_it_and_then_refines_with_the_shipped_refiner(
    window, qtbot
):
    runner, session = _adapting(window, qtbot)
    _three_strokes(session)
    qtbot.waitUntil(lambda: session.adapted_update is not None, timeout=30000)
    update = session.adapted_update
    runner.wait()
    session.propose_stroke(Stroke("add", [(100.0, 20.0), (120.0, 20.0)], 2.0))
    runner.action.setChecked(False)
    # the proposal, refined by the adapted refiner, is accepted as moving on accepts it
    assert session.pending is None and session.journal[-1]["adapted"] == update
    session.apply_stroke(Stroke("add", [(100.0, 60.0), (120.0, 60.0)], 2.0))
    assert session.adapted_update is None and session.journal[-1].get("adapted") is None


def test_switching_off_drops_the_result_of_the_running_job(window, qtbot):
    runner, session = _adapting(window, qtbot)
    started = threading.Event()
    propagation_job = session.propagation_job

    def slow(indices, refiner):
        compute = propagation_job(indices, refiner)

        def run(cancel=None):
            started.set()
            time.sleep(0.5)  # still computing when the toggle goes off
            return compute()  # and not cancelled between batches

        return run

    session.propagation_job = slow
    _three_strokes(session)
    qtbot.waitUntil(started.is_set, timeout=30000)
    before = len(session.journal)
    runner.action.setChecked(False)
    assert not runner.busy and runner.adaptation is None
    assert [e["type"] for e in session.journal[before:]] == []


def test_a_damaged_stored_state_is_shown(window, qtbot, dialogs):
    runner = window.adaptation
    runner.action.setChecked(False)
    window.project.store.commit(blobs={state_key(0): b"not a state"})
    runner.action.setChecked(True)
    qtbot.waitUntil(lambda: not runner.busy, timeout=30000)
    assert runner.adaptation is None
    assert len(dialogs) == 1 and "not an adapted refiner state" in dialogs[0]
    dialogs.clear()


def test_a_state_that_cannot_be_saved_is_shown_and_not_journalled(window, qtbot, dialogs):
    runner, session = _adapting(window, qtbot)
    store = window.project.store
    commit = store.commit

    def full_disk(*args, blobs=None, **kwargs):
        if blobs:
            raise ProjectError(store.path, "cannot write: disk full")
        return commit(*args, blobs=blobs, **kwargs)

    store.commit = full_disk
    _three_strokes(session)
    qtbot.waitUntil(lambda: bool(dialogs), timeout=30000)
    assert "disk full" in dialogs[0] and session.adapted_update is None
    assert not any(event["type"] == "adapt" for event in session.journal)
    dialogs.clear()
    store.commit = commit


def test_switching_off_before_the_adaptation_started_leaves_a_proposal_to_the_user(window, qtbot):
    runner, session = window.adaptation, window.project.session
    runner.action.setChecked(True)  # preparing on the worker
    session.propose_stroke(Stroke("add", [(100.0, 20.0), (120.0, 20.0)], 2.0))
    runner.action.setChecked(False)
    assert runner.adaptation is None and session.pending is not None  # Esc still rejects it
    session.reject()
