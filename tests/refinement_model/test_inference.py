"""Inference: the optimised path equals eager, whole-view prediction, single-patch refinement."""

import numpy as np
import pytest
import torch

from refinement_model.checkpoints import save_checkpoint
from refinement_model.errors import Cancelled
from refinement_model.inference import (
    ENGINE_BATCH,
    EQUALITY_TOLERANCE,
    FastNet,
    PatchRefiner,
    predict_image,
    predict_patch_logits,
)
from refinement_model.nets import create_model, refiner_input
from refinement_model.patches import PatchGrid

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"decoder_channels": (8, 8, 8, 8, 8)}


@pytest.fixture(scope="module")
def base():
    torch.manual_seed(3)
    return create_model("base", **TINY).eval()


@pytest.fixture(scope="module")
def fast_base(base):
    return FastNet(base, net_size=32)


@pytest.fixture(scope="module")
def refiner():
    torch.manual_seed(4)
    model = create_model("refiner", **TINY).eval()
    for parameter in model.net.segmentation_head.parameters():  # as if trained: not identity
        torch.nn.init.normal_(parameter, std=0.5)
    return model


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


def test_predict_image_matches_manual_stitching(base, fast_base):
    rng = np.random.default_rng(1)
    image = rng.normal(size=(1, 100, 90)).astype(np.float32)
    before = image.copy()
    grid = PatchGrid(100, 90, patch_size=64, stride=32, net_size=32)
    eager = FastNet(base, optimise=False)
    expected = [eager(grid.extract(image, i)[None])[0] for i in range(len(grid))]
    got = list(predict_patch_logits(fast_base, image, grid, batch_size=4))
    assert len(got) == len(grid)
    assert max(np.abs(a - b).max() for a, b in zip(got, expected, strict=True)) < EQUALITY_TOLERANCE
    calls = []
    probs = predict_image(
        fast_base,
        image,
        grid=grid,
        batch_size=4,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert probs.shape == (100, 90) and probs.dtype == np.float32
    assert probs.min() >= 0 and probs.max() <= 1
    assert calls[-1] == (len(grid), len(grid))
    np.testing.assert_array_equal(image, before)


def test_predict_image_cancel(fast_base):
    grid = PatchGrid(64, 64, patch_size=32, stride=16, net_size=32)
    image = np.zeros((1, 64, 64), np.float32)
    with pytest.raises(Cancelled):
        predict_image(fast_base, image, grid=grid, cancel=lambda: True)
    with pytest.raises(ValueError, match="batch_size"):
        list(predict_patch_logits(fast_base, image, grid, batch_size=0))


def test_patch_refiner_from_checkpoint_equals_eager(refiner, tmp_path):
    path = tmp_path / "refiner.safetensors"
    save_checkpoint(path, refiner, metadata={"net_size": 64})
    rng = np.random.default_rng(2)
    image = rng.normal(size=(1, 64, 64)).astype(np.float32)
    logits = (10 * rng.normal(size=(64, 64))).astype(np.float32)
    strokes = np.zeros((64, 64), np.float32)
    strokes[10:20, 10:40] = 1
    strokes[40:50, 5:9] = -1
    copies = [a.copy() for a in (image, logits, strokes)]
    engine = PatchRefiner(path)
    assert engine.net.optimised
    got = engine.refine(image, logits, strokes)
    with torch.no_grad():
        expected = refiner(
            refiner_input(
                torch.from_numpy(image[None]),
                torch.from_numpy(logits[None]),
                torch.from_numpy(strokes[None]),
            )
        )[0, 0].numpy()
    assert got.shape == (64, 64) and got.dtype == np.float32
    assert np.abs(got - expected).max() < EQUALITY_TOLERANCE
    for a, b in zip((image, logits, strokes), copies, strict=True):
        np.testing.assert_array_equal(a, b)
    # the stroke channel reaches the output
    assert np.abs(engine(image, logits, -strokes) - got).max() > 0
    # a batch in one forward pass gives each patch's logits
    batch = engine.refine_batch(
        np.stack([image, image]), np.stack([logits, logits]), np.stack([strokes, -strokes])
    )
    assert batch.shape == (2, 64, 64)
    assert np.abs(batch[0] - got).max() < EQUALITY_TOLERANCE
    assert np.abs(batch[1] - engine(image, logits, -strokes)).max() < EQUALITY_TOLERANCE


def test_patch_refiner_averages_over_orientations(refiner):
    rng = np.random.default_rng(1)
    image = rng.normal(size=(2, 1, 64, 64)).astype(np.float32)
    logits = (10 * rng.normal(size=(2, 64, 64))).astype(np.float32)
    strokes = np.zeros((2, 64, 64), np.float32)
    strokes[:, 10:20, 10:40] = 1
    single = PatchRefiner(refiner, optimise=False)
    two = PatchRefiner(refiner, optimise=False, orientations=2)
    turned = [np.rot90(a, 1, axes=(-2, -1)).copy() for a in (image, logits, strokes)]
    # the mean of the patch as it is and turned by a quarter turn, turned back
    expected = (
        single.refine_batch(image, logits, strokes)
        + np.rot90(single.refine_batch(*turned), -1, axes=(-2, -1))
    ) / 2
    got = two.refine_batch(image, logits, strokes)
    assert got.dtype == np.float32 and np.abs(got - expected).max() < 1e-5
    # over all eight orientations the refinement turns and mirrors with its input
    eight = PatchRefiner(refiner, optimise=False, orientations=8)
    base = eight.refine_batch(image, logits, strokes)
    assert np.abs(eight.refine_batch(*turned) - np.rot90(base, 1, axes=(-2, -1))).max() < 1e-4
    mirrored = [a[..., ::-1].copy() for a in (image, logits, strokes)]
    assert np.abs(eight.refine_batch(*mirrored) - base[..., ::-1]).max() < 1e-4
    assert (
        np.abs(
            single.refine_batch(*turned)
            - np.rot90(single.refine_batch(image, logits, strokes), 1, axes=(-2, -1))
        ).max()
        > 1e-3
    )
    with pytest.raises(ValueError, match="orientations"):
        PatchRefiner(refiner, orientations=3)
    # the one-pass preview of an averaging refiner shares its network
    assert single.preview is None and two.preview.orientations == 1
    assert two.preview.net.model is two.net.model and two.preview.preview is None
    assert np.array_equal(
        two.preview.refine_batch(image, logits, strokes),
        single.refine_batch(image, logits, strokes),
    )
    four = two.with_options(orientations=4)
    assert four.orientations == 4 and two.orientations == 2 and four.net.model is two.net.model
    with pytest.raises(ValueError, match="orientations"):
        two.with_options(orientations=3)


def test_patch_refiner_refines_again_from_its_own_logits(refiner):
    rng = np.random.default_rng(2)
    image = rng.normal(size=(2, 1, 64, 64)).astype(np.float32)
    logits = (10 * rng.normal(size=(2, 64, 64))).astype(np.float32)
    strokes = np.zeros((2, 64, 64), np.float32)
    strokes[:, 30:34, 5:60] = -1
    once = PatchRefiner(refiner, optimise=False, orientations=2)
    twice = PatchRefiner(refiner, optimise=False, orientations=2, iterations=2)
    first = once.refine_batch(image, logits, strokes)
    # the second refinement sees the first's logits in place of the base logits, and the same
    # strokes
    expected = once.refine_batch(image, first, strokes)
    got = twice.refine_batch(image, logits, strokes)
    assert np.abs(got - expected).max() < 1e-5 and np.abs(got - first).max() > 1e-3
    copy = logits.copy()
    twice.refine_batch(image, logits, strokes)
    np.testing.assert_array_equal(logits, copy)
    # its preview is one pass of one orientation, sharing the network
    assert twice.preview.iterations == 1 and twice.preview.orientations == 1
    assert twice.preview.net.model is twice.net.model
    assert once.with_options(iterations=2).iterations == 2 and once.iterations == 1
    single = PatchRefiner(refiner, optimise=False, iterations=3)
    assert single.orientations == 1 and single.preview.iterations == 1
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="iterations"):
            PatchRefiner(refiner, iterations=bad)


def test_patch_refiner_refuses_bad_input(refiner, base):
    engine = PatchRefiner(refiner, optimise=False)
    with pytest.raises(ValueError, match="image_patch"):
        engine.refine(np.zeros((3, 64, 64), np.float32), np.zeros((64, 64)), np.zeros((64, 64)))
    with pytest.raises(ValueError, match="stroke_channel"):
        engine.refine(np.zeros((1, 64, 64), np.float32), np.zeros((64, 64)), np.zeros((32, 32)))
    with pytest.raises(ValueError, match="base_logits"):
        engine.refine_batch(
            np.zeros((2, 1, 64, 64), np.float32), np.zeros((1, 64, 64)), np.zeros((2, 64, 64))
        )
    with pytest.raises(ValueError, match="refiner"):
        PatchRefiner(base)


def test_predict_cli_writes_mask_and_probabilities(base, tmp_path, capsys):
    from annotator.cli import main
    from refinement_model.imageio import read_png
    from refinement_model.views import load_view

    assert main(["synth", str(tmp_path / "views"), "--views", "1", "--size", "160x128"]) == 0
    checkpoint = tmp_path / "base.safetensors"
    save_checkpoint(checkpoint, base)
    capsys.readouterr()
    assert (
        main(
            [
                "predict",
                str(tmp_path / "views"),
                "--base",
                str(checkpoint),
                "-o",
                str(tmp_path / "out"),
                "--score",
            ]
        )
        == 0
    )
    view = load_view(tmp_path / "views", "SYN-0001_R")
    mask = read_png(tmp_path / "out" / "SYN-0001_R_prediction.png")
    probs = read_png(tmp_path / "out" / "SYN-0001_R_probability.png")
    assert mask.shape == probs.shape == (128, 160)
    assert set(np.unique(mask)) <= {0, 255}
    assert not mask[~view.mirror_mask].any() and not probs[~view.mirror_mask].any()
    np.testing.assert_array_equal(mask > 0, probs > 127.5)
    printed = capsys.readouterr().out.strip().splitlines()
    assert '"view": "SYN-0001_R"' in printed[0] and '"view": "mean"' in printed[-1]
    assert (
        main(
            [
                "predict",
                str(tmp_path / "views"),
                "--base",
                str(checkpoint),
                "-o",
                str(tmp_path / "out"),
                "--threshold",
                "2",
            ]
        )
        == 2
    )
