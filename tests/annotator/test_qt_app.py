"""The main window end to end on a tiny view with tiny models: open, stroke, refine, undo,
save, reopen, export, and a bad file that shows a dialog while the app goes on."""

import numpy as np
import pytest
from PySide6.QtCore import QSettings, QStandardPaths, Qt
from PySide6.QtWidgets import QMessageBox

from annotator.qt.main_window import MainWindow
from refinement_model.imageio import read_binary_mask
from refinement_model.network_loader import NetworkLoader
from tests.annotator.test_cli_project import make_models, make_view

pytestmark = pytest.mark.gui

# Exporting the tiny models takes seconds; eager PyTorch computes the same logits.
EAGER = NetworkLoader(backend="eager")


@pytest.fixture(autouse=True)
def dialogs(tmp_path, qapp, monkeypatch):
    """Settings in a temporary folder; error dialogs recorded instead of shown (modal)."""
    QStandardPaths.setTestModeEnabled(True)
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(
        QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings")
    )
    shown = []
    monkeypatch.setattr(QMessageBox, "critical", lambda parent, title, text: shown.append(text))
    yield shown
    assert shown == [], "unexpected error dialogs"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("gui")
    view, truth = make_view(root / "view")
    base, refiner = make_models(root / "models")
    return root, view, base, refiner


def opened_window(qtbot, files, tmp_path) -> MainWindow:
    """A window showing the test view, its first prediction still being refined."""
    root, view, base, refiner = files
    win = MainWindow(project_dir=tmp_path / "projects", base=base, refiner=refiner, loader=EAGER)
    qtbot.addWidget(win)
    win.resize(900, 600)
    win.show()
    qtbot.waitExposed(win)
    assert win.open_path(view) is True
    return win


@pytest.fixture
def window(qtbot, files, tmp_path):
    win = opened_window(qtbot, files, tmp_path)
    win.start_refinement.wait()  # the first prediction refined: see test_qt_start_refinement
    yield win
    win.close_project()


def drag(qtbot, canvas, points):
    widget_points = [canvas.view_to_widget(x, y).toPoint() for x, y in points]
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=widget_points[0])
    for point in widget_points[1:]:
        qtbot.mouseMove(canvas, point)
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=widget_points[-1])


def test_stroke_refines_undo_save_reopen_export(window, qtbot, tmp_path, files):
    session = window.project.session
    before = session.mask.copy()
    canvas = window.canvas
    pixel = canvas.view_to_widget(64, 70).toPoint()
    shown_before = canvas.grab().toImage().pixelColor(pixel)

    drag(qtbot, canvas, [(20, 70), (40, 70), (64, 70), (100, 70)])
    preview = session.pending
    assert preview is not None and preview.deltas  # the refiner's one pass ran on release
    assert not preview.final and canvas.has_proposal
    assert preview.stroke.kind == "add" and len(preview.stroke.points) == 4
    assert window.accept_action.isEnabled()
    assert "Enter accepts" in window.statusBar().currentMessage()
    # the refiner's own result (four orientations) replaces the preview when ready
    qtbot.waitUntil(lambda: session.pending is not preview)
    proposal = session.pending
    assert proposal.final and proposal.region == preview.region
    assert any(not np.array_equal(proposal.deltas[p], preview.deltas[p]) for p in preview.deltas)
    window.accept_action.trigger()
    assert session.pending is None
    kept = session.patch_deltas()
    assert all(np.array_equal(kept[p][1], delta) for p, delta in proposal.deltas.items())
    assert window.statusBar().currentMessage() == "" and not canvas.has_proposal
    assert session.user_map[70, 30:90].tolist() == [1] * 60
    assert session.mask[70, 30:90].all()
    assert session.patch_deltas()  # refined patches are part of the mask now
    assert canvas.grab().toImage().pixelColor(pixel) != shown_before
    assert "1 strokes" in window.effort_label.text()
    window.refresh_status()
    scores = session.scores()
    assert window.score_label.text() == f"pFM {scores['pfm']:.3f}  IoU {scores['iou']:.3f}"

    window.undo_action.trigger()
    np.testing.assert_array_equal(session.mask, before)
    assert not session.user_map.any()
    window.redo_action.trigger()
    after = session.mask.copy()
    assert after[70, 30:90].all()

    saved = tmp_path / "saved.etmira"
    window.save_as(saved)
    for kind, name in (("png", "m.png"), ("svg", "m.svg"), ("journal", "s.json")):
        window.export_as(kind, tmp_path / name)
        assert (tmp_path / name).stat().st_size > 0
    np.testing.assert_array_equal(read_binary_mask(tmp_path / "m.png"), after)
    window.close_project()

    root, view, base, refiner = files
    again = MainWindow(project_dir=tmp_path / "projects", base=base, refiner=refiner, loader=EAGER)
    qtbot.addWidget(again)
    assert again.open_path(saved) is True
    np.testing.assert_array_equal(again.project.session.mask, after)
    assert again.project.session.can_undo  # the history survived
    again.close_project()


def test_accepting_at_once_keeps_the_refiners_result_not_the_preview(window, qtbot):
    session = window.project.session
    drag(qtbot, window.canvas, [(20, 40), (60, 44)])
    preview = session.pending
    assert not preview.final
    window.accept_action.trigger()  # before the worker's result was shown
    kept = {p: delta for p, (_, delta) in session.patch_deltas().items()}
    assert session.pending is None and set(kept) == set(preview.deltas)
    # the same as a stroke whose final proposal was waited for
    window.undo_action.trigger()
    drag(qtbot, window.canvas, [(20, 40), (60, 44)])
    window.finish_refinement()
    final = session.pending
    assert final.final
    assert all(np.array_equal(kept[p], final.deltas[p]) for p in kept)
    assert any(not np.array_equal(kept[p], preview.deltas[p]) for p in kept)
    window.reject_action.trigger()


def test_patch_queue_next_and_done(window):
    from annotator.core.session import StoredView

    session = window.project.session
    assert isinstance(session.view, StoredView)  # the float maps were let go once displayed
    window.next_action.trigger()
    first = window.current_patch
    assert first is not None and session.queue.visited[first]
    window.mark_done()
    assert session.queue.done[first] and window.current_patch != first
    assert window.queue.coverage.value() > 0


def test_bad_file_shows_dialog_and_app_goes_on(window, qtbot, tmp_path, dialogs):
    shown = dialogs
    bad = tmp_path / "broken.etmira"
    bad.write_bytes(b"SQLite format 3\x00" + bytes(200))
    project = window.project
    assert window.open_path(bad) is None
    assert len(shown) == 1 and "broken.etmira" in shown[0] and "Traceback" not in shown[0]
    assert window.project is project  # the work stays open and usable
    window.canvas.tool = "erase"
    drag(qtbot, window.canvas, [(30, 32), (50, 32)])
    window.reject_action.trigger()
    assert window.project.session.user_map[32, 35] == -1
    assert window.open_path(tmp_path / "missing") is None
    assert "missing" in shown[1]
    shown.clear()


def test_project_left_by_a_crash_is_offered(window, monkeypatch):
    from annotator.qt import app
    from annotator.qt.document import crashed_projects

    path = window.project.path
    window.close_project()
    assert crashed_projects() == []
    with open(path + ".lock", "w") as handle:  # what a killed instance leaves behind
        handle.write("12345")
    assert crashed_projects() == [path]
    asked = []
    monkeypatch.setattr(
        QMessageBox,
        "question",
        lambda parent, title, text: asked.append(text) or QMessageBox.StandardButton.Yes,
    )
    assert app._offer_recovery(window) == path
    assert path in asked[0] and "not closed properly" in asked[0]
    assert window.open_path(path) is True  # opening recovers it


def test_keyboard_shortcuts(window, qtbot):
    window.activateWindow()
    window.canvas.setFocus()
    qtbot.waitUntil(window.isActiveWindow, timeout=2000)
    canvas = window.canvas
    qtbot.keyClick(canvas, Qt.Key.Key_E)
    assert canvas.tool == "erase"
    qtbot.keyClick(canvas, Qt.Key.Key_B)
    assert canvas.tool == "add"
    radius = canvas.radius
    qtbot.keyClick(canvas, Qt.Key.Key_BracketRight)
    assert canvas.radius > radius
    qtbot.keyClick(canvas, Qt.Key.Key_N)
    first = window.current_patch
    assert first is not None
    qtbot.keyClick(canvas, Qt.Key.Key_Space)  # Space only pans (held): no jump on a tap
    assert window.current_patch == first
    qtbot.keyClick(canvas, Qt.Key.Key_N)
    assert window.current_patch not in (None, first)
    drag(qtbot, canvas, [(20, 70), (60, 70)])
    qtbot.keyClick(canvas, Qt.Key.Key_Return)
    assert window.project.session.pending is None and window.project.session.strokes
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not window.project.session.strokes
    qtbot.keyClick(
        canvas,
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert window.project.session.strokes


def test_save_leaves_a_project_file_that_holds_everything_alone(window, qtbot, tmp_path):
    import shutil

    from annotator.core.project import open_project

    drag(qtbot, window.canvas, [(20, 70), (60, 70)])
    window.save_action.trigger()  # accepts the pending refinement, then saves
    strokes = window.project.session.strokes
    assert len(strokes) == 1 and "Saved to" in window.statusBar().currentMessage()
    copy = tmp_path / "backup.etmira"
    shutil.copyfile(window.project.path, copy)  # the .etmira alone, project still open
    with open_project(copy, refine=None, readonly=True) as copied:
        assert copied.session.strokes == strokes
        np.testing.assert_array_equal(copied.session.mask, window.project.session.mask)


def test_reviewed_counts_done_patches_only_and_done_ones_stay_listed(window, qtbot):
    from annotator.qt.queue_panel import DONE_MARK

    panel, queue = window.queue, window.project.session.queue
    queued = int(queue.eligible.sum())
    assert queued > 2 and panel.coverage.maximum() == queued
    window.next_action.trigger()
    first = window.current_patch
    y0, x0, y1, x1 = (int(v) for v in queue.grid.boxes[first])
    drag(qtbot, window.canvas, [((x0 + x1) / 2, (y0 + y1) / 2)])  # an accidental dot
    window.accept_action.trigger()
    window.skip_patch()
    assert panel.coverage.value() == 0  # a look, a dot and a skip review nothing
    window.jump_to(first)
    window.mark_done()
    assert panel.coverage.value() == 1
    assert panel.coverage.text() == f"reviewed 1 of {queued} patches"
    rows = [panel.list.item(i) for i in range(panel.list.count())]
    done_rows = [r.text() for r in rows if r.data(Qt.ItemDataRole.UserRole) == first]
    assert done_rows and done_rows[0].startswith(DONE_MARK) and "done" in done_rows[0]
    assert window.canvas._done_boxes.tolist() == [queue.grid.boxes[first].tolist()]
    # the outline and tick are painted, in the "done" colour
    window.canvas.fit()
    window.canvas.paint_final()
    marked = _pixels(window.canvas.grab().toImage())
    window.canvas.set_done([])
    plain = _pixels(window.canvas.grab().toImage())
    changed = np.any(marked != plain, axis=-1)
    assert changed.sum() > 20
    assert np.median(marked[changed][:, 1].astype(int) - marked[changed][:, 0]) > 0  # greenish


def _pixels(image) -> np.ndarray:
    image = image.convertToFormat(image.Format.Format_RGB888)
    return (
        np.frombuffer(image.constBits(), np.uint8)
        .reshape(image.height(), image.bytesPerLine())[:, : 3 * image.width()]
        .reshape(image.height(), image.width(), 3)
        .copy()
    )


def test_the_same_view_elsewhere_reopens_its_project(window, qtbot, files, tmp_path):
    import shutil

    root, view, base, refiner = files
    drag(qtbot, window.canvas, [(20, 70), (60, 70)])
    window.accept_action.trigger()
    project_path, strokes = window.project.path, window.project.session.strokes
    window.close_project()
    moved = tmp_path / "moved" / "view"
    shutil.copytree(view, moved)  # another path, the same maps
    assert window.open_path(moved) is True
    assert window.project.path == project_path and window.project.session.strokes == strokes
    recorded = window.project.store.meta()["view"]["files"]["depth"]["path"]
    assert recorded.startswith(str(moved))  # the project now opens from the new place
    window.close_project()
    assert window.open_path(moved) is True and window.project.path == project_path


def test_recent_menu_save_as_suffix_and_dialogs_beside_the_work(window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    asked = []

    def save_dialog(parent, caption, folder, file_filter):
        asked.append(folder)
        return str(tmp_path / ("copy" if "project" in caption else "lines.svg")), file_filter

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_dialog)
    window.save_as()
    assert window.project.path == str(tmp_path / "copy.etmira")  # the extension is added
    window.export_as("svg")
    assert (tmp_path / "lines.svg").exists()
    assert asked[1] == str(tmp_path / f"{window.project.session.view.view_id}_lines.svg")
    window.recent_menu.aboutToShow.emit()
    entries = [a.toolTip() for a in window.recent_menu.actions()]
    assert entries[0] == str(tmp_path / "copy.etmira") and len(entries) == 2
    first = window.project.path
    window.close_project()
    window.recent_menu.actions()[1].trigger()
    assert window.project is not None and window.project.path != first


def test_space_held_pans_and_help_lists_the_keys(window, qtbot, monkeypatch):
    from PySide6.QtCore import QPoint

    from annotator.qt import dialogs
    from annotator.qt.main_window import FIRST_RUN_HINT

    assert window.statusBar().currentMessage() == FIRST_RUN_HINT  # first run: where to start
    canvas = window.canvas
    canvas.setFocus()
    strokes = len(window.project.session.journal)
    qtbot.keyPress(canvas, Qt.Key.Key_Space)
    before = canvas.view_to_widget(0, 0)
    start = canvas.rect().center()
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(canvas, start + QPoint(40, 25))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=start + QPoint(40, 25))
    qtbot.keyRelease(canvas, Qt.Key.Key_Space)
    moved = canvas.view_to_widget(0, 0) - before
    assert (round(moved.x()), round(moved.y())) == (40, 25)
    assert len(window.project.session.journal) == strokes and window.current_patch is None
    window.next_action.trigger()
    assert "doubt" in window.statusBar().currentMessage()
    assert window.next_action in window.tools.actions()  # the toolbar's Next button

    tables = []
    monkeypatch.setattr(dialogs, "show_table", lambda parent, title, rows: tables.append(rows))
    window.show_shortcuts()
    keys = dict(tables[0])
    assert keys["Next patch"] == "N" and "Space" in keys["Pan"] and keys["Save"] == "Ctrl+S"
    assert "etmira annotate" in dialogs.about_text()


def test_models_are_chosen_in_the_app(window, files, dialogs, qtbot):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QDialogButtonBox, QLineEdit

    from annotator.qt import main_window

    root, view, base, refiner = files
    answers = [(refiner, ""), (base, refiner)]  # a refiner is no base model: asked again

    def fill():
        dialog = QApplication.activeModalWidget()
        if dialog is None or not answers:
            QTimer.singleShot(20, fill)
            return
        edits = dialog.findChildren(QLineEdit)
        for edit, text in zip(edits, answers.pop(0), strict=True):
            edit.setText(str(text))
        dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok).click()
        if answers:
            QTimer.singleShot(20, fill)

    window._models = (None, None)
    QTimer.singleShot(0, fill)
    window.choose_models()
    assert len(dialogs) == 1 and "not a base model" in dialogs[0]
    dialogs.clear()
    assert window._models == (str(base), str(refiner))
    assert main_window._saved_models() == (str(base), str(refiner))  # kept for the next start


def test_scores_computed_before_a_stroke_are_not_shown_after_it(window, qtbot, monkeypatch):
    import threading

    session = window.project.session
    window.refresh_status()
    window.score_label.setText("shown before")
    started, release = threading.Event(), threading.Event()
    real_scores = type(session).scores

    def slow_scores(self):
        result = real_scores(self)  # the state before the stroke
        started.set()
        release.wait(5)
        return result

    monkeypatch.setattr(type(session), "scores", slow_scores)
    window._request_scores()
    assert started.wait(5)
    drag(qtbot, window.canvas, [(20, 70), (100, 70)])  # committed while the worker computes
    window.accept_action.trigger()
    release.set()
    window._scores.wait()
    assert window.score_label.text() == "shown before"  # the outdated result was dropped
    assert window._score_timer.isActive()  # and fresh scores are on their way
    monkeypatch.setattr(type(session), "scores", real_scores)
    window.refresh_status()
    fresh = session.scores()
    assert window.score_label.text() == f"pFM {fresh['pfm']:.3f}  IoU {fresh['iou']:.3f}"
