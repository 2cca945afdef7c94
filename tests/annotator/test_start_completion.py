"""A first open shows the base prediction and refines the start patch by patch afterwards:
finished, it is the start a whole-view refinement gives; corrected patches keep theirs; the
file holds it at every moment, and a reopened project finishes it."""

import subprocess
import sys

import numpy as np
import pytest

from annotator.core.project import new_project, open_project
from annotator.core.start_completion import StartCompletion, start_completion
from refinement_model.errors import Cancelled
from refinement_model.network_loader import NetworkLoader
from refinement_model.refiner_options import APP_REFINEMENT
from refinement_model.strokes import Stroke
from tests.annotator.test_cli_project import make_models, make_view

pytestmark = pytest.mark.slow  # tiny torch models, but imports take seconds

EAGER = NetworkLoader(backend="eager")
LAYERS = ("mask", "user_map", "provenance", "probabilities")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("start")
    view, _ = make_view(root / "view")
    base, refiner = make_models(root / "models")
    with new_project(
        root / "whole.etmira",
        view,
        base=base,
        refiner=refiner,
        refiner_options=APP_REFINEMENT,
        loader=EAGER,
    ) as whole:
        start = whole.session.base_logits.copy()
        assert whole.start_pending == ()
    return {"view": view, "base": base, "refiner": refiner, "start": start}


def _later(inputs, path):
    return new_project(
        path,
        inputs["view"],
        base=inputs["base"],
        refiner=inputs["refiner"],
        refiner_options=APP_REFINEMENT,
        loader=EAGER,
        start_later=True,
    )


def _clipped(*logits):
    return [np.clip(array, -10, 10) for array in logits]


def _state(session):
    return {name: np.array(getattr(session, name)) for name in LAYERS}


def test_the_finished_start_is_the_whole_view_start(inputs, tmp_path):
    with _later(inputs, tmp_path / "p.etmira") as project:
        session = project.session
        grid = session.grid
        holding = np.flatnonzero(grid.patches_holding(session.view.mirror_mask))
        assert sorted(project.start_pending) == holding.tolist()
        # worst first: the queue's own order of the base prediction
        scores = session.queue.scores[list(project.start_pending)]
        assert np.all(np.diff(scores) <= 0)
        base = session.base_logits.copy()
        assert np.abs(base - inputs["start"]).max() > 0.5  # the refiner changes the start
        completion = StartCompletion(project, loader=EAGER)
        assert (completion.done, completion.total) == (0, len(holding))
        seen = []
        completion.run(progress=lambda done, total: seen.append((done, total)))
        assert seen[-1] == (len(holding), len(holding)) and completion.finished
        assert project.start_predictor is None  # networks let go
        # float16 rounding of each step, not a different start (the whole-view start went
        # through float32 probabilities, whose logits are coarse beyond |logit| ~ 10)
        np.testing.assert_allclose(*_clipped(session.base_logits, inputs["start"]), atol=0.02)
        expected = 1 / (1 + np.exp(-inputs["start"].astype(np.float64)))
        np.testing.assert_allclose(session.probabilities, expected, atol=2e-3)
        project.commit()
        stored = project.store.read_layer("base_logits").astype(np.float32)
        np.testing.assert_array_equal(stored, session.base_logits)
        assert project.store.meta()["start_pending"] == []


def test_corrected_patches_keep_their_start_and_reopening_replays_the_state(inputs, tmp_path):
    path = tmp_path / "p.etmira"
    with _later(inputs, path) as project:
        session = project.session
        before = session.base_logits.copy()
        stroke = Stroke("add", [(20, 30), (40, 32)], 2.5)
        touched = sorted(session.grid.patches_touching(28, 18, 34, 42).tolist())
        session.apply_stroke(stroke)
        completion = StartCompletion(project, loader=EAGER, batch_size=1)
        committed = project.start_pending
        completion.apply(completion.job()())
        # a crash now: the file holds the start of the last commit (the batch is redone)
        with open_project(path, readonly=True, loader=EAGER) as reopened:
            assert reopened.start_pending == committed and not reopened.warnings
        for _ in range(2):
            completion.apply(completion.job()())
        project.commit()
        live = _state(session)
        pending = project.start_pending
        # the file holds the start so far and what is left to refine
        with open_project(path, readonly=True, loader=EAGER) as reopened:
            assert reopened.start_pending == pending
            assert not reopened.warnings  # the stored mask is the journal's replay
            np.testing.assert_array_equal(reopened.session.base_logits, session.base_logits)
            for name, array in live.items():
                np.testing.assert_array_equal(getattr(reopened.session, name), array, name)
        completion.run()
        frozen = np.zeros(session.base_logits.shape, bool)
        for index in touched:
            y0, x0, y1, x1 = session.grid.region(index)
            frozen[y0:y1, x0:x1] = True
        np.testing.assert_array_equal(session.base_logits[frozen], before[frozen])
        changed = np.abs(session.base_logits - before) > 0.1
        assert changed[~frozen].any() and not changed[frozen].any()
        final = _state(session)
    with open_project(path, loader=EAGER) as reopened:
        assert reopened.start_pending == () and not reopened.warnings
        for name, array in final.items():
            np.testing.assert_array_equal(getattr(reopened.session, name), array, name)
        session = reopened.session
        session.undo()  # the stroke's patches refine again from the start they had
        session.redo()
        np.testing.assert_array_equal(session.mask, final["mask"])


def test_a_reopened_project_finishes_its_start_with_networks_it_builds(inputs, tmp_path):
    path = tmp_path / "p.etmira"
    with _later(inputs, path) as project:
        StartCompletion(project, loader=EAGER).apply(StartCompletion(project, loader=EAGER).job()())
        assert project.start_pending
    with open_project(path, loader=EAGER) as reopened:
        assert reopened.start_predictor is None
        completion = start_completion(reopened, loader=EAGER)
        assert completion.done == 2
        completion.run()
        np.testing.assert_allclose(
            *_clipped(reopened.session.base_logits, inputs["start"]), atol=0.02
        )
        assert start_completion(reopened, loader=EAGER) is None


def test_the_start_is_refined_where_the_user_looks_first_and_can_be_cancelled(inputs, tmp_path):
    with _later(inputs, tmp_path / "p.etmira") as project:
        last = project.start_pending[-1]
        project.prefer_start([last, 10**6])
        assert project.start_pending[0] == last
        completion = StartCompletion(project, loader=EAGER, batch_size=1)
        with pytest.raises(Cancelled):
            completion.run(cancel=lambda: completion.done >= 1)
        assert completion.done == 1 and last not in project.start_pending
        # a result for patches no longer pending (done meanwhile) changes nothing
        logits = project.session.base_logits.copy()
        completion.apply(([last], np.ones((1, 64, 64), np.float32)))
        np.testing.assert_array_equal(project.session.base_logits, logits)


def test_without_a_refiner_the_start_is_whole_at_once(inputs, tmp_path):
    with new_project(
        tmp_path / "p.etmira",
        inputs["view"],
        base=inputs["base"],
        refiner_options=APP_REFINEMENT,
        loader=EAGER,
        start_later=True,
    ) as project:
        assert project.start_pending == ()
        assert start_completion(project, loader=EAGER) is None


_FIRST_OPEN = """
import sys
from annotator.core.project import new_project
from annotator.core.start_completion import start_completion
from refinement_model.network_loader import NetworkLoader
from refinement_model.refiner_options import APP_REFINEMENT
view, base, refiner, cache, target = sys.argv[1:6]
loader = NetworkLoader(onnx_cache=cache)
with new_project(target, view, base=base, refiner=refiner, refiner_options=APP_REFINEMENT,
                 loader=loader, start_later=True) as project:
    start_completion(project, loader=loader).run()
    print(project.refiner.net.backend, "torch" in sys.modules)
"""


def test_with_the_exports_cached_a_first_open_and_its_start_need_no_torch(inputs, tmp_path):
    cache = tmp_path / "onnx"
    runs = []
    for name in ("first", "second"):
        args = [inputs["view"], inputs["base"], inputs["refiner"], cache, tmp_path / name]
        result = subprocess.run(
            [sys.executable, "-c", _FIRST_OPEN, *map(str, args)],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(result.stdout.split())
    # the first start exports the networks with PyTorch; the second runs the exports alone
    assert runs == [["onnx", "True"], ["onnx", "False"]]
    with open_project(tmp_path / "second", loader=EAGER) as project:
        np.testing.assert_allclose(
            *_clipped(project.session.base_logits, inputs["start"]), atol=0.02
        )
