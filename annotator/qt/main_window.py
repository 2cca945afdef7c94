"""The main window: menus, shortcuts, docks, status bar, and the stroke / patch workflow.

The window forwards input to the Qt-free session of an ``annotator.core.project.Project`` and
repaints what the session's change listener reports; it holds no annotation state of its own.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QApplication, QDockWidget, QFileDialog, QLabel, QMainWindow

from annotator.core import render
from annotator.core.journal_io import read_strokes
from annotator.core.session import default_radius
from annotator.qt import dialogs, document
from annotator.qt.adaptation import AdaptationRunner
from annotator.qt.canvas import Canvas
from annotator.qt.dialogs import guarded, show_error
from annotator.qt.display_maps import DisplayMapsLoader
from annotator.qt.layers import LayerPanel
from annotator.qt.queue_panel import QueuePanel
from annotator.qt.start_refinement import StartRefinementRunner
from annotator.qt.tools import ToolBar, icon
from annotator.qt.workers import LatestCall, run_with_progress
from refinement_model.network_loader import app_loader
from refinement_model.strokes import Stroke, rasterize_stroke

# Scores over the whole view cost a moment on 60 Mpx: computed once the user pauses.
_SCORE_DELAY_MS = 700
FIRST_RUN_HINT = (
    "Start: press N for the patch the network doubts most, then drag over lines to trace (B) "
    "or erase (E). F1 lists all keys."
)
_HINT_SEEN_KEY = "firstRunHintSeen"
_MODEL_KEYS = ("models/base", "models/refiner")


class MainWindow(QMainWindow):
    """The annotator's window.

    Parameters
    ----------
    project_dir : path-like, optional
        Where the projects of views opened directly are kept (default: the app data folder).
    base, refiner : path-like, optional
        Checkpoints for new projects (default: the shipped weights).
    loader : refinement_model.network_loader.NetworkLoader, optional
        What builds the networks; default the app's (``app_loader()``: ONNX exports cached in
        the user's cache folder).
    """

    def __init__(self, *, project_dir=None, base=None, refiner=None, loader=None):
        super().__init__()
        self.project = None
        self.stack = None
        self.current_patch: int | None = None
        self._project_dir = Path(project_dir) if project_dir else document.default_project_dir()
        # the command line's models, else those chosen in the app before (File > Choose models)
        self._models = (base, refiner) if base or refiner else _saved_models()
        self._loader = app_loader() if loader is None else loader
        self.setWindowTitle("etmira annotate")
        self.canvas = Canvas()
        self.setCentralWidget(self.canvas)
        self.tools = ToolBar(self, radius=default_radius())
        self.addToolBar(self.tools)
        self.layers = LayerPanel()
        self.queue = QueuePanel()
        self._dock("Patch queue", self.queue, "queueDock", Qt.DockWidgetArea.LeftDockWidgetArea)
        self._dock("Layers", self.layers, "layersDock", Qt.DockWidgetArea.RightDockWidgetArea)
        self._status_labels()
        self._score_timer = QTimer(self, singleShot=True, interval=_SCORE_DELAY_MS)
        self._score_timer.timeout.connect(self._request_scores)
        self._scores = LatestCall(self)
        self._scores.finished.connect(self._show_scores)
        self._scores.failed.connect(lambda error: show_error(self, error))
        # the refiner's own proposal, computed while its one-pass preview is on screen
        self._finisher = LatestCall(self)
        self._finisher.finished.connect(self._show_final)
        self._finisher.failed.connect(lambda error: show_error(self, error))
        # the albedo and normals, read once the view (its depth) is shown
        self._display_maps = DisplayMapsLoader(self)
        # online adaptation of the refiner, on its own worker thread
        self.adaptation = AdaptationRunner(self, settle=self._settle)
        self.statusBar().addPermanentWidget(self.adaptation.label)
        # a new view's first prediction, refined while the user works
        self.start_refinement = StartRefinementRunner(self, busy=lambda: self._finisher.running)
        self.statusBar().addPermanentWidget(self.start_refinement.label)
        self._actions()
        self._connect()
        self._set_enabled(False)

    # ---- building ------------------------------------------------------------------------
    def _dock(self, title: str, widget, name: str, area) -> None:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.addDockWidget(area, dock)

    def _status_labels(self) -> None:
        self.position_label, self.brush_label = QLabel(), QLabel()
        self.score_label, self.effort_label = QLabel(), QLabel()
        for label in (self.position_label, self.brush_label, self.score_label, self.effort_label):
            label.setContentsMargins(6, 0, 6, 0)
            self.statusBar().addPermanentWidget(label)

    def _action(self, menu, text: str, slot, shortcut=None, icon_name=None) -> QAction:
        action = QAction(text, self)
        if icon_name:
            action.setIcon(icon(icon_name))
        if shortcut:
            keys = shortcut if isinstance(shortcut, (list, tuple)) else [shortcut]
            action.setShortcuts([QKeySequence(k) for k in keys])
        action.triggered.connect(lambda checked=False: slot())
        menu.addAction(action)
        self.addAction(action)  # shortcuts work while the menu bar is hidden too
        return action

    def _actions(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        self._action(file, "&Open view...", self.open_view_dialog, QKeySequence.StandardKey.Open)
        self._action(file, "Open &project...", self.open_project_dialog, "Ctrl+Shift+O")
        self.recent_menu = file.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self.save_action = self._action(file, "&Save", self.save, QKeySequence.StandardKey.Save)
        self.save_as_action = self._action(file, "Save &as...", self.save_as, "Ctrl+Shift+S")
        self.export_menu = file.addMenu("&Export")
        for kind, (text, _, _) in document.EXPORTS.items():
            self._action(self.export_menu, text, lambda k=kind: self.export_as(k))
        file.addSeparator()
        self._action(file, "Choose &models...", self.choose_models)
        file.addSeparator()
        self._action(file, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        edit = bar.addMenu("&Edit")
        self.undo_action = self._action(edit, "&Undo", self.undo, "Ctrl+Z")
        self.redo_action = self._action(edit, "&Redo", self.redo, ["Ctrl+Shift+Z", "Ctrl+Y"])
        edit.addSeparator()
        self.accept_action = self._action(
            edit, "&Accept refinement", self.accept_proposal, ["Return", "Enter"], "accept"
        )
        self.reject_action = self._action(
            edit, "Re&ject refinement (keep my stroke)", self.reject_proposal, "Esc", "reject"
        )

        view = bar.addMenu("&View")
        self._action(view, "&Fit", self.canvas.fit, "F", "fit")
        self._action(view, "&1:1", self.canvas.one_to_one, "1")
        self._action(view, "Zoom &in", lambda: self._zoom(1.25), ["+", "="])
        self._action(view, "Zoom &out", lambda: self._zoom(0.8), "-")
        for dock in self.findChildren(QDockWidget):
            view.addAction(dock.toggleViewAction())

        tools = bar.addMenu("&Tools")
        for action in (*self.tools.actions_by_tool.values(), self.tools.narrower, self.tools.wider):
            tools.addAction(action)
            self.addAction(action)
        tools.addSeparator()
        tools.addAction(self.adaptation.action)

        patch = bar.addMenu("&Patch")
        self.next_action = self._action(patch, "&Next patch", self.next_patch, "N", "next")
        self._action(patch, "&Skip patch", self.skip_patch, "S")
        self._action(patch, "Mark &done", self.mark_done, "D", "accept")

        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&Keyboard and mouse...", self.show_shortcuts, "F1")
        self._action(help_menu, "&About etmira...", self.show_about)

        self.next_action.setToolTip("Go to the worst patch not seen yet (N)")
        self.tools.addSeparator()
        for action in (self.next_action, self.accept_action, self.reject_action):
            self.tools.addAction(action)

    def _connect(self) -> None:
        self.canvas.strokeFinished.connect(self.on_stroke)
        self.canvas.cursorMoved.connect(self._show_position)
        self.canvas.viewChanged.connect(self._show_brush)
        self.tools.toolChanged.connect(self._set_tool)
        self.tools.radiusChanged.connect(self._set_radius)
        self.layers.settingsChanged.connect(self.canvas.set_settings)
        self.queue.jumpRequested.connect(self.jump_to)
        self.queue.nextRequested.connect(self.next_patch)
        self.queue.skipRequested.connect(self.skip_patch)
        self.queue.doneRequested.connect(self.mark_done)
        self._set_radius(self.tools.radius)

    def _set_enabled(self, on: bool) -> None:
        for action in (
            self.save_action,
            self.save_as_action,
            self.undo_action,
            self.redo_action,
            self.next_action,
        ):
            action.setEnabled(on)
        self.export_menu.setEnabled(on)
        self._update_edit_actions()

    # ---- opening and closing -------------------------------------------------------------
    def load(self, path) -> None:
        """Open a view folder or project file (raises on bad input; see :meth:`open_path`)."""
        project, stack = document.open_document(
            path,
            project_dir=self._project_dir,
            loader=self._loader,
            base=self._models[0],
            refiner=self._models[1],
            parent=self,
        )
        self.show_project(project, stack)

    def show_project(self, project, stack) -> None:
        """Work on an open ``Project`` shown through ``stack`` (see ``document.build_stack``)."""
        self.close_project()
        self.project, self.stack = project, stack
        project.on_error = lambda error: show_error(self, error)
        project.session.add_listener(self._on_change)
        document.remember_project(project.path)
        self.canvas.set_stack(stack)
        self._display_maps.start(stack, project.session.view)
        self.layers.set_ground_truth_available(project.session.view.ground_truth is not None)
        self.setWindowTitle(f"{project.session.view.view_id} - {Path(project.path).name} - etmira")
        self.current_patch = None
        self._set_enabled(True)
        self._refresh_queue()
        self._update_effort()
        self._score_timer.start()
        self.adaptation.attach(project)
        for warning in project.warnings:
            self.statusBar().showMessage(warning, 10000)
        if not project.warnings and not QSettings().value(_HINT_SEEN_KEY, False, type=bool):
            self.statusBar().showMessage(FIRST_RUN_HINT)
        # the view is shown: the refiner's network (not needed to reopen) is built meanwhile
        project.prepare_refiner()
        self.start_refinement.attach(project, self._loader)

    def finish_display_maps(self) -> None:
        """Show the albedo and normals layers now if they are still being read (scripts,
        screenshots, tests)."""
        self._display_maps.wait()

    @guarded
    def open_path(self, path) -> bool:
        """Open ``path``; bad input shows a dialog and leaves the current work open."""
        self.load(path)
        return True

    def close_project(self) -> None:
        if self.project is None:
            return
        self._score_timer.stop()
        self._display_maps.cancel()
        self.start_refinement.detach()
        self._scores.wait()
        self._finisher.wait()
        self.adaptation.detach()
        self.project.session.remove_listener(self._on_change)
        self.project.close()
        self.project = self.stack = None
        self._set_enabled(False)

    def closeEvent(self, event) -> None:
        try:
            self.close_project()
        except Exception as error:  # noqa: BLE001 - closing must not be blocked by a write error
            show_error(self, error)
        super().closeEvent(event)

    def open_view_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a mirror view folder")
        if folder:
            self.open_path(folder)

    def open_project_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open a project",
            str(self._project_dir),
            f"etmira projects (*{document.PROJECT_SUFFIX})",
        )
        if path:
            self.open_path(path)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = document.recent_projects()
        for number, path in enumerate(recent, 1):
            action = self.recent_menu.addAction(f"&{number % 10}  {Path(path).name}")
            action.setToolTip(path)
            action.setStatusTip(path)
            action.triggered.connect(lambda checked=False, p=path: self.open_path(p))
        if not recent:
            self.recent_menu.addAction("No recent projects").setEnabled(False)

    @guarded
    def save(self) -> None:
        """Write anything pending and fold the log into the project file (every stroke is
        already safe when committed; after Save the ``.etmira`` file alone holds it all)."""
        self._settle()
        written = self.project.save()
        self.statusBar().showMessage(
            f"Saved to {self.project.path}"
            + (f" ({written} pending events written)" if written else ""),
            4000,
        )

    @guarded
    def save_as(self, path=None) -> None:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(
                self,
                "Save the project as",
                str(self._work_folder()),
                f"etmira projects (*{document.PROJECT_SUFFIX})",
            )
            if not path:
                return
            path = document.with_project_suffix(path)
        self._settle()
        run_with_progress(
            lambda progress, cancel: self.project.save_as(path, progress=progress),
            label=f"Saving {Path(path).name}...",
            parent=self,
        )
        document.remember_project(self.project.path)
        self.setWindowTitle(f"{self.project.session.view.view_id} - {Path(path).name} - etmira")
        self.statusBar().showMessage(f"Saved as {path}; you now work in it", 5000)

    def _work_folder(self) -> Path:
        """Where dialogs about this work open: beside the project, or, for a project the app
        keeps in its own folder, beside the view's maps."""
        project = Path(self.project.path).resolve()
        files = getattr(self.project.session.view, "files", None)
        if project.parent == self._project_dir.resolve() and files is not None:
            return Path(files.depth).resolve().parent
        return project.parent

    @guarded
    def export_as(self, kind: str, path=None) -> None:
        text, file_filter, suffix = document.EXPORTS[kind]
        if path is None:
            default = str(self._work_folder() / f"{self.project.session.view.view_id}{suffix}")
            path, _ = QFileDialog.getSaveFileName(self, text.rstrip("."), default, file_filter)
            if not path:
                return
        self._settle()
        message = run_with_progress(
            lambda progress, cancel: document.export(kind, path, self.project),
            label=f"Writing {Path(path).name}...",
            parent=self,
        )
        self.statusBar().showMessage(message, 5000)

    def choose_models(self) -> None:
        """Pick the base model and refiner for views opened from now on (an open project
        keeps the models it was made with)."""
        chosen = dialogs.choose_models(self, *self._models)
        if chosen is not None:
            self._models = chosen
            settings = QSettings()
            settings.setValue(_MODEL_KEYS[0], chosen[0] or "")
            settings.setValue(_MODEL_KEYS[1], chosen[1] or "")
            self.statusBar().showMessage(
                "New views will be traced with these models; open projects keep theirs.", 6000
            )

    def show_shortcuts(self) -> None:
        """The Help menu's list of keys and mouse gestures, read from the actions themselves."""
        rows = [
            (
                action.text().replace("&", "").rstrip("."),
                action.shortcut().toString(QKeySequence.SequenceFormat.NativeText),
            )
            for action in self.actions()
            if not action.shortcut().isEmpty()
        ]
        rows += [
            ("Pan", "hold Space and drag, or drag with the middle button"),
            ("Zoom", "mouse wheel"),
            ("Draw / erase", "drag with the left button (B / E choose the brush)"),
        ]
        dialogs.show_table(self, "Keyboard and mouse", rows)

    def show_about(self) -> None:
        dialogs.show_about(self)

    def replay_strokes(self, path) -> None:
        """Apply (and accept) every stroke of a stroke journal, as if drawn (for demos)."""
        for stroke in read_strokes(path):
            self.project.session.apply_stroke(stroke)

    def apply_start_options(self, options) -> None:
        """Layer choices from the command line (see ``annotator.cli.annotate``)."""
        changes = {}
        if options.layer:
            changes["base"] = options.layer
        if options.raking:
            changes.update(base="raking", azimuth=options.raking[0], elevation=options.raking[1])
        if options.opacity is not None:
            changes["prediction_opacity"] = options.opacity
        if (
            options.error_map
            and self.project
            and self.project.session.view.ground_truth is not None
        ):
            changes["error_map"] = True
        if changes:
            settings = dataclasses.replace(self.layers.settings, **changes)
            self.layers.set_settings(settings)
            self.canvas.set_settings(settings)

    # ---- strokes -------------------------------------------------------------------------
    @guarded
    def on_stroke(self, stroke: Stroke) -> None:
        """A finished drag: propose it with the network's completion, shown as a difference."""
        if self.project is None:
            return
        session = self.project.session
        self._settle()
        h, w = session.mask.shape
        y0, x0, y1, x1 = stroke.bounds()
        if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
            self.statusBar().showMessage("The stroke is outside the view", 3000)
            return
        QSettings().setValue(_HINT_SEEN_KEY, True)
        QApplication.setOverrideCursor(Qt.CursorShape.BusyCursor)
        try:
            # the refiner's one-pass preview at once; its own result when the worker has it
            proposal = session.propose_stroke(stroke, preview=True)
        finally:
            QApplication.restoreOverrideCursor()
        if not proposal.deltas:  # nothing to choose between: no refiner
            session.accept()
            return
        if not proposal.final:
            # started before the preview is painted: the final result is what the user waits for
            job = session.finishing_job()
            self._finisher.submit(lambda: (proposal, job()))
        self._show_proposal(proposal)

    def _show_proposal(self, proposal) -> None:
        y0, x0, y1, x1 = proposal.region
        stroke = proposal.stroke
        own = rasterize_stroke(stroke, (y1 - y0, x1 - x0), origin=(x0, y0))
        color = render.ADD_COLOR if stroke.kind == "add" else render.ERASE_COLOR
        self.canvas.set_proposal(
            proposal.region,
            render.proposal_rgba(proposal.added, proposal.removed, stroke=own, stroke_color=color),
        )
        self._update_edit_actions()
        self.statusBar().showMessage(
            f"Network +{int(proposal.added.sum())} / -{int(proposal.removed.sum())} px "
            "(orange / dark blue). Enter accepts, Esc: your stroke only."
        )

    def finish_refinement(self) -> None:
        """Show the refiner's own proposal now if its preview is on screen (scripts, tests)."""
        self._finisher.wait()

    def _show_final(self, result) -> None:
        preview, deltas = result
        session = None if self.project is None else self.project.session
        if session is None or session.pending is not preview:
            return  # rejected or undone meanwhile
        self._show_proposal(session.finish_proposal(preview, deltas))

    @guarded
    def accept_proposal(self) -> None:
        self._settle()

    @guarded
    def reject_proposal(self) -> None:
        if self.project is not None and self.project.session.pending is not None:
            self.project.session.reject()

    def _settle(self) -> None:
        """Drawing on, moving on or saving accepts a pending refinement, as in image tools."""
        # the refiner's own result is at most one batch away: waited for, not computed again
        self._finisher.wait()
        if self.project is not None and self.project.session.pending is not None:
            self.project.session.accept()

    @guarded
    def undo(self) -> None:
        session = self.project.session
        if session.pending is not None:
            session.reject()  # undo drops the stroke in preview altogether
        if session.can_undo:
            session.undo()

    @guarded
    def redo(self) -> None:
        if self.project.session.can_redo:
            self.project.session.redo()

    # ---- patches -------------------------------------------------------------------------
    @guarded
    def next_patch(self) -> None:
        if self.project is None:
            return
        self._settle()
        index = self.project.session.next_patch()
        if index is None:
            self.statusBar().showMessage(
                "Every patch has been seen. Patches not done are in the list.", 6000
            )
            return
        self._show_patch(index)

    @guarded
    def jump_to(self, index: int) -> None:
        self._settle()
        self.project.session.visit(index)
        self._show_patch(index)

    @guarded
    def skip_patch(self) -> None:
        if self.current_patch is not None:
            self._settle()
            self.project.session.skip(self.current_patch)
            self.next_patch()

    @guarded
    def mark_done(self) -> None:
        if self.current_patch is not None:
            self._settle()
            self.project.session.mark_done(self.current_patch)
            self.next_patch()

    def _show_patch(self, index: int) -> None:
        self.current_patch = index
        h, w = self.stack.shape
        y0, x0, y1, x1 = (int(v) for v in self.project.session.grid.boxes[index])
        box = (max(y0, 0), max(x0, 0), min(y1, h), min(x1, w))
        self.canvas.centre_on(box)
        self.canvas.set_highlight(box)
        self.start_refinement.prefer([index, *_patches_over(self.project.session.grid.boxes, box)])
        self._refresh_queue()
        QSettings().setValue(_HINT_SEEN_KEY, True)
        queue = self.project.session.queue
        self.statusBar().showMessage(
            f"Patch #{index}, doubt {queue.scores[index]:.2f} (how undecided its lines are). "
            "Draw to correct; D: done, N: next."
        )

    # ---- reacting to the session ---------------------------------------------------------
    def _on_change(self, change) -> None:
        session = self.project.session
        if change.region is not None:
            self.stack.set_annotation(session.mask, session.user_map, box=change.region)
            self.canvas.invalidate(change.region)
            self.queue.forget_thumbnails(_patches_over(session.grid.boxes, change.region))
            self._score_timer.start()
        if session.pending is None and self.canvas.has_proposal:
            self.canvas.set_proposal(None)
            self.statusBar().clearMessage()  # the proposal's "Enter accepts..." line
        if change.region is not None or change.patches:
            self._refresh_queue()
        self._update_edit_actions()
        self._update_effort()

    def _refresh_queue(self) -> None:
        if self.project is not None:
            queue = self.project.session.queue
            self.queue.refresh(queue, self.stack, current=self.current_patch)
            self.canvas.set_done(queue.grid.boxes[queue.done])

    def _update_edit_actions(self) -> None:
        session = None if self.project is None else self.project.session
        pending = session is not None and session.pending is not None
        self.accept_action.setEnabled(pending)
        self.reject_action.setEnabled(pending)
        self.undo_action.setEnabled(session is not None and (session.can_undo or pending))
        self.redo_action.setEnabled(session is not None and session.can_redo and not pending)

    def refresh_status(self) -> None:
        """Bring the scores and effort counters up to date now (they normally lag a moment)."""
        self._score_timer.stop()
        self._request_scores()
        self._scores.wait()
        self._update_effort()

    def _request_scores(self) -> None:
        # Over 60 Mpx the scores take a moment: off the GUI thread, only the latest request.
        # Stamped with the journal position and the start's updates: a stroke committed or a
        # patch's start refined meanwhile makes them outdated.
        if self.project is not None:
            session = self.project.session
            stamp = (session, len(session.journal), session.start_updates)
            self._scores.submit(lambda: (stamp, session.scores()))

    def _show_scores(self, result) -> None:
        (session, position, start_updates), scores = result
        if self.project is None or self.project.session is not session:
            return
        if (len(session.journal), session.start_updates) != (position, start_updates):
            self._score_timer.start()  # computed (partly) before the last change: again
            return
        self.score_label.setText(
            "" if scores is None else f"pFM {scores['pfm']:.3f}  IoU {scores['iou']:.3f}"
        )

    def _update_effort(self) -> None:
        effort = self.project.session.effort()
        minutes = effort["time_s"] / 60
        self.effort_label.setText(
            f"{effort['strokes']} strokes, {effort['annotated_pixels']:,} px drawn, "
            f"{effort['accepted']} refinements kept, {minutes:.0f} min"
        )

    # ---- small things --------------------------------------------------------------------
    def _set_tool(self, tool: str) -> None:
        self.canvas.tool = tool
        self.canvas.restore_cursor()

    def _set_radius(self, radius: float) -> None:
        self.canvas.radius = radius
        self.canvas.update()
        self._show_brush()

    def _show_brush(self) -> None:
        self.brush_label.setText(
            f"brush {2 * self.canvas.radius:.1f} px   zoom {self.canvas.scale:.0%}"
        )

    def _show_position(self, x: float, y: float) -> None:
        self.position_label.setText(f"x {int(np.floor(x))}  y {int(np.floor(y))}")

    def _zoom(self, factor: float) -> None:
        self.canvas.zoom_at(factor, self.canvas.rect().center().toPointF())


def _patches_over(boxes: np.ndarray, region) -> np.ndarray:
    """Indices of the patches whose box meets ``region`` = (y0, x0, y1, x1)."""
    y0, x0, y1, x1 = region
    hit = (boxes[:, 0] < y1) & (boxes[:, 2] > y0) & (boxes[:, 1] < x1) & (boxes[:, 3] > x0)
    return np.flatnonzero(hit)


def _saved_models() -> tuple[str | None, str | None]:
    """The models last chosen in the app (None where none was, or its file is gone)."""
    settings = QSettings()
    paths = (settings.value(key, "", type=str) for key in _MODEL_KEYS)
    return tuple(path if path and Path(path).is_file() else None for path in paths)
