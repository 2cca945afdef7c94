"""Crashes and hostile files: kill -9 during commits, damaged and foreign project files."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from annotator.core.project import create_project, open_project
from annotator.core.project_file import needs_recovery
from annotator.core.refiners import SpreadRefiner
from refinement_model.errors import ProjectError
from refinement_model.strokes import Stroke
from refinement_model.views import load_view
from tests.annotator.test_cli_project import SHAPE, make_strokes, make_view

# Applies the actions of a JSON file to a project, one committed event each, and says when it
# has the project open. Shared with benchmarks/bench_project_crash.py.
DRIVER = """
import json, sys
from annotator.core.project import open_project
from annotator.core.refiners import SpreadRefiner
from refinement_model.strokes import Stroke
actions = json.load(open(sys.argv[2]))
with open_project(sys.argv[1], refine=SpreadRefiner()) as project:
    print("ready", flush=True)
    for action in actions:
        if action == "undo":
            project.session.undo()
        else:
            project.session.apply_stroke(Stroke.from_dict(action))
"""


def make_actions(count, *, seed):
    """Strokes with an undo after every fourth one (undo and redo are journal events too)."""
    actions = []
    for index, stroke in enumerate(make_strokes(count, seed=seed)):
        actions.append(stroke.to_dict())
        if index % 4 == 3:
            actions.append("undo")
    return actions


def reference_masks(path, actions):
    """The mask after each prefix of the actions, applied in memory (nothing written)."""
    with open_project(path, readonly=True, refine=SpreadRefiner()) as project:
        session = project.session
        masks = [session.mask.copy()]
        for action in actions:
            if action == "undo":
                session.undo()
            else:
                session.apply_stroke(Stroke.from_dict(action))
            masks.append(session.mask.copy())
    return masks


def make_project(folder):
    view_folder, _ = make_view(folder / "view")
    view = load_view(view_folder)
    rng = np.random.default_rng(0)
    base = (rng.normal(-2, 1.5, SHAPE)).astype(np.float32)
    create_project(folder / "p.etmira", view, base, refine=SpreadRefiner()).close()
    return folder / "p.etmira"


def kill_round(pristine, work, actions_path, masks, *, delay):
    """Run the driver on a fresh copy, kill -9 it after `delay` s of work, open the survivor.

    Returns ``{"events", "crashed", "exact", "recovered_flag"}``: the events committed, whether
    the project was left needing recovery, whether its mask equals the replay of those events,
    and whether ``Project.recovered`` agreed with :func:`needs_recovery`.
    """
    path = work / "round.etmira"
    for suffix in ("", "-wal", "-shm", ".lock"):
        if os.path.exists(f"{path}{suffix}"):
            os.unlink(f"{path}{suffix}")
    shutil.copyfile(pristine, path)
    child = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(path), str(actions_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    ready = child.stdout.readline().strip() == "ready"
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    if not ready:
        raise RuntimeError("the driver did not start")
    crashed = needs_recovery(path)  # the lock of a dead process is left behind
    with open_project(path, refine=None) as project:
        events = len(project.session.journal)
        exact = bool(np.array_equal(project.session.mask, masks[events]))
        flag = project.recovered == crashed
    # Only a run that finished closes cleanly; a crashed one is clean after reopening.
    return {
        "events": events,
        "crashed": crashed,
        "exact": exact and not needs_recovery(path) and (crashed or events == len(masks) - 1),
        "recovered_flag": flag,
    }


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("faults"))


@pytest.mark.slow
def test_kill_9_loses_at_most_the_event_in_flight(pristine, tmp_path):
    actions = make_actions(30, seed=4)
    masks = reference_masks(pristine, actions)
    (tmp_path / "actions.json").write_text(json.dumps(actions))
    rng = np.random.default_rng(1)
    rounds = [
        kill_round(pristine, tmp_path, tmp_path / "actions.json", masks, delay=rng.uniform(0, 1.0))
        for _ in range(5)
    ]
    assert all(r["exact"] and r["recovered_flag"] for r in rounds), rounds
    assert max(r["events"] for r in rounds) > 0  # kills landed after commits, not all before


def _damaged(pristine, tmp_path, name, change):
    path = tmp_path / name
    shutil.copyfile(pristine, path)
    change(path)
    return path, path.read_bytes()


def _refused(path, before, problem):
    with pytest.raises(ProjectError, match=problem) as caught:
        open_project(path, refine=None)
    assert caught.value.path == str(path)
    assert path.read_bytes() == before  # nothing overwritten
    assert not os.path.exists(f"{path}.lock")


def test_truncated_project_is_refused(pristine, tmp_path):
    def truncate(path):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    _refused(*_damaged(pristine, tmp_path, "t.etmira", truncate), "damaged")
    _refused(
        *_damaged(pristine, tmp_path, "tiny.etmira", lambda p: p.write_bytes(b"SQLite")),
        "not an etmira project",
    )


def test_wrong_schema_version_is_refused(pristine, tmp_path):
    def bump(path):
        connection = sqlite3.connect(path)
        connection.execute("PRAGMA user_version = 99")
        connection.close()

    _refused(*_damaged(pristine, tmp_path, "v.etmira", bump), "schema version 99")


def test_absurd_layer_size_is_refused_before_allocating(pristine, tmp_path):
    def enlarge(path):
        connection = sqlite3.connect(path)
        connection.execute("UPDATE layers SET height = 1000000, width = 1000000")
        connection.commit()
        connection.close()

    _refused(*_damaged(pristine, tmp_path, "huge.etmira", enlarge), "damaged")


def test_png_and_foreign_database_are_not_projects(pristine, tmp_path):
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(300))
    _refused(png, png.read_bytes(), "not an etmira project")

    def foreign(path):
        path.unlink()
        connection = sqlite3.connect(path)
        connection.execute("CREATE TABLE notes (text)")
        connection.commit()
        connection.close()

    _refused(*_damaged(pristine, tmp_path, "f.db", foreign), "another program")
    with pytest.raises(ProjectError, match="no such project"):
        open_project(tmp_path / "missing.etmira")


@pytest.mark.parametrize("seed", range(6))
def test_flipped_bytes_are_refused_or_harmless(pristine, tmp_path, seed):
    with open_project(pristine, readonly=True, refine=None) as project:
        expected = project.session.mask.copy()
    rng = np.random.default_rng(seed)

    def flip(path):
        data = bytearray(path.read_bytes())
        # Skip the 100-byte header: its damage is covered by the tests above.
        for position in rng.integers(100, len(data), size=16):
            data[position] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(data))

    path, before = _damaged(pristine, tmp_path, "b.etmira", flip)
    try:
        with open_project(path, refine=None) as project:
            # Flips in unused space leave the content intact; nothing else may slip through.
            np.testing.assert_array_equal(project.session.mask, expected)
    except ProjectError as error:
        assert "damaged" in str(error) or "does not replay" in str(error)
    assert path.read_bytes() == before


def test_second_instance_is_refused(pristine, tmp_path):
    path = tmp_path / "two.etmira"
    shutil.copyfile(pristine, path)
    with open_project(path, refine=None):
        before = path.read_bytes()
        with pytest.raises(ProjectError, match="another etmira instance"):
            open_project(path, refine=None)
        assert path.read_bytes() == before
        assert os.path.exists(f"{path}.lock")  # the first instance still holds its lock
