"""PatchRefiner: equal to eager, orientation averaging, refining again, bad input."""

import dataclasses

import numpy as np
import pytest
import torch

from refinement_model.backends import EQUALITY_TOLERANCE
from refinement_model.checkpoints import save_checkpoint
from refinement_model.nets import refiner_input
from refinement_model.patch_refiner import PatchRefiner
from refinement_model.refiner_options import RefinerOptions

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


def refiner_inputs(seed: int, shape: tuple[int, ...]):
    """(B, 1, h, w) image, (B, h, w) logits and a stroke channel with one add stroke."""
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(shape[0], 1, *shape[1:])).astype(np.float32)
    logits = (10 * rng.normal(size=shape)).astype(np.float32)
    strokes = np.zeros(shape, np.float32)
    strokes[:, 10:20, 10:40] = 1
    return image, logits, strokes


def test_patch_refiner_averages_over_orientations(refiner):
    image, logits, strokes = refiner_inputs(1, (2, 64, 64))
    single = PatchRefiner(refiner, optimise=False)
    two = PatchRefiner(refiner, options=RefinerOptions(orientations=2), optimise=False)
    turned = [np.rot90(a, 1, axes=(-2, -1)).copy() for a in (image, logits, strokes)]
    # the mean of the patch as it is and turned by a quarter turn, turned back
    expected = (
        single.refine_batch(image, logits, strokes)
        + np.rot90(single.refine_batch(*turned), -1, axes=(-2, -1))
    ) / 2
    got = two.refine_batch(image, logits, strokes)
    assert got.dtype == np.float32 and np.abs(got - expected).max() < 1e-5
    # over all eight orientations the refinement turns and mirrors with its input
    eight = PatchRefiner(refiner, options=RefinerOptions(orientations=8), optimise=False)
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
    # the one-pass preview of an averaging refiner shares its network
    assert single.preview is None and two.preview.options == RefinerOptions()
    assert two.preview.net.model is two.net.model and two.preview.preview is None
    assert np.array_equal(
        two.preview.refine_batch(image, logits, strokes),
        single.refine_batch(image, logits, strokes),
    )
    four = two.with_options(RefinerOptions(orientations=4))
    assert four.net.orientations == 4 and two.net.orientations == 2
    assert four.net.model is two.net.model


@pytest.mark.parametrize("backend", ["onnx", "eager"])
def test_a_window_that_is_not_square_is_averaged_over_orientations_too(refiner, backend):
    image, logits, strokes = refiner_inputs(3, (1, 64, 96))
    single = PatchRefiner(refiner, backend=backend)
    four = single.with_options(RefinerOptions(orientations=4))
    expected = np.mean(
        [
            np.rot90(
                single.refine_batch(
                    *(np.rot90(a, k, axes=(-2, -1)).copy() for a in (image, logits, strokes))
                ),
                -k,
                axes=(-2, -1),
            )
            for k in range(4)
        ],
        axis=0,
    )
    got = four.refine_batch(image, logits, strokes)
    assert got.shape == (1, 64, 96) and np.abs(got - expected).max() < 1e-4


def test_patch_refiner_refines_again_from_its_own_logits(refiner):
    rng = np.random.default_rng(2)
    image = rng.normal(size=(2, 1, 64, 64)).astype(np.float32)
    logits = (10 * rng.normal(size=(2, 64, 64))).astype(np.float32)
    strokes = np.zeros((2, 64, 64), np.float32)
    strokes[:, 30:34, 5:60] = -1
    once = PatchRefiner(refiner, options=RefinerOptions(orientations=2), optimise=False)
    twice = PatchRefiner(refiner, options=RefinerOptions(2, 2), optimise=False)
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
    assert twice.preview.options == RefinerOptions() and twice.preview.net.orientations == 1
    assert twice.preview.net.model is twice.net.model
    again = once.with_options(dataclasses.replace(once.options, iterations=2))
    assert again.options == RefinerOptions(2, 2) and once.options.iterations == 1
    assert np.abs(again.refine_batch(image, logits, strokes) - got).max() < 1e-5
    single = PatchRefiner(refiner, options=RefinerOptions(iterations=3), optimise=False)
    assert single.net.orientations == 1 and single.preview.options.one_pass


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
