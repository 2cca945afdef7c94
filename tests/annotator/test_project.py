"""A session bound to its project file: reopen, save as, backup, full disk, changed view."""

import sqlite3

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotator.core.project import StoredView, create_project, open_project
from annotator.core.refiners import SpreadRefiner
from annotator.core.session import AnnotationSession
from refinement_model.errors import ProjectError
from refinement_model.imageio import write_tiff
from refinement_model.patches import PatchGrid
from refinement_model.views import load_view
from tests.annotator.test_cli_project import SHAPE, make_strokes, make_view

GRID = PatchGrid(*SHAPE, patch_size=64, stride=32, net_size=64)


@pytest.fixture(scope="module")
def view_folder(tmp_path_factory):
    folder, _ = make_view(tmp_path_factory.mktemp("project") / "view")
    return folder


@pytest.fixture
def project(view_folder, tmp_path):
    view = load_view(view_folder)
    base = np.random.default_rng(0).normal(-2, 1.5, SHAPE).astype(np.float32)
    with create_project(
        tmp_path / "p.etmira", view, base, refine=SpreadRefiner(), grid=GRID
    ) as created:
        yield created


def test_reopen_restores_mask_history_and_queue(project):
    session = project.session
    for stroke in make_strokes(5, seed=2):
        session.apply_stroke(stroke)
    session.undo()
    session.mark_done(3)
    expected = session.mask.copy()
    path = project.path
    project.close()
    with open_project(path, refine=SpreadRefiner()) as again:
        reopened = again.session
        np.testing.assert_array_equal(reopened.mask, expected)
        np.testing.assert_array_equal(reopened.user_map, session.user_map)
        assert reopened.strokes == session.strokes and reopened.can_undo
        assert not reopened.can_redo  # marking done after the undo cleared the redo stack
        assert reopened.queue.done[3] and reopened.grid.patch_size == 64
        assert again.summary()["strokes"] == 4 and again.summary()["patches_done"] == 1
        reopened.undo()  # undoes "done", then a stroke: the history survived
        reopened.undo()
        session.undo()
        session.undo()
        np.testing.assert_array_equal(reopened.mask, session.mask)
        assert again.store.event_count() == 9


def test_save_as_continues_in_the_copy_and_backup_does_not(project, tmp_path):
    session = project.session
    first, second, third = make_strokes(3, seed=3)
    session.apply_stroke(first)
    original = project.path
    project.backup(tmp_path / "backup.etmira")
    session.apply_stroke(second)
    project.save_as(tmp_path / "copy.etmira")
    assert project.path == str(tmp_path / "copy.etmira")
    session.apply_stroke(third)
    project.close()
    counts = {}
    for name in ("p.etmira", "backup.etmira", "copy.etmira"):
        with open_project(tmp_path / name, refine=None, readonly=True) as opened:
            counts[name] = len(opened.session.journal)
    assert counts == {"p.etmira": 2, "backup.etmira": 1, "copy.etmira": 3}
    assert original == str(tmp_path / "p.etmira")


class _FullDisk:
    """A connection whose commits fail as SQLite's do on a full disk (the store's own test
    fills a real database with ``max_page_count``)."""

    def __init__(self, connection):
        self.connection = connection

    def execute(self, sql, *args):
        if sql == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return self.connection.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.connection, name)


def test_full_disk_keeps_the_work_pending_until_a_commit_succeeds(project):
    session = project.session
    strokes = make_strokes(3, seed=5)
    session.apply_stroke(strokes[0])
    connection = project.store._db
    project.store._db = _FullDisk(connection)
    with pytest.raises(ProjectError, match="disk is full"):
        session.apply_stroke(strokes[1])
    assert project.dirty
    errors = []
    project.on_error = errors.append
    session.apply_stroke(strokes[2])  # reported, not raised
    assert len(errors) == 1 and project.dirty
    assert project.store.event_count() == 1  # the failed transactions left nothing
    project.store._db = connection
    assert project.commit() == 2 and not project.dirty
    expected, path = session.mask.copy(), project.path
    project.close()
    with open_project(path, refine=None) as again:
        np.testing.assert_array_equal(again.session.mask, expected)
        assert len(again.session.journal) == 3


def test_changed_view_file_is_reported_on_open(project, view_folder, tmp_path):
    path = project.path
    project.close()
    albedo = view_folder / "V_RHO.tif"
    write_tiff(albedo, np.random.default_rng(9).random(SHAPE).astype(np.float32), px_per_mm=10.0)
    with open_project(path, refine=None) as again:
        assert any("albedo" in warning and "changed" in warning for warning in again.warnings)


def test_missing_refiner_warns_and_missing_view_files_are_an_error(view_folder, tmp_path):
    view = load_view(view_folder)
    base = np.zeros(SHAPE, np.float32)
    missing = {
        "path": str(tmp_path / "gone.safetensors"),
        "size": 1,
        "mtime_ns": 1,
        "sha256": "0" * 64,
        "metadata": {},
    }
    create_project(tmp_path / "a.etmira", view, base, models={"refiner": missing}).close()
    with open_project(tmp_path / "a.etmira") as again:
        assert again.warnings == (
            f"the refiner {missing['path']} is missing: strokes are not refined",
        )
    stored = StoredView("S", view.mirror_mask, 10.0)
    create_project(tmp_path / "b.etmira", stored, base).close()
    with pytest.raises(ProjectError, match="records no view files"):
        open_project(tmp_path / "b.etmira")
    with open_project(tmp_path / "b.etmira", view=stored) as again:
        assert again.session.view is stored


ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("stroke"), st.integers(0, 10_000)),
        st.tuples(st.just("undo"), st.just(0)),
        st.tuples(st.just("redo"), st.just(0)),
        st.tuples(st.just("done"), st.integers(0, len(GRID) - 1)),
        st.tuples(st.just("reopen"), st.just(0)),
        st.tuples(st.just("save_as"), st.just(0)),
    ),
    max_size=12,
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(actions=ACTIONS)
def test_any_edits_and_reopens_give_the_journal_replay(view_folder, tmp_path_factory, actions):
    view = load_view(view_folder)
    base = np.random.default_rng(1).normal(-2, 1.5, SHAPE).astype(np.float32)
    folder = tmp_path_factory.mktemp("prop")
    path = folder / "p.etmira"
    project = create_project(path, view, base, refine=SpreadRefiner(), grid=GRID)
    try:
        for kind, value in actions:
            session = project.session
            if kind == "stroke":
                session.apply_stroke(make_strokes(1, seed=value)[0])
            elif kind == "undo" and session.can_undo:
                session.undo()
            elif kind == "redo" and session.can_redo:
                session.redo()
            elif kind == "done":
                session.mark_done(value, not session.queue.done[value])
            elif kind == "save_as":
                path = folder / f"{path.stem}-copy.etmira"
                project.save_as(path)
            elif kind == "reopen":
                before = session.mask.copy()
                project.close()
                project = open_project(path, view=view, refine=SpreadRefiner())
                np.testing.assert_array_equal(project.session.mask, before)
        # the project keeps the base logits in float16, and its session starts from those
        stored = base.astype(np.float16).astype(np.float32)
        replayed = AnnotationSession.replay(
            view, stored, SpreadRefiner(), project.session.journal, grid=GRID
        )
        np.testing.assert_array_equal(project.session.mask, replayed.mask)
    finally:
        project.close()


def test_after_save_the_project_file_alone_holds_every_stroke(project, tmp_path):
    import shutil

    session = project.session
    for stroke in make_strokes(4, seed=5):
        session.apply_stroke(stroke)
    copy = tmp_path / "copied.etmira"
    shutil.copyfile(project.path, copy)  # without -wal: the strokes are still in the log
    with open_project(copy, refine=SpreadRefiner(), readonly=True) as unsaved:
        assert len(unsaved.session.strokes) < 4
    project.save()
    # copied while the project is still open, as a backup program would
    copy = tmp_path / "copied_after_save.etmira"
    shutil.copyfile(project.path, copy)
    with open_project(copy, refine=SpreadRefiner(), readonly=True) as saved:
        assert saved.session.strokes == session.strokes
        np.testing.assert_array_equal(saved.session.mask, session.mask)
    session.apply_stroke(make_strokes(1, seed=6)[0])  # the work goes on, each stroke committed
    assert project.store.event_count() == 5 and not project.dirty


def test_a_view_is_found_by_its_maps_content_not_its_path(project, view_folder, tmp_path):
    import shutil

    from annotator.core.project import find_view_project

    folder = tmp_path  # the project fixture lives here
    assert find_view_project(folder, load_view(view_folder).files) == (project.path, None)
    copy = shutil.copytree(view_folder, tmp_path / "elsewhere" / "view")
    found, records = find_view_project(folder, load_view(copy).files)
    assert found == project.path and records["depth"]["path"].startswith(str(copy))
    project.relocate_view(records)
    assert find_view_project(folder, load_view(copy).files) == (project.path, None)
    other = shutil.copytree(view_folder, tmp_path / "other" / "view")
    files = load_view(other).files
    data = bytearray(files.depth.read_bytes())
    data[-1] ^= 0xFF  # same size, other content: another view (only hashed, never loaded)
    files.depth.write_bytes(bytes(data))
    assert find_view_project(folder, files) == (None, None)
