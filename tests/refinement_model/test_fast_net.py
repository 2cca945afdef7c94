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
        # TorchScript specialises per batch size: each size of patches once, x4 orientations
        ("torchscript", [(4, 1, 64, 64), (8, 1, 64, 64)]),
        # ONNX Runtime grows its arena once: the window of 2 x 2 half-overlapping patches
        # (96 = 1.5 x 64), in all four orientations in one run
        ("onnx", [(4, 1, 96, 96)]),
        ("eager", []),
    ],
)
def test_warm_up_runs_what_each_backend_needs(base, backend, expected):
    engine = _RecordingEngine(backend)
    fast = FastNet.from_engine(engine, FastNet(base, optimise=False).spec, model=base)
    fast.with_orientations(4).warm_up([1, 2], 64)
    assert engine.shapes == expected
