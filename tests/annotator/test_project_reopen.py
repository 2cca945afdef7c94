"""Reopening a project needs no network: the stored start logits and patch changes replay the
work bit for bit, and the refiner is built only when a stroke needs it (or in the background)."""

import os
import subprocess
import sys

import numpy as np
import pytest

import refinement_model.inference as inference
from annotator.core.project import DeferredRefiner, new_project, open_project
from refinement_model.strokes import Stroke
from tests.annotator.test_cli_project import make_models, make_strokes, make_view

pytestmark = pytest.mark.slow  # tiny torch models, but exports and imports take seconds

LAYERS = ("mask", "user_map", "provenance", "probabilities")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A project with strokes (refined by the tiny refiner), its backup before one more
    stroke, and the state after that stroke."""
    root = tmp_path_factory.mktemp("reopen")
    view, _ = make_view(root / "view")
    base, refiner = make_models(root / "models")
    path, copy = root / "p.etmira", root / "copy.etmira"
    with new_project(path, view, base=base, refiner=refiner) as project:
        for stroke in make_strokes(3, seed=5):
            project.session.apply_stroke(stroke)
        project.session.undo()
        state = {name: np.array(getattr(project.session, name)) for name in LAYERS}
        start = project.session.base_logits.copy()
        project.backup(copy)
        extra = Stroke("add", [(20, 70), (90, 75)], 2.5)
        project.session.apply_stroke(extra)
        after = np.array(project.session.mask)
    return {
        "path": path,
        "copy": copy,
        "state": state,
        "start": start,
        "extra": extra,
        "after": after,
    }


def test_reopen_builds_no_network_and_equals_the_saved_state(saved, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("reopening built a network")

    monkeypatch.setattr(inference, "PatchRefiner", refuse)
    monkeypatch.setattr(inference, "Predictor", refuse)
    with open_project(saved["copy"], readonly=True) as project:
        session = project.session
        assert isinstance(project.refiner, DeferredRefiner) and not project.refiner.built
        assert session.base_logits.dtype == np.float32
        # the session starts from the stored (float16) start logits, not from a new prediction
        stored = project.store.read_layer("base_logits")
        assert stored.dtype == np.float16
        np.testing.assert_array_equal(session.base_logits, stored.astype(np.float32))
        np.testing.assert_array_equal(session.base_logits, saved["start"])
        for name in LAYERS:
            reopened = getattr(session, name)
            assert reopened.dtype == saved["state"][name].dtype
            np.testing.assert_array_equal(reopened, saved["state"][name], err_msg=name)
        assert session.can_redo and not project.refiner.built


def test_the_deferred_refiner_refines_as_the_original_did(saved):
    with open_project(saved["copy"], readonly=True) as project:
        assert not project.refiner.built
        project.session.apply_stroke(saved["extra"])
        assert project.refiner.built
        np.testing.assert_array_equal(project.session.mask, saved["after"])


def test_prepare_refiner_builds_in_the_background(saved):
    with open_project(saved["copy"], readonly=True) as project:
        project.prepare_refiner()
        project.refiner.wait()
        assert project.refiner.built
        refiner = project.refiner.build()
        assert isinstance(refiner, inference.PatchRefiner)
        assert (refiner.orientations, refiner.iterations) == (
            inference.APP_ORIENTATIONS,
            inference.APP_ITERATIONS,
        )


def test_reopening_does_not_import_torch(saved):
    script = (
        "import sys; from annotator.core.project import open_project\n"
        f"project = open_project({str(saved['copy'])!r}, readonly=True)\n"
        "project.close(); print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_the_app_window_does_not_import_torch_until_adaptation_is_on():
    # the window module (with its adaptation toggle, off by default) must not pay for torch
    script = "import sys; import annotator.qt.main_window; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert result.stdout.strip() == "False"
