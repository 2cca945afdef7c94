import numpy as np
import pytest

from refinement_model.blocks import patch_block, refine_patches_together
from refinement_model.patches import PatchGrid
from refinement_model.strokes import Stroke, stroke_channel


def pointwise(images, bases, channels):
    """A refiner whose every output pixel depends on its own input pixel only: one image or
    one patch at a time give the same logits."""
    return bases + 3.0 * channels + images[:, 0]


class Recording:
    def __init__(self, refine):
        self.refine, self.shapes = refine, []

    def __call__(self, images, bases, channels):
        self.shapes.append(images.shape)
        return self.refine(images, bases, channels)


def view_inputs(grid, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(2, *grid.shape)).astype(np.float32)
    base = rng.normal(size=grid.shape).astype(np.float32)
    return image, base


def test_a_stroke_block_on_the_app_grid_is_one_image_half_the_pixels():
    grid = PatchGrid(2048, 2048)
    touched = grid.patches_touching(500, 600, 520, 620)  # across a stride line: 3 x 2 patches
    block = patch_block(grid, touched)
    assert len(touched) == 6 and block.box == (0, 256, 1024, 1024)
    assert block.net_shape == (512, 384)  # 196,608 network pixels against 6 x 65,536
    assert [block.offset(i) for i in block.indices[:2]] == [(0, 0), (0, 128)]


def test_a_block_grows_inside_the_view_to_multiples_of_32_network_pixels():
    grid = PatchGrid(2048, 1000)  # the last column starts at 488, not on the stride
    block = patch_block(grid, [1, 2])
    assert block.box == (0, 232, 512, 1000) and block.net_shape == (256, 384)
    assert block.offset(1) == (0, 12) and block.offset(2) == (0, 128)


@pytest.mark.parametrize(
    "shape, indices, why",
    [
        ((2048, 2048), [0], "a single patch"),
        ((2048, 2048), [0, 9], "not a rectangle of the grid"),
        ((2048, 1001), [1, 2], "the last column starts at an odd pixel: half a network pixel"),
        ((700, 1000), [0, 3], "two rows cannot grow to a multiple of 32 inside 700 pixels"),
        ((300, 1000), [0, 1], "patches reach past the view"),
    ],
)
def test_patches_that_cannot_be_one_image_are_refused(shape, indices, why):
    assert patch_block(PatchGrid(*shape), indices) is None, why


@pytest.mark.parametrize("shape", [(2048, 2048), (2048, 1000), (2048, 1001)])
def test_one_image_gives_each_patch_what_a_pointwise_refiner_gives_it_alone(shape):
    grid = PatchGrid(*shape)
    image, base = view_inputs(grid)
    strokes = [
        Stroke("add", [(700, 500), (980, 530)], 6.0),
        Stroke("erase", [(760, 480), (790, 540)], 9.0),  # drawn last: wins where they cross
    ]
    touched = grid.patches_touching(470, 690, 550, 990).tolist()
    refine = Recording(pointwise)
    together = refine_patches_together(refine, grid, image, base, touched, strokes)
    assert sorted(together) == touched
    n = grid.net_size
    for index in touched:
        alone = pointwise(
            grid.extract(image, index)[None],
            grid.extract(base, index)[None],
            stroke_channel(strokes, (n, n), origin=grid.network_origin(index), scale=grid.scale)[
                None
            ],
        )[0]
        np.testing.assert_allclose(together[index], alone, atol=1e-5)
    assert len(refine.shapes) == 1
    one_image = patch_block(grid, touched) is not None
    assert refine.shapes[0][0] == (1 if one_image else len(touched))


def test_one_image_is_one_pass_and_its_context_reaches_across_patches():
    grid = PatchGrid(2048, 2048)
    image, base = view_inputs(grid)

    def window_mean(images, bases, channels):  # every pixel sees the whole input
        return bases * 0 + channels.mean(axis=(1, 2), keepdims=True)

    touched = grid.patches_touching(500, 500, 520, 530).tolist()
    stroke = Stroke("add", [(505, 505), (525, 515)], 5.0)
    refined = refine_patches_together(window_mean, grid, image, base, touched, [stroke])
    # one image: every patch gets the same value, including those the stroke misses
    values = {float(logits[0, 0]) for logits in refined.values()}
    assert len(values) == 1 and values.pop() > 0


def test_the_inputs_ablation_feeds_zeros():
    grid = PatchGrid(2048, 2048)
    image, base = view_inputs(grid)
    touched = grid.patches_touching(500, 500, 520, 530).tolist()
    stroke = Stroke("add", [(505, 505), (525, 515)], 5.0)
    plain = refine_patches_together(pointwise, grid, image, base, touched, [stroke])
    no_strokes = refine_patches_together(
        pointwise, grid, image, base, touched, [stroke], use_strokes=False
    )
    no_prediction = refine_patches_together(
        pointwise, grid, image, base, touched, [stroke], use_prediction=False
    )
    for index in touched:
        image_part = grid.extract(image, index)[0]
        np.testing.assert_allclose(
            no_strokes[index], grid.extract(base, index) + image_part, atol=1e-5
        )
        np.testing.assert_allclose(
            no_prediction[index], plain[index] - grid.extract(base, index), atol=1e-5
        )
    assert refine_patches_together(pointwise, grid, image, base, [], [stroke]) == {}
