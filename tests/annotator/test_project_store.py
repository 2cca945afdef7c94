"""The SQLite project store: round trips, dirty tiles, durability, lock, backup, full disk."""

import json
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from annotator.core.project_file import APPLICATION_ID, lock_path, needs_recovery, read_header
from annotator.core.project_store import ProjectStore
from annotator.core.tile_codec import tile_boxes
from refinement_model.errors import Cancelled, ProjectError


def _layers(rng, shape=(37, 53)):
    return {
        "mask": rng.random(shape) > 0.5,
        "logits": rng.normal(size=shape).astype(np.float16),
        "provenance": rng.integers(0, 4, shape).astype(np.uint8),
        "user": rng.integers(-1, 2, shape).astype(np.int8),
        "probabilities": rng.random(shape).astype(np.float32),
        "empty": np.zeros(shape, bool),  # all-zero odd-sized tiles trip Blosc2 unpadded
        "zeros": np.zeros(shape, np.int16),
    }


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(0)
    layers = _layers(rng)
    with ProjectStore.create(
        tmp_path / "p.etmira", layers=layers, meta={"view": "v"}, tile=16
    ) as opened:
        yield opened, layers


def test_tile_boxes_clips_and_deduplicates():
    assert tile_boxes((10, 10), 4, [(3, 3, 5, 5), (0, 0, 1, 1), (-5, 8, 2, 99)]) == [
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 1),
    ]
    assert tile_boxes((10, 10), 4, [(5, 5, 5, 9)]) == []
    assert len(tile_boxes((10, 10), 4)) == 9


def test_round_trip_exact_for_every_dtype(store):
    opened, layers = store
    assert opened.layer_names == tuple(sorted(layers))
    for name, array in layers.items():
        read = opened.read_layer(name)
        assert read.dtype == array.dtype and read.shape == (37, 53)
        np.testing.assert_array_equal(read, array)
    assert opened.meta() == {"view": "v"}
    assert read_header(opened.path) == (APPLICATION_ID, 1)


def test_commit_rewrites_only_dirty_tiles_and_survives_reopen(store, tmp_path):
    opened, layers = store
    mask = layers["mask"].copy()
    mask[:, :] = True  # changed everywhere, but only one region is declared dirty
    opened.commit(
        events=[{"type": "stroke", "n": 1}],
        arrays={"mask": mask},
        regions=[(0, 0, 3, 3)],
        meta={"effort": {"strokes": 1}},
        blobs={"history/0": b"abc"},
    )
    opened.close()
    with ProjectStore.open(tmp_path / "p.etmira") as again:
        read = again.read_layer("mask")
        expected = layers["mask"].copy()
        expected[:16, :16] = True  # exactly the one dirty tile was written
        np.testing.assert_array_equal(read, expected)
        assert again.events() == [{"type": "stroke", "n": 1}]
        assert again.event_count() == 1
        assert again.meta()["effort"] == {"strokes": 1}
        assert again.blob("history/0") == b"abc" and again.blob("nope") is None
        assert again.blobs("history/") == {"history/0": b"abc"} == again.blobs("hist")
        again.commit(blobs={"history/0": None}, events=[{"n": 2}, {"n": 3}])
        assert again.blobs() == {} and again.events(start=1) == [{"n": 2}, {"n": 3}]


def test_commit_validates_before_writing(store):
    opened, layers = store
    with pytest.raises(ValueError, match="mask"):
        opened.commit(arrays={"mask": layers["mask"].astype(np.uint8)})
    with pytest.raises(ValueError, match="shape"):
        opened.commit(arrays={"new": np.zeros((3, 3), bool)})
    with pytest.raises(ValueError):
        opened.commit(events=[{"bad": float("nan")}])
    assert opened.event_count() == 0


def test_cancelled_commit_keeps_previous_state(store):
    opened, layers = store
    with pytest.raises(Cancelled):
        opened.commit(events=[{"n": 1}], arrays={"mask": ~layers["mask"]}, cancel=lambda: True)
    np.testing.assert_array_equal(opened.read_layer("mask"), layers["mask"])
    assert opened.event_count() == 0


def test_second_instance_is_refused_and_clean_close_needs_no_recovery(store):
    opened, _ = store
    with pytest.raises(ProjectError, match=f"another etmira instance \\(process {os.getpid()}\\)"):
        ProjectStore.open(opened.path)
    assert not needs_recovery(opened.path)  # open, but by a live process
    with ProjectStore.open(opened.path, readonly=True) as reader:
        assert reader.readonly and reader.meta() == {"view": "v"}
        with pytest.raises(ValueError, match="read-only"):
            reader.commit(events=[{}])
    opened.close()
    assert not os.path.exists(lock_path(opened.path))
    assert not needs_recovery(opened.path)


def test_crashed_owner_is_detected_and_taken_over(store):
    opened, layers = store
    path = opened.path
    opened.close()
    script = (
        "import os, numpy as np\n"
        "from annotator.core.project_store import ProjectStore\n"
        f"s = ProjectStore.open({path!r})\n"
        "m = s.read_layer('mask'); m[:] = False\n"
        "s.commit(events=[{'n': 1}], arrays={'mask': m}, regions=[(0, 0, 99, 99)])\n"
        "os._exit(0)\n"  # dies without closing: lock file and WAL stay behind
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert os.path.exists(lock_path(path)) and needs_recovery(path)
    with ProjectStore.open(path) as recovered:
        assert recovered.recovered
        assert not recovered.read_layer("mask").any()
        assert recovered.events() == [{"n": 1}]


def test_create_refuses_existing_file(store):
    opened, layers = store
    with pytest.raises(ProjectError, match="already exists"):
        ProjectStore.create(opened.path, layers=layers)


def test_backup_is_a_closed_consistent_copy(store, tmp_path):
    opened, layers = store
    opened.commit(events=[{"n": 1}])
    copy = tmp_path / "copy.etmira"
    seen = []
    opened.backup(copy, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1]
    assert not needs_recovery(copy)
    with ProjectStore.open(copy, check="full") as again:
        np.testing.assert_array_equal(again.read_layer("logits"), layers["logits"])
        assert again.events() == [{"n": 1}]
    assert sorted(os.listdir(tmp_path)) == [
        "copy.etmira",
        "p.etmira",
        "p.etmira-shm",
        "p.etmira-wal",
        "p.etmira.lock",
    ]
    with pytest.raises(ProjectError, match="project itself"):
        opened.backup(opened.path)


def test_full_disk_is_a_clear_error_and_keeps_the_previous_state(store, tmp_path):
    opened, layers = store
    opened.commit(events=[{"n": 1}], arrays={"mask": layers["mask"]})
    pages = opened._db.execute("PRAGMA page_count").fetchone()[0]
    opened._db.execute(f"PRAGMA max_page_count = {pages}")
    noise = np.random.default_rng(5).random((37, 53)).astype(np.float32)
    with pytest.raises(ProjectError, match="disk is full"):
        opened.commit(events=[{"n": 2}] * 200, arrays={"noise": noise}, meta={"x": "y" * 100000})
    assert opened.events() == [{"n": 1}]
    assert "noise" not in opened.layer_names
    opened.close()
    with ProjectStore.open(opened.path) as again:
        assert again.events() == [{"n": 1}] and "x" not in again.meta()
        np.testing.assert_array_equal(again.read_layer("mask"), layers["mask"])


def test_foreign_sqlite_is_refused_untouched(tmp_path):
    path = tmp_path / "other.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE t (x)")
    connection.commit()
    connection.close()
    before = path.read_bytes()
    with pytest.raises(ProjectError, match="another program"):
        ProjectStore.open(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["other.db"]


def test_progress_reports_every_tile(tmp_path):
    seen = []
    ProjectStore.create(
        tmp_path / "q.etmira",
        layers={"m": np.zeros((40, 40), bool)},
        tile=16,
        progress=lambda done, total: seen.append((done, total)),
    ).close()
    assert seen == [(i, 9) for i in range(1, 10)]
    with ProjectStore.open(tmp_path / "q.etmira") as again:
        assert json.dumps(again.meta()) == "{}"
        with pytest.raises(KeyError, match="no layer 'x'"):
            again.read_layer("x")
