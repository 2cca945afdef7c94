"""Opening views and projects for the window, and the export menu's writers.

Everything slow here (loading 60 Mpx maps, the base model over the whole view, replaying a
journal, building the display pyramids) runs through :func:`workers.run_with_progress`, so the
GUI stays responsive and the user can cancel. A view opens with its depth map alone (what the
networks read); :func:`load_display_layers` reads the albedo and normals afterwards, on a
worker thread while the user works. The GUI never calls torch itself: the Qt-free
``annotator.core.project`` does.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths

from annotator.core import export as writers
from annotator.core import project as projects
from annotator.core import render
from annotator.core.journal_io import write_strokes
from annotator.core.project_store import SQLITE_MAGIC, needs_recovery
from annotator.core.pyramid import LayerStack, Pyramid
from annotator.qt.workers import run_with_progress
from refinement_model.encoded_maps import load_encoded_albedo, load_encoded_normals
from refinement_model.errors import CheckpointError, InputError
from refinement_model.refiner_options import APP_REFINEMENT
from refinement_model.shipped import shipped_checkpoint
from refinement_model.views import DISPLAY_MAPS, load_view

PROJECT_SUFFIX = ".etmira"
RECENT_KEY = "recentProjects"
_RECENT_LIMIT = 10
EXPORTS = {
    # key: (menu text, file filter, default suffix)
    "png": ("Mask as RGBA PNG (like the ground truth)...", "PNG image (*.png)", "_mask.png"),
    "bilevel_png": ("Mask as 1-bit PNG...", "PNG image (*.png)", "_mask_1bit.png"),
    "tiff": ("Mask as 1-bit TIFF...", "TIFF image (*.tif *.tiff)", "_mask.tif"),
    "svg": ("Centre lines as SVG...", "SVG drawing (*.svg)", "_lines.svg"),
    "provenance": ("Provenance as PNG...", "PNG image (*.png)", "_provenance.png"),
    "journal": ("Stroke journal as JSON...", "JSON (*.json)", "_strokes.json"),
}


def default_project_dir() -> Path:
    """Where projects for views opened directly are kept (the user's app data folder)."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base) / "projects"


def is_project_file(path) -> bool:
    """Whether ``path`` is a file that looks like a project (SQLite header)."""
    path = Path(path)
    if not path.is_file():
        return False
    if path.suffix == PROJECT_SUFFIX:
        return True
    with open(path, "rb") as handle:
        return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


def project_for_view(view_path, project_dir) -> Path:
    """Where a new project for a view folder goes: one name per absolute view path (a view
    moved elsewhere is found by its content, see ``project.find_view_project``)."""
    view_path = Path(view_path).resolve()
    digest = hashlib.sha256(str(view_path).encode()).hexdigest()[:10]
    return Path(project_dir) / f"{view_path.name or 'view'}-{digest}{PROJECT_SUFFIX}"


def open_document(path, *, project_dir, loader, base=None, refiner=None, parent=None):
    """Open a project file, or a view (creating or reusing its cached project).

    Parameters
    ----------
    path : path-like
        A project file, a view folder or one of a view's files.
    project_dir : path-like
        Folder for the project of a view opened directly.
    loader : refinement_model.network_loader.NetworkLoader
        What builds the networks (a new project's, a reopened one's refiner).
    base, refiner : path-like or None
        Checkpoints for a new project; without ``base`` the shipped weights (and the shipped
        refiner when there is one).

    Returns
    -------
    (Project, LayerStack)

    Raises
    ------
    InputError (and subclasses), Cancelled
    """

    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if is_project_file(path):
        project = run_with_progress(
            lambda progress, cancel: projects.open_project(
                path, loader=loader, progress=progress, cancel=cancel
            ),
            label=f"Opening {path.name}...",
            parent=parent,
        )
    else:
        target = project_for_view(path, project_dir)
        if target.exists():
            project = run_with_progress(
                lambda progress, cancel: projects.open_project(
                    target, loader=loader, progress=progress, cancel=cancel
                ),
                label=f"Opening the saved work on {path.name}...",
                parent=parent,
            )
        else:
            base, refiner = _checkpoints(base, refiner)
            target.parent.mkdir(parents=True, exist_ok=True)
            project = run_with_progress(
                lambda progress, cancel: _open_view(
                    path,
                    target,
                    base=base,
                    refiner=refiner,
                    loader=loader,
                    progress=progress,
                    cancel=cancel,
                ),
                label=f"Opening {path.name} (the first time, the network looks for the lines; "
                "the result is kept)...",
                parent=parent,
            )
    try:
        stack = run_with_progress(
            lambda progress, cancel: _prepare(project.session),
            label="Preparing the display...",
            parent=parent,
        )
    except BaseException:
        project.close()
        raise
    return project, stack


def _open_view(path, target: Path, *, base, refiner, loader, progress, cancel):
    """The project of the view at ``path``: one made for the same maps elsewhere (the view was
    moved or copied; it now records this place), else a new one at ``target`` whose refiner
    refines as the app does (``APP_REFINEMENT``)."""

    view = load_view(path, maps=("depth",), cancel=cancel)  # the display's maps come later
    found, records = projects.find_view_project(target.parent, view.files, cancel=cancel)
    if found is None:
        return projects.new_project(
            target,
            view,
            base=base,
            refiner=refiner,
            refiner_options=APP_REFINEMENT,
            loader=loader,
            start_later=True,  # the window refines the start while the user works
            progress=progress,
            cancel=cancel,
        )
    project = projects.open_project(
        found, view=view, loader=loader, progress=progress, cancel=cancel
    )
    if records is not None:
        project.relocate_view(records)
    return project


def _prepare(session) -> LayerStack:
    """The refiner's input, so that the first stroke is fast, and the display pyramids of the
    maps the view has (the albedo and normals come later: :func:`load_display_layers`); the
    view's float maps are let go one by one as their pyramids are built (the app needs them
    no more), which keeps the peak memory of a full-size view down."""
    view = session.view
    session.release_view_maps()  # builds the refiner's input first
    maps = _loaded_maps(view)
    truth = view.ground_truth
    del view  # the caller's project holds the session, which now holds a StoredView
    stack = LayerStack.from_maps(maps, truth=truth)
    stack.set_annotation(session.mask, session.user_map)
    return stack


def build_stack(session) -> LayerStack:
    """The display pyramids of a session's view (the maps it has) and annotation."""
    view = session.view
    stack = LayerStack(**_loaded_maps(view), truth=view.ground_truth)
    stack.set_annotation(session.mask, session.user_map)
    return stack


def _loaded_maps(view) -> dict:
    maps = {name: getattr(view, name) for name in ("depth", *DISPLAY_MAPS)}
    return {name: image for name, image in maps.items() if image is not None}


def load_display_layers(files, mirror_mask, maps, *, min_size: int, cancel=None):
    """The display pyramids of ``maps`` (of ``("albedo", "normals")``) of a view shown without
    them, the same as a view loaded whole gives (``display_pyramids`` of ``views.load_maps``),
    each decoded strip by strip straight into its 8-bit layer (``encoded_maps``: the float
    maps are never whole in memory); for a worker thread.

    Returns
    -------
    (pyramids, warnings)
        ``{name: Pyramid}`` for ``LayerStack.add_layers``; the loading's warnings.
    """
    pyramids, warnings = {}, []
    for name in maps:
        if name == "normals":
            layer, found = load_encoded_normals(
                files, mirror_mask.shape, render.encode_normals, cancel=cancel
            )
        else:
            layer, found = load_encoded_albedo(
                files,
                mirror_mask,
                render.uint8_encoder,
                sample_step=render.CONTRAST_SAMPLE_STEP,
                cancel=cancel,
            )
        pyramids[name] = Pyramid(layer, min_size=min_size)
        warnings += found
    return pyramids, tuple(warnings)


def _checkpoints(base, refiner):

    if base is not None:
        return base, refiner
    try:
        refiner = shipped_checkpoint("refiner") if refiner is None else refiner
    except CheckpointError:
        refiner = None  # annotating without a refiner still works: strokes are burned in
    return shipped_checkpoint("base"), refiner


def export(kind: str, path, project) -> str:
    """Write one export of the project's current state; returns a line for the status bar."""

    session = project.session
    mask = session.mask
    px_per_mm = float(session.view.px_per_mm)
    if kind == "png":
        writers.write_mask_png(path, mask)
    elif kind == "bilevel_png":
        writers.write_mask_png(path, mask, bilevel=True)
    elif kind == "tiff":
        writers.write_mask_tiff(path, mask, px_per_mm=px_per_mm)
    elif kind == "svg":
        count = writers.write_svg(path, mask, px_per_mm=px_per_mm)
        return f"Wrote {count} centre lines to {path}"
    elif kind == "provenance":
        writers.write_provenance_png(path, session.provenance, mask)
    elif kind == "journal":
        write_strokes(
            path,
            session.strokes,
            events=session.journal,
            effort=project.summary(),
            view={"view_id": session.view.view_id, "height": mask.shape[0], "width": mask.shape[1]},
        )
    else:
        raise ValueError(f"kind must be one of {tuple(EXPORTS)}, got {kind!r}")
    return f"Wrote {path}"


def remember_project(path: str) -> None:
    """Put a project on top of the recent list (used to find crashed projects on start)."""
    settings = QSettings()
    recent = [p for p in _recent(settings) if p != os.fspath(path)]
    settings.setValue(RECENT_KEY, [os.fspath(path), *recent][:_RECENT_LIMIT])


def recent_projects() -> list[str]:
    """The recent projects that still exist, most recent first."""
    return [p for p in _recent(QSettings()) if os.path.isfile(p)]


def with_project_suffix(path) -> str:
    """``path`` with the ``.etmira`` extension added when it has none (Save As)."""
    path = os.fspath(path)
    return path if path.lower().endswith(PROJECT_SUFFIX) else path + PROJECT_SUFFIX


def crashed_projects() -> list[str]:
    """Recent projects that were left open by a crash (their lock or log is still there)."""
    return [p for p in _recent(QSettings()) if os.path.exists(p) and needs_recovery(p)]


def _recent(settings: QSettings) -> list[str]:
    value = settings.value(RECENT_KEY, [])
    return [value] if isinstance(value, str) else list(value or [])
