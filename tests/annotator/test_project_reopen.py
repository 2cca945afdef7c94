"""A project builds its networks with the loader and options its caller gives; reopening one
needs no network: the stored start logits and patch changes replay the work bit for bit, and the
refiner is built only when a stroke needs it (or in the background)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from annotator.core.project import DeferredRefiner, new_project, open_project
from annotator.core.project_store import ProjectStore
from refinement_model.network_loader import NetworkLoader
from refinement_model.patch_refiner import PatchRefiner
from refinement_model.refiner_options import APP_REFINEMENT, ONE_PASS, RefinerOptions
from refinement_model.start import START_REFINEMENT
from refinement_model.strokes import Stroke
from tests.annotator.test_cli_project import make_models, make_strokes, make_view

pytestmark = pytest.mark.slow  # tiny torch models, but imports take seconds

# eager PyTorch computes the logits the exported networks would, without exporting
EAGER = NetworkLoader(backend="eager")

LAYERS = ("mask", "user_map", "provenance", "probabilities")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A project with strokes (refined by the tiny refiner), its backup before one more
    stroke, and the state after that stroke."""
    root = tmp_path_factory.mktemp("reopen")
    view, _ = make_view(root / "view")
    base, refiner = make_models(root / "models")
    path, copy = root / "p.etmira", root / "copy.etmira"
    with new_project(
        path, view, base=base, refiner=refiner, refiner_options=APP_REFINEMENT, loader=EAGER
    ) as project:
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


class RecordingLoader:
    """The eager loader, noting what it was asked to build."""

    def __init__(self):
        self.built = []

    def predictor(self, checkpoint):
        self.built.append(("predictor", str(checkpoint)))
        return EAGER.predictor(checkpoint)

    def refiner(self, checkpoint, options):
        self.built.append(("refiner", str(checkpoint), options))
        return EAGER.refiner(checkpoint, options)


def test_a_new_project_refines_with_the_options_and_networks_it_is_given(tmp_path):
    view, _ = make_view(tmp_path / "view")
    base, refiner = make_models(tmp_path / "models")
    loader, options = RecordingLoader(), RefinerOptions(orientations=2)
    with new_project(
        tmp_path / "p.etmira",
        view,
        base=base,
        refiner=refiner,
        refiner_options=options,
        loader=loader,
    ) as project:
        # one network each: the start shares the session refiner's
        assert loader.built == [("predictor", str(base)), ("refiner", str(refiner), options)]
        assert project.refiner.options == options and project.refiner.net.backend == "eager"
        models = project.store.meta()["models"]
        assert (models["refiner"]["orientations"], models["refiner"]["iterations"]) == (2, 1)
        assert models["start"]["orientations"] == START_REFINEMENT.orientations
        assert models["start"]["iterations"] == START_REFINEMENT.iterations
    reopening = RecordingLoader()
    with open_project(tmp_path / "p.etmira", readonly=True, loader=reopening) as project:
        assert project.refiner.options == options and reopening.built == []
        project.refiner.build()
        assert reopening.built == [("refiner", str(refiner), options)]


class RefusingLoader:
    """A loader that fails the test if anything asks it for a network."""

    def predictor(self, checkpoint):
        raise AssertionError("reopening built a network")

    refiner = predictor


def test_reopen_builds_no_network_and_equals_the_saved_state(saved):
    with open_project(saved["copy"], readonly=True, loader=RefusingLoader()) as project:
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
    with open_project(saved["copy"], readonly=True, loader=EAGER) as project:
        assert not project.refiner.built
        project.session.apply_stroke(saved["extra"])
        assert project.refiner.built
        np.testing.assert_array_equal(project.session.mask, saved["after"])


def test_prepare_refiner_builds_in_the_background(saved):
    with open_project(saved["copy"], readonly=True, loader=EAGER) as project:
        project.prepare_refiner()
        project.refiner.wait()
        assert project.refiner.built
        refiner = project.refiner.build()
        assert isinstance(refiner, PatchRefiner) and refiner.net.backend == "eager"
        assert refiner.options == APP_REFINEMENT and refiner.net.orientations == 4


def test_a_project_that_recorded_no_refiner_options_reopens_refining_once(saved, tmp_path):
    # projects made before the app averaged orientations, or refined again, refined once
    old = tmp_path / "old.etmira"
    old.write_bytes(saved["copy"].read_bytes())
    with ProjectStore.open(old) as store:
        models = store.meta()["models"]
        del models["refiner"]["orientations"], models["refiner"]["iterations"]
        store.commit(meta={"models": models})
    with open_project(old, readonly=True, loader=EAGER) as project:
        assert project.refiner.options == ONE_PASS and project.refiner.preview is None
        np.testing.assert_array_equal(project.session.mask, saved["state"]["mask"])
        assert project.refiner.build().options == ONE_PASS


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
