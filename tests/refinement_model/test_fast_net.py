"""FastNet: the optimised path equals eager, in bounded backend runs."""

import numpy as np
import pytest
import torch

from refinement_model.backends import EQUALITY_TOLERANCE
from refinement_model.fast_net import ENGINE_BATCH, FastNet

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_fast_path_equals_eager(base):
    fast = FastNet(base, net_size=64)
    assert fast.optimised
    batch = np.random.default_rng(0).normal(size=(3, 1, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = base(torch.from_numpy(batch))[:, 0].numpy()
    got = fast(batch)
    assert got.shape == (3, 64, 64) and got.dtype == np.float32
    assert np.abs(got - expected).max() < EQUALITY_TOLERANCE
    assert np.abs(FastNet(base, optimise=False)(batch) - expected).max() == 0
    # tracing works on a copy: the caller's network is left as it was
    assert next(base.parameters()).is_contiguous()


def test_large_batches_reach_the_backend_in_bounded_runs(base):
    # the runtime's memory grows with its largest run: orientations x patches stay in runs of
    # ENGINE_BATCH images, with the logits of one run of everything
    fast = FastNet(base, net_size=32, orientations=4)
    sizes = []
    engine = fast.engine
    fast.engine = lambda batch: sizes.append(len(batch)) or engine(batch)
    batch = np.random.default_rng(2).normal(size=(5, 1, 32, 32)).astype(np.float32)
    got = fast(batch)
    assert max(sizes) <= ENGINE_BATCH and sum(sizes) == 4 * len(batch)
    whole = FastNet(base, optimise=False, orientations=4)
    assert np.abs(got - whole(batch)).max() < EQUALITY_TOLERANCE


class _RecordingEngine:
    def __init__(self, name):
        self.name, self.shapes = name, []

    def __call__(self, batch):
        self.shapes.append(batch.shape)
        return np.zeros((len(batch), *batch.shape[2:]), np.float32)


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        # TorchScript specialises per batch size: each size of patches once, upright alone
        # and then the three other orientations
        ("torchscript", [(1, 1, 64, 64), (3, 1, 64, 64), (2, 1, 64, 64), (6, 1, 64, 64)]),
        # ONNX Runtime grows its arena once: the window of 2 x 2 half-overlapping patches
        # (96 = 1.5 x 64), upright and then in the other three orientations in one run
        ("onnx", [(1, 1, 96, 96), (3, 1, 96, 96)]),
        ("eager", []),
    ],
)
def test_warm_up_runs_what_each_backend_needs(base, backend, expected):
    engine = _RecordingEngine(backend)
    fast = FastNet.from_engine(engine, FastNet(base, optimise=False).spec, model=base)
    fast.with_orientations(4).warm_up([1, 2], 64)
    assert engine.shapes == expected


class _CountingEngine:
    """Eager logits, recording the shape of every run."""

    def __init__(self, model):
        self.name, self.shapes, self._eager = "eager", [], FastNet(model, optimise=False).engine

    def __call__(self, batch):
        self.shapes.append(batch.shape)
        return self._eager(batch)


@pytest.mark.parametrize("shape", [(64, 64), (64, 96)])
def test_an_upright_pass_is_not_run_again_on_the_same_inputs(base, shape):
    # the app's one-pass preview of a stroke is the upright pass of its full refinement
    engine = _CountingEngine(base)
    preview = FastNet.from_engine(engine, FastNet(base, optimise=False).spec, model=base)
    full = preview.with_orientations(4)
    batch = np.random.default_rng(3).normal(size=(1, 1, *shape)).astype(np.float32)
    shown = preview(batch)
    shown[:] = 99.0  # what a caller does with its logits does not reach the kept pass
    engine.shapes.clear()
    refined = full(batch)
    # every orientation but the upright one, which was run and kept by the preview
    assert sum(s[0] for s in engine.shapes) == 3
    expected = FastNet(base, optimise=False, orientations=4)(batch)
    assert np.abs(refined - expected).max() < 1e-5
    # other inputs, or another network's engine, run all four
    engine.shapes.clear()
    full(batch + 1)
    assert sum(s[0] for s in engine.shapes) == 4
    other = FastNet.from_engine(_CountingEngine(base), preview.spec, model=base)
    other.with_orientations(4)(batch + 1)
    assert sum(s[0] for s in other.engine.shapes) == 4


def test_whole_view_batches_are_not_kept(base):
    engine = _CountingEngine(base)
    net = FastNet.from_engine(engine, FastNet(base, optimise=False).spec, model=base)
    batch = np.zeros((ENGINE_BATCH + 1, 1, 32, 32), np.float32)
    net(batch)
    engine.shapes.clear()
    net(batch)
    assert sum(s[0] for s in engine.shapes) == ENGINE_BATCH + 1
