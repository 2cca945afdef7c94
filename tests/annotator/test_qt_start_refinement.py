"""A new view is usable on the base network's prediction; the first prediction is refined in
the background, patch by patch, while the user works; closing stops it and reopening goes on."""

import numpy as np
import pytest

from annotator.core.project import open_project
from annotator.qt.main_window import MainWindow
from tests.annotator.test_qt_app import (  # noqa: F401 - fixtures
    EAGER,
    dialogs,
    drag,
    files,
    opened_window,
)

pytestmark = pytest.mark.gui


@pytest.fixture
def window(qtbot, files, tmp_path):  # noqa: F811 - the fixture imported above
    win = opened_window(qtbot, files, tmp_path)
    yield win
    win.close_project()


def test_the_view_opens_on_the_base_prediction_and_its_start_is_refined_meanwhile(window, qtbot):
    project = window.project
    runner = window.start_refinement
    total = runner.completion.total
    assert len(project.start_pending) == total > 0
    assert runner.label.isVisible()
    assert runner.label.text() == f"Refining the first prediction: 0 / {total} patches"
    start = project.session.base_logits.copy()
    window.statusBar().clearMessage()  # the first-run hint would stay
    qtbot.waitUntil(lambda: runner.completion is None, timeout=60_000)  # the event loop runs it
    assert project.start_pending == () and not runner.label.isVisible()
    assert "refined everywhere" in window.statusBar().currentMessage()
    assert np.abs(project.session.base_logits - start).max() > 0.5


def test_strokes_during_the_refinement_keep_their_patches_and_survive_reopening(
    window, qtbot, tmp_path
):
    project = window.project
    session = project.session
    drag(qtbot, window.canvas, [(20, 70), (100, 70)])
    window.finish_refinement()
    window.accept_action.trigger()
    stroke_patches = {p for p in session.patch_deltas()}
    frozen = np.zeros(session.base_logits.shape, bool)
    for index in stroke_patches:
        y0, x0, y1, x1 = session.grid.region(index)
        frozen[y0:y1, x0:x1] = True
    start = session.base_logits.copy()
    window.start_refinement.wait()
    np.testing.assert_array_equal(session.base_logits[frozen], start[frozen])
    mask, path = session.mask.copy(), project.path
    window.close_project()
    with open_project(path, readonly=True, loader=EAGER) as reopened:
        assert reopened.start_pending == () and not reopened.warnings
        np.testing.assert_array_equal(reopened.session.mask, mask)


def test_closing_stops_the_refinement_and_reopening_goes_on(window, files, qtbot, tmp_path):  # noqa: F811
    runner = window.start_refinement
    pending = len(window.project.start_pending)
    path = window.project.path
    qtbot.waitUntil(lambda: runner.completion is None or runner.completion.done >= 2)
    window.close_project()  # the batch in flight is dropped
    assert runner.completion is None and not runner.label.isVisible()
    root, view, base, refiner = files
    again = MainWindow(project_dir=tmp_path / "projects", base=base, refiner=refiner, loader=EAGER)
    qtbot.addWidget(again)
    assert again.open_path(path) is True
    left = len(again.project.start_pending)
    assert left <= pending - 2  # the patches refined before closing stay refined
    again.start_refinement.wait()
    assert again.project.start_pending == ()
    again.close_project()


def test_a_batch_waits_while_a_strokes_refinement_is_computed(window, qtbot, monkeypatch):
    runner = window.start_refinement
    runner.detach()
    busy = [True]
    monkeypatch.setattr(runner, "_busy", lambda: busy[0])
    runner.attach(window.project, EAGER)
    qtbot.wait(300)
    assert runner.completion.done == 0 and runner._retry.isActive()
    busy[0] = False
    qtbot.waitUntil(lambda: runner.completion is None or runner.completion.done > 0)


def test_the_patch_the_user_goes_to_is_refined_next(window):
    pending = window.project.start_pending
    last = pending[-1]
    window.jump_to(last)
    assert window.project.start_pending[0] == last
