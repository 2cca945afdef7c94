"""A session bound to its project file: create, open, commit, save as, recover.

Quick use::

    project = new_project("p.etmira", "VIEW_DIR", base="base.safetensors",
                          refiner="refiner.safetensors",       # runs the start
                          refiner_options=APP_REFINEMENT, loader=app_loader())
    project.session.apply_stroke(stroke)                       # committed to disk at once
    project.save_as("copy.etmira")                             # continues in the copy
    project.close()
    if needs_recovery("p.etmira"): ...                         # offer recovery, then open
    project = open_project("p.etmira", loader=app_loader())    # exact state, undo included

What the file holds (see ``project_store``): the layers ``base_logits`` (float16, what the
session started from: it starts from these rounded values), ``mirror_mask`` (the view's mirror
area), ``mask``, ``user_map`` and ``provenance`` (the current state, so ``info``
and ``export`` need neither the view nor a model), the session's journal (one row per event:
strokes, undo, redo, patch decisions), each refined patch's change (``delta/<patch>`` blobs, so
reopening calls no network), and metadata: the view's files with size, time and SHA-256, the
models' paths, SHA-256 and metadata, the patch grid and the effort figures.

A new project may show the base network's prediction first and refine its start in the
background (``new_project(..., start_later=True)``): ``start_pending`` (metadata) lists the
patches still to refine, worst first, and :meth:`Project.refine_start` writes each refined patch's
start (the ``base_logits`` tiles) with the mask it changes, in one transaction
(``annotator.core.start_completion`` drives it).

With ``autocommit`` (the default) every journal event of the session is written in its own
transaction as soon as it happens: the event, the mask tiles it dirtied and the changed patch
deltas. A crash loses at most the event in flight. If a write fails (disk full) the error is
raised from the session call that caused it; the change stays in memory and pending, and the next
successful commit writes it.

Opening replays the journal with the stored patch deltas (``AnnotationSession.replay``) and
checks the result against the stored mask.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import threading
import time
from collections.abc import Callable

import numpy as np
from scipy.special import logit

from annotator.core.project_file import needs_recovery
from annotator.core.project_store import ProjectStore
from annotator.core.session import PROBABILITY_CLIP, AnnotationSession, StoredView
from refinement_model.checkpoint_header import read_metadata, read_spec
from refinement_model.errors import Cancelled, InputError, ProjectError
from refinement_model.imageio import file_sha256
from refinement_model.network_loader import NetworkLoader
from refinement_model.patches import PatchGrid
from refinement_model.refiner_options import RefinerOptions
from refinement_model.views import DISPLAY_MAPS, MirrorView, load_view, with_maps

__all__ = [
    "DeferredRefiner",
    "Project",
    "StoredView",
    "create_project",
    "file_record",
    "find_view_project",
    "needs_recovery",
    "new_project",
    "open_project",
    "project_summary",
    "replay_stored",
    "view_records",
]

FORMAT = "etmira-project"
STATE_LAYERS = ("mask", "user_map", "provenance")
# Key prefix of the blobs holding the adapted refiner's states (annotator.core.adaptation).
ADAPTED_STATE_PREFIX = "adapted/"
_ROLES = ("normals", "albedo", "depth", "drawings", "mask")
# The maps that identify a view by content: the same maps elsewhere are the same view.
_MAP_ROLES = ("normals", "albedo", "depth")
# Seconds between two commits of the start refined in the background: each rewrites the tiles
# of four layers, and a batch lost in a crash is refined again after the reopen.
START_COMMIT_S = 10.0
# What builds a reopened project's refiner when the caller names nothing else.
_DEFAULT_LOADER = NetworkLoader()


def file_record(path: str | os.PathLike) -> dict:
    """``{"path", "size", "mtime_ns", "sha256"}`` of a file, path absolute."""
    stat = os.stat(path)
    return {
        "path": os.path.abspath(path),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": file_sha256(path),
    }


def changed_files(records: dict) -> list[str]:
    """Warnings for recorded files now missing or with other content.

    Size and modification time are compared first; the (slow, for 1 GB of maps) hash is
    recomputed only when they differ.
    """
    warnings = []
    for role, record in records.items():
        try:
            stat = os.stat(record["path"])
        except OSError:
            warnings.append(f"the view's {role} file {record['path']} is missing")
            continue
        if (stat.st_size, stat.st_mtime_ns) == (record["size"], record["mtime_ns"]):
            continue
        if file_sha256(record["path"]) != record["sha256"]:
            warnings.append(
                f"the view's {role} file {record['path']} changed since the project was made"
            )
    return warnings


def view_records(files) -> dict:
    """:func:`file_record` of each file of a view (``ViewFiles``), by role; absent roles left
    out."""
    return {
        role: file_record(getattr(files, role))
        for role in _ROLES
        if getattr(files, role, None) is not None
    }


def find_view_project(
    folder, files, *, cancel: Callable[[], bool] | None = None
) -> tuple[str, dict] | tuple[None, None]:
    """The project in ``folder`` made for this view, wherever its files were then.

    A project matches when it recorded the same map files (path, size and time: nothing to
    hash), or maps of the same SHA-256 (the view was moved or copied; its files are hashed only
    when a project recorded maps of the same sizes). Unreadable projects are passed over.

    Parameters
    ----------
    folder : path-like
        Where the app keeps the projects of views opened directly.
    files : ViewFiles
        The view's files, as ``load_view`` found them.

    Returns
    -------
    (project path, records) or (None, None)
        ``records`` are the view's :func:`view_records` when they had to be computed (the
        project's recorded files are then out of date: see :meth:`Project.relocate_view`).
    """
    current = {role: os.path.abspath(getattr(files, role)) for role in _MAP_ROLES}
    stats = {role: os.stat(path) for role, path in current.items()}
    candidates = []
    for path in sorted(glob.glob(os.path.join(os.fspath(folder), "*.etmira"))):
        try:
            with ProjectStore.open(path, readonly=True, check="none") as store:
                recorded = store.meta().get("view", {}).get("files", {})
        except (ProjectError, OSError):
            continue
        if not all(role in recorded for role in _MAP_ROLES):
            continue
        if all(
            recorded[role]["path"] == current[role]
            and (recorded[role]["size"], recorded[role]["mtime_ns"])
            == (stats[role].st_size, stats[role].st_mtime_ns)
            for role in _MAP_ROLES
        ):
            return path, None
        if all(recorded[role]["size"] == stats[role].st_size for role in _MAP_ROLES):
            candidates.append((path, recorded))
    if not candidates:
        return None, None
    if cancel is not None and cancel():
        raise Cancelled("finding the view's project was cancelled")
    records = view_records(files)
    for path, recorded in candidates:
        if all(recorded[role]["sha256"] == records[role]["sha256"] for role in _MAP_ROLES):
            return path, records
    return None, None


class DeferredRefiner:
    """A refiner checkpoint's ``PatchRefiner``, built when it is first needed, or ahead of
    that on a background thread (:meth:`build_in_background`), so that reopening a project
    neither imports PyTorch nor builds a network before the view is shown: the stored patch
    changes replay the work.

    It refines as the ``PatchRefiner`` would (``refine``, ``refine_batch``; ``preview`` is the
    one-pass refiner, deferred with it, or None for a refiner of one pass). Thread-safe: a
    call made while the background build runs waits for it.

    Parameters
    ----------
    path : path-like
        The refiner checkpoint.
    options : RefinerOptions
        The ``PatchRefiner``'s options.
    loader : NetworkLoader
        What builds it.
    """

    def __init__(self, path, *, options: RefinerOptions, loader: NetworkLoader):
        self.path = os.fspath(path)
        self.options = options
        self._loader = loader
        self._lock = threading.Lock()
        self._refiner = None
        self._thread = None
        self.preview = None if options.one_pass else _DeferredPreview(self)

    @property
    def built(self) -> bool:
        """Whether the network has been built."""
        return self._refiner is not None

    def build(self):
        """The ``PatchRefiner`` (built now unless it already is, or waited for)."""
        with self._lock:
            if self._refiner is None:
                self._refiner = self._loader.refiner(self.path, self.options)
            return self._refiner

    def build_in_background(self) -> None:
        """Start building on a daemon thread (once); a failure is raised again by the first
        refinement, which builds anew."""
        if self._thread is None and self._refiner is None:
            self._thread = threading.Thread(
                target=self._build_quietly, daemon=True, name="refiner build"
            )
            self._thread.start()

    def wait(self) -> None:
        """Wait for a background build to end (a project waits before it closes, so that no
        thread builds a network while the interpreter exits)."""
        if self._thread is not None:
            self._thread.join()

    def _build_quietly(self) -> None:
        # an error is raised again, in context, by the first refinement
        with contextlib.suppress(Exception):
            self.build()

    def refine(self, image_patch, base_logits, stroke_channel):
        """See ``PatchRefiner.refine``."""
        return self.build().refine(image_patch, base_logits, stroke_channel)

    def refine_batch(self, image_patches, base_logits, stroke_channels):
        """See ``PatchRefiner.refine_batch``."""
        return self.build().refine_batch(image_patches, base_logits, stroke_channels)


class _DeferredPreview:
    """The one-pass ``preview`` of a :class:`DeferredRefiner`, sharing its build."""

    preview = None

    def __init__(self, full: DeferredRefiner):
        self._full = full

    def refine(self, image_patch, base_logits, stroke_channel):
        return self._full.build().preview.refine(image_patch, base_logits, stroke_channel)

    def refine_batch(self, image_patches, base_logits, stroke_channels):
        return self._full.build().preview.refine_batch(image_patches, base_logits, stroke_channels)


def _model_record(path) -> dict:
    return {**file_record(path), "metadata": read_metadata(path)}


class Project:
    """An annotation session and the project file it is saved to. Use :func:`new_project`,
    :func:`create_project` or :func:`open_project`.

    Attributes
    ----------
    session : AnnotationSession
    store : ProjectStore
    path : str
    warnings : tuple of str
        Found on opening (view files changed, state rebuilt from the journal, ...).
    recovered : bool
        The file had been left open by a crash; its committed work was recovered.
    on_error : callable(ProjectError) or None
        Called when an automatic commit fails (e.g. the disk is full; the work stays pending).
        When None the error is raised from the session call that triggered the commit, and
        listeners added after the project's are not called for that event.
    refiner : DeferredRefiner, PatchRefiner, other refine object or None
        What the session refines with (an opened project's is deferred: see
        :meth:`prepare_refiner`).

    Attributes
    ----------
    start_predictor : refinement_model.start.StartPredictor or None
        The networks that refine the pending start, when :func:`new_project` built them (a
        reopened project's are built by ``annotator.core.start_completion``).
    """

    def __init__(
        self,
        store: ProjectStore,
        session: AnnotationSession,
        *,
        autocommit: bool = True,
        warnings=(),
        refiner=None,
    ):
        self.store = store
        self.session = session
        self.refiner = refiner
        self.warnings = tuple(warnings)
        self.recovered = store.recovered
        self._saved = len(session.journal)
        self._regions: list = []
        self._versions = {p: v for p, (v, _) in session.patch_deltas().items()}
        self._start_pending = _start_pending(store, len(session.grid))
        self._start_written = True
        self._start_committed = time.monotonic()
        self.start_predictor = None
        self._autocommit = autocommit
        self.on_error = None
        session.add_listener(self._on_change)

    path = property(lambda self: self.store.path, doc="The project file.")
    start_pending = property(
        lambda self: tuple(self._start_pending),
        doc="The patches whose start is still to refine, in the order to refine them (empty "
        "once the start is complete).",
    )

    @property
    def dirty(self) -> bool:
        """Whether events or a refined start are waiting to be written (after a failed commit,
        or without autocommit)."""
        return len(self.session.journal) > self._saved or not self._start_written

    def _on_change(self, change) -> None:
        if change.region is not None:
            self._regions.append(change.region)
        recent = time.monotonic() - self._start_committed < START_COMMIT_S
        if change.event["type"] == "start" and recent:
            return  # written with the next commit (journal event, close, save)
        if self._autocommit:
            self._autocommit_now()

    def _autocommit_now(self) -> None:
        try:
            self.commit()
        except ProjectError as error:
            if self.on_error is None:
                raise
            self.on_error(error)

    def commit(self) -> int:
        """Write the pending events, dirty mask tiles and changed patch deltas in one transaction.

        Returns the number of events written.

        Raises
        ------
        ProjectError
            Disk full or file not writable; everything stays pending for the next commit.
        """
        session = self.session
        events = session.journal[self._saved :]
        deltas = session.patch_deltas()
        blobs = {
            _delta_key(p): _pack_delta(v, d)
            for p, (v, d) in deltas.items()
            if self._versions.get(p) != v
        }
        blobs.update({_delta_key(p): None for p in self._versions if p not in deltas})
        if not events and not blobs and not self._regions and self._start_written:
            return 0
        arrays = {name: getattr(session, name) for name in STATE_LAYERS}
        meta = {"summary": _summary(session)}
        if not self._start_written:
            # float16 tiles of the float32 start, whose values are float16 already
            arrays["base_logits"] = session.base_logits
            meta["start_pending"] = list(self._start_pending)
        self.store.commit(
            events=events,
            arrays=arrays,
            regions=self._regions,
            blobs=blobs,
            meta=meta,
        )
        self._saved += len(events)
        self._regions = []
        self._start_written = True
        self._start_committed = time.monotonic()
        self._versions = {p: v for p, (v, _) in deltas.items()}
        return len(events)

    def refine_start(self, changes) -> None:
        """Show and store the refined start of some patches (see
        ``AnnotationSession.refine_start``; ``changes`` maps patch -> (n, n) change) and
        strike them off :attr:`start_pending`. With autocommit it is written at most every
        ``START_COMMIT_S`` seconds, or with the next commit (a journal event's, :meth:`save`,
        :meth:`close`), the start tiles, the mask they change and what stays pending together:
        a crash loses only batches that are refined again after the reopen.

        Raises
        ------
        ProjectError
            See :meth:`commit`; the patches stay struck off, their start pending in memory.
        """
        done = {int(p) for p in changes}
        self._start_pending = [p for p in self._start_pending if p not in done]
        self._start_written = False  # even if every patch was corrected and keeps its start
        self.session.refine_start(changes)
        if not self._start_pending and self._autocommit and not self._start_written:
            self._autocommit_now()  # the finished start is written at once

    def prefer_start(self, patches) -> None:
        """Refine the start of ``patches`` (those still pending) before the others: where the
        user is about to look."""
        pending = set(self._start_pending)
        first = list(dict.fromkeys(p for p in (int(p) for p in patches) if p in pending))
        chosen = set(first)
        self._start_pending = first + [p for p in self._start_pending if p not in chosen]

    def save(self) -> int:
        """Commit what is pending and checkpoint the log into the project file, so that the
        ``.etmira`` file alone (copied, backed up) holds all the work. Returns the number of
        events written.

        Raises
        ------
        ProjectError
            See :meth:`commit` and ``ProjectStore.checkpoint``.
        """
        written = self.commit()
        self.store.checkpoint()
        return written

    def save_as(
        self, path: str | os.PathLike, *, progress: Callable[[int, int], None] | None = None
    ) -> None:
        """Write a consistent copy to `path` and continue working in it (the old file stays
        as it was at this moment)."""
        self.commit()
        self.store.backup(path, progress=progress)
        replacement = ProjectStore.open(path, check="none")
        self.store.close()
        self.store = replacement

    def backup(
        self, path: str | os.PathLike, *, progress: Callable[[int, int], None] | None = None
    ) -> None:
        """Write a consistent copy to `path` and keep working in this file."""
        self.commit()
        self.store.backup(path, progress=progress)

    def prepare_refiner(self) -> None:
        """Start building a deferred refiner in the background (the app calls it once the view
        is shown), so that the first stroke does not wait for it; otherwise nothing."""
        if isinstance(self.refiner, DeferredRefiner):
            self.refiner.build_in_background()

    def relocate_view(self, records: dict) -> None:
        """Record the view's files at their new place (``records`` from :func:`view_records`),
        so that the project opens from there."""
        meta = self.store.meta()
        self.store.commit(meta={"view": {**meta["view"], "files": dict(records)}})

    def summary(self) -> dict:
        """Effort and progress figures (see :func:`project_summary`), with scores when the
        view has ground truth."""
        out = _summary(self.session)
        scores = self.session.scores()
        if scores is not None:
            out.update(pfm=scores["pfm"], iou=scores["iou"])
        return out

    def close(self) -> None:
        """Commit what is pending and close the file (releases the lock). Idempotent.

        A read-only project forgets its in-memory changes."""
        if self.store.closed:
            return
        if isinstance(self.refiner, DeferredRefiner):
            self.refiner.wait()
        try:
            if not self.store.readonly and (self.dirty or self._regions):
                self.commit()
        finally:
            self.session.remove_listener(self._on_change)
            self.store.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _summary(session: AnnotationSession) -> dict:
    done = int(np.count_nonzero(session.queue.done))
    return {
        **session.effort(),
        "patches_done": done,
        "patches": len(session.grid),
        "coverage": float(session.coverage()),
    }


def _delta_key(patch: int) -> str:
    return f"delta/{int(patch):06d}"


def _pack_delta(version: int, delta: np.ndarray) -> bytes:
    delta = np.ascontiguousarray(delta, dtype="<f2")
    header = np.array([version, *delta.shape], dtype="<i8")
    return header.tobytes() + delta.tobytes()


def _unpack_delta(path: str, data: bytes) -> tuple[int, np.ndarray]:
    header = np.frombuffer(data[:24], dtype="<i8")
    if (
        len(header) != 3
        or header[1] < 1
        or header[2] < 1
        or len(data) != 24 + 2 * int(header[1]) * int(header[2])
    ):
        raise ProjectError(path, "the project file is damaged (a refined patch)")
    # a read-only view of the blob, no copy: the session never modifies a patch change
    delta = np.frombuffer(data, "<f2", offset=24).reshape(header[1:])
    return int(header[0]), delta.astype(np.float16, copy=False)


def _grid(meta: dict, shape) -> PatchGrid:
    return PatchGrid(*shape, **meta.get("grid", {}))


def create_project(
    path: str | os.PathLike,
    view,
    base_logits: np.ndarray,
    *,
    refine=None,
    models: dict | None = None,
    grid=None,
    inputs=("depth",),
    image=None,
    start_pending=(),
    overwrite: bool = False,
    autocommit: bool = True,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Project:
    """Create a project from a loaded view and its base logits; returns it open.

    Parameters
    ----------
    path : path-like
        The new project file (``.etmira``).
    view : MirrorView or StoredView
        As ``refinement_model.views.load_view`` returns it (its files are recorded).
    base_logits : (H, W) float ndarray
        The base model's stitched logits of the view (|logit| < 65504); rounded to float16,
        as the project stores them, before the session starts from them (float16 is used as
        given, without a copy).
    refine : callable or object with ``refine``, optional
        The refiner for the session (see ``annotator.core.refiners``).
    models : dict, optional
        ``{"base": record, "refiner": record}`` with records from :func:`file_record` plus
        ``"metadata"``; stored as the models' identities.
    grid : PatchGrid, optional
        The patch grid (default: the paper's); stored.
    inputs : sequence of str
        The refiner's image channels.
    image : (C, H, W) float32 ndarray, optional
        The network inputs, if already computed (else made from the view when first needed).
    start_pending : sequence of int, optional
        Patches whose start is still to refine (``base_logits`` is then the base network's;
        see :meth:`Project.refine_start`), kept worst first by the session's queue scores.
    overwrite, autocommit, progress, cancel
        See ``ProjectStore.create`` and :class:`Project`.
    """
    # a StoredView (tests, benchmarks) has no files
    files = view_records(view.files) if getattr(view, "files", None) is not None else {}
    options = {key: value for key, value in (("grid", grid), ("image", image)) if value is not None}
    # Stored as float16 (half the file, and read back in half the time); the session starts
    # from the same rounded values, so that reopening replays exactly what was done.
    stored_logits = np.asarray(base_logits).astype(np.float16, copy=False)
    base_logits = stored_logits.astype(np.float32)
    session = AnnotationSession(view, base_logits, refine, inputs=inputs, **options)
    grid = session.grid
    meta = {
        "format": FORMAT,
        "view": {"view_id": view.view_id, "px_per_mm": float(view.px_per_mm), "files": files},
        "models": dict(models or {}),
        "grid": {"patch_size": grid.patch_size, "stride": grid.stride, "net_size": grid.net_size},
        "inputs": list(inputs),
        "summary": _summary(session),
        "start_pending": _worst_first(session, start_pending),
    }
    layers = {
        "base_logits": stored_logits,
        "mirror_mask": np.asarray(view.mirror_mask),
        **{name: getattr(session, name) for name in STATE_LAYERS},
    }
    store = ProjectStore.create(
        path, layers=layers, meta=meta, overwrite=overwrite, progress=progress, cancel=cancel
    )
    return Project(store, session, autocommit=autocommit, refiner=refine)


def new_project(
    path: str | os.PathLike,
    view_path: str | os.PathLike,
    *,
    base,
    refiner=None,
    refiner_options: RefinerOptions,
    loader: NetworkLoader,
    view_id: str | None = None,
    overwrite: bool = False,
    with_refiner: bool = True,
    start_later: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Project:
    """Load a view, run the base model over it and create the project (see
    :func:`create_project`).

    Parameters
    ----------
    path : path-like
    view_path : path-like or MirrorView
        A view folder or data-set root (with `view_id`), as ``load_view`` takes, or the view
        already loaded. Only the maps the networks read are loaded (the shipped ones: depth).
    base : path-like
        Base model checkpoint.
    refiner : path-like, optional
        Refiner checkpoint; without one the session only burns strokes in.
    refiner_options : RefinerOptions
        How the session's refiner refines (recorded: reopening refines the same way); the
        start refines with ``refinement_model.start.START_REFINEMENT``.
    loader : NetworkLoader
        What builds the networks.
    with_refiner : bool, keyword-only
        Build the refiner for the returned session; False only records it (for a caller that
        closes the project at once: the start's refiner is built alone).
    start_later : bool, keyword-only
        With a refiner: start from the base network's prediction (seconds, where the refined
        start takes minutes on a full-size view) and leave the refiner's part of the start to
        :meth:`Project.refine_start`: the patches holding some of the mirror are
        :attr:`Project.start_pending`, worst first, and :attr:`Project.start_predictor` keeps
        the networks that refine them.
    progress : callable(done, total), optional
        Over the base model's patches.
    """
    from refinement_model.start import START_REFINEMENT, start_predictor, start_record

    if os.path.exists(path) and not overwrite:
        raise ProjectError(path, "already exists (choose another name or overwrite it)")
    view = (
        view_path
        if isinstance(view_path, MirrorView)
        else load_view(view_path, view_id, maps=("depth",), cancel=cancel)
    )
    predictor = loader.predictor(base)
    models, inputs = {"base": _model_record(base)}, predictor.net.spec.inputs
    patch_refiner = start_refiner = None
    if refiner is not None:
        spec, _ = read_spec(refiner)
        if spec.kind != "refiner":
            raise InputError(refiner, f"this is a {spec.kind} checkpoint, not a refiner")
        if with_refiner:
            patch_refiner = loader.refiner(refiner, refiner_options)
            # the session's refiner, with the start's options: its network is built once
            start_refiner = patch_refiner.with_options(START_REFINEMENT)
        else:
            start_refiner = loader.refiner(refiner, START_REFINEMENT)
        # reopening refines as this session does (the undo of a stroke may need it)
        models["refiner"] = {**_model_record(refiner), **refiner_options.as_record()}
        inputs = spec.inputs
    view = with_maps(view, _display_maps_read_by((*predictor.net.spec.inputs, *inputs)))
    base_predictor, predictor = predictor, start_predictor(predictor, start_refiner)
    models["start"] = start_record(predictor)
    start_later = start_later and start_refiner is not None
    grid = predictor.grid(*view.shape)
    # in place: on a full-size view every float32 copy is 240 MB
    base_logits = (base_predictor if start_later else predictor).predict_view(
        view, progress=progress, cancel=cancel
    )
    pending = np.flatnonzero(grid.patches_holding(view.mirror_mask)) if start_later else ()
    np.clip(base_logits, PROBABILITY_CLIP, 1 - PROBABILITY_CLIP, out=base_logits)
    logit(base_logits, out=base_logits)
    # rounded here, as the project stores them, so that no float32 copy outlives this line
    base_logits = base_logits.astype(np.float16)
    project = create_project(
        path,
        view,
        base_logits,
        refine=patch_refiner,
        models=models,
        grid=grid,
        inputs=tuple(inputs),
        start_pending=pending,
        overwrite=overwrite,
    )
    # the networks are kept only if they have the start to finish
    project.start_predictor = predictor if project.start_pending else None
    return project


def _display_maps_read_by(inputs) -> tuple[str, ...]:
    """The maps besides depth that networks reading ``inputs`` need."""
    return tuple(name for name in DISPLAY_MAPS if name in inputs)


def _stored_deltas(store: ProjectStore) -> dict:
    deltas = {}
    for key, data in store.blobs("delta/").items():
        patch = key.removeprefix("delta/")
        if not patch.isdigit():
            raise ProjectError(store.path, "the project file is damaged (a refined patch)")
        deltas[int(patch)] = _unpack_delta(store.path, data)
    return deltas


def _adapted_refiners(store: ProjectStore, refine):
    """The adapted refiner of each stored ``adapt`` event, for the replay to recompute a patch
    version one made whose change is not stored; built only then (it imports PyTorch)."""
    if refine is None:
        return None

    @functools.cache
    def adapted(update: int):
        from annotator.core.adaptation import stored_adapted_refiner

        base = refine.build() if isinstance(refine, DeferredRefiner) else refine
        return stored_adapted_refiner(store, base, update)

    return adapted


def _replay(store: ProjectStore, meta: dict, view, refine, base_logits, cancel):
    try:
        return AnnotationSession.replay(
            view,
            base_logits,
            refine,
            store.events(),
            patch_deltas=_stored_deltas(store),
            grid=_grid(meta, base_logits.shape),
            inputs=tuple(meta.get("inputs", ("depth",))),
            adapted_refiners=_adapted_refiners(store, refine),
            cancel=cancel,
        )
    except ValueError as error:
        raise ProjectError(store.path, f"the project's journal does not replay ({error})") from None


def replay_stored(
    store: ProjectStore, *, cancel: Callable[[], bool] | None = None
) -> AnnotationSession:
    """The session a project file holds, rebuilt from the file alone (no view maps, no model:
    the stored patch changes stand in for the refiner). For export and inspection."""
    meta = _checked_meta(store)
    view = StoredView(
        meta["view"]["view_id"], store.read_layer("mirror_mask"), float(meta["view"]["px_per_mm"])
    )
    return _replay(store, meta, view, None, _base_logits(store), cancel)


def _base_logits(store: ProjectStore, **options) -> np.ndarray:
    """The stored base logits as the session's float32 (stored float16; older projects
    float32)."""
    return store.read_layer("base_logits", **options).astype(np.float32, copy=False)


def _worst_first(session: AnnotationSession, patches) -> list[int]:
    patches = np.asarray(patches, dtype=np.int64)
    return patches[np.argsort(-session.queue.scores[patches], kind="stable")].tolist()


def _start_pending(store: ProjectStore, patches: int) -> list[int]:
    pending = store.meta().get("start_pending", [])
    if not isinstance(pending, list) or not all(
        isinstance(p, int) and not isinstance(p, bool) and 0 <= p < patches for p in pending
    ):
        raise ProjectError(store.path, "the project file is damaged (the start's pending patches)")
    return pending


def _checked_meta(store: ProjectStore) -> dict:
    meta = store.meta()
    if meta.get("format") != FORMAT or not {"view", "grid"} <= set(meta):
        raise ProjectError(store.path, "the project file is damaged (metadata missing)")
    return meta


def project_summary(store: ProjectStore) -> dict:
    """The figures a project stored at its last commit: ``strokes``, ``annotated_pixels``,
    ``time_s``, ``accepted``, ``rejected``, ``patches_done``, ``patches``, ``coverage``."""
    return dict(store.meta().get("summary", {}))


def _load_refiner(meta: dict, warnings: list, loader: NetworkLoader):
    record = meta.get("models", {}).get("refiner")
    if record is None:
        return None
    if not os.path.exists(record["path"]):
        warnings.append(f"the refiner {record['path']} is missing: strokes are not refined")
        return None
    if changed_files({"refiner": record}):
        warnings.append(f"the refiner {record['path']} changed since the project was made")
    return DeferredRefiner(
        record["path"], options=RefinerOptions.from_record(record), loader=loader
    )


def open_project(
    path: str | os.PathLike,
    *,
    view=None,
    refine="stored",
    readonly: bool = False,
    autocommit: bool = True,
    loader: NetworkLoader = _DEFAULT_LOADER,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Project:
    """Open a project: its session rebuilt exactly (mask, undo / redo stacks, patch queue).

    Parameters
    ----------
    path : path-like
    view : MirrorView or path-like, optional
        The view, if already loaded or moved; default: load it from the recorded files. Only
        the maps the project's networks read are loaded (the shipped ones: depth); the
        session's view lacks the others (``refinement_model.views.load_maps`` reads them).
    refine : "stored", None, callable or object with ``refine``, keyword-only
        ``"stored"``: the recorded refiner checkpoint (if any) as a :class:`DeferredRefiner`,
        built when first needed or by :meth:`Project.prepare_refiner` (the stored patch
        changes replay the journal without it).
    readonly : bool, keyword-only
        Open without the lock and never write (autocommit is then off).
    loader : NetworkLoader, keyword-only
        What builds the stored refiner (default: the backend chosen automatically, exported
        in memory; the app passes ``refinement_model.network_loader.app_loader()``).
    progress, cancel : optional
        ``progress(done, total)`` over loading the view, then over reading the base logits.

    Raises
    ------
    ProjectError
        Not a project, damaged, open elsewhere, or a journal that does not replay.
    InputError
        The view's files cannot be loaded.
    """
    stored_refiner = isinstance(refine, str)
    if stored_refiner and refine != "stored":
        raise ValueError(f"refine must be 'stored', None or a refine function, got {refine!r}")
    store = ProjectStore.open(path, readonly=readonly)
    try:
        meta = _checked_meta(store)
        warnings = changed_files(meta["view"]["files"]) if view is None else []
        # the display's maps are read afterwards (views.load_maps): only the networks' now
        maps = ("depth", *_display_maps_read_by(meta.get("inputs", ("depth",))))
        if view is None:
            if "depth" not in meta["view"]["files"]:
                raise ProjectError(path, "the project records no view files: give the view")
            view = load_view(
                meta["view"]["files"]["depth"]["path"],
                maps=maps,
                progress=progress,
                cancel=cancel,
            )
        elif isinstance(view, (str, os.PathLike)):
            view = load_view(
                view, meta["view"]["view_id"], maps=maps, progress=progress, cancel=cancel
            )
        elif isinstance(view, MirrorView):
            view = with_maps(view, maps[1:], cancel=cancel)
        refine = _load_refiner(meta, warnings, loader) if stored_refiner else refine
        base_logits = _base_logits(store, progress=progress, cancel=cancel)
        if base_logits.shape != view.mirror_mask.shape:
            raise InputError(
                path,
                f"the project is for a view of {base_logits.shape} pixels, "
                f"this view has {view.mirror_mask.shape}",
            )
        session = _replay(store, meta, view, refine, base_logits, cancel)
        # User map and provenance follow from the same state: checking the mask suffices.
        # Compared in place (the stored copy is not needed afterwards): no view-sized temporary.
        stored = store.read_layer("mask")
        consistent = (
            stored.shape == session.mask.shape
            and not np.logical_xor(stored, session.mask, out=stored).any()
        )
        project = Project(
            store,
            session,
            autocommit=autocommit and not readonly,
            warnings=warnings,
            refiner=refine,
        )
        if not consistent:
            project.warnings += (
                "the stored mask differed from the replay of the journal; "
                "the journal's result is kept",
            )
            if not readonly:
                project._regions.append((0, 0, *base_logits.shape))
                project.commit()
        return project
    except BaseException:
        store.close()
        raise
