import numpy as np
import pytest
from scipy.special import expit

from refinement_model.corrections import (
    ViewCorrections,
    propagated_change,
    protected_mask,
    stroke_box,
)
from refinement_model.patches import PatchGrid, blend_logits
from refinement_model.strokes import Stroke, rasterize_stroke

SIZE = 128


def grid() -> PatchGrid:
    return PatchGrid(SIZE, SIZE, patch_size=64, stride=32, net_size=32)


def base_logits(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 2.0, (SIZE, SIZE)).astype(np.float32)


ADD = Stroke("add", [(10, 10), (40, 10)], 3.0)
ERASE = Stroke("erase", [(20, 5), (20, 30)], 2.0)  # crosses ADD
FAR = Stroke("add", [(100, 100), (110, 110)], 2.0)


def test_protected_mask_keeps_the_user_pixels():
    predicted = np.array([[True, False, True, False]])
    user = np.array([[0, 1, -1, 0]], np.int8)
    out = protected_mask(predicted, user)
    assert out.tolist() == [[True, True, False, False]]
    assert predicted.tolist() == [[True, False, True, False]]  # input unchanged
    with pytest.raises(ValueError, match="one shape"):
        protected_mask(predicted, user[:, :3])


def test_strokes_burn_in_drawing_order():
    corrections = ViewCorrections(grid(), base_logits())
    corrections.add_stroke(ADD)
    corrections.add_stroke(ERASE)
    crossing = rasterize_stroke(ADD, (SIZE, SIZE)) & rasterize_stroke(ERASE, (SIZE, SIZE))
    assert crossing.any()
    assert (corrections.user[crossing] == -1).all()  # the later erase wins
    other = ViewCorrections(grid(), base_logits(), strokes=[ERASE, ADD])
    assert (other.user[crossing] == 1).all()
    assert corrections.user.dtype == np.int8
    assert set(np.unique(corrections.user).tolist()) == {-1, 0, 1}


def test_undo_repaints_the_user_map_it_had_before():
    corrections = ViewCorrections(grid(), base_logits())
    corrections.add_stroke(ADD)
    corrections.add_stroke(FAR)
    before = corrections.user.copy()
    pixels = corrections.annotated_pixels, corrections.stroke_pixels
    box = corrections.add_stroke(ERASE)
    assert box == stroke_box(ERASE, (SIZE, SIZE))
    stroke, undone_box = corrections.remove_last_stroke()
    assert stroke is ERASE and undone_box == box
    np.testing.assert_array_equal(corrections.user, before)
    assert (corrections.annotated_pixels, corrections.stroke_pixels) == pixels
    assert corrections.strokes == [ADD, FAR]


def test_strokes_given_at_construction_equal_strokes_added():
    deltas = {0: np.full((32, 32), 3.0, np.float32)}
    built = ViewCorrections(grid(), base_logits(), strokes=[ADD, ERASE], deltas=deltas)
    live = ViewCorrections(grid(), base_logits())
    live.add_stroke(ADD)
    live.add_stroke(ERASE)
    live.set_deltas(deltas)
    np.testing.assert_array_equal(built.user, live.user)
    np.testing.assert_array_equal(built.probabilities, live.probabilities)
    assert built.annotated_pixels == live.annotated_pixels
    assert built.stroke_pixels == live.stroke_pixels


def test_annotated_pixels_count_once_stroke_pixels_every_stroke():
    corrections = ViewCorrections(grid(), base_logits())
    corrections.add_stroke(ADD)
    corrections.add_stroke(ADD)
    footprint = int(rasterize_stroke(ADD, (SIZE, SIZE)).sum())
    assert corrections.annotated_pixels == footprint == np.count_nonzero(corrections.user)
    assert corrections.stroke_pixels == 2 * footprint


def test_refinements_never_overwrite_user_pixels():
    base = base_logits()
    corrections = ViewCorrections(grid(), base, strokes=[ADD, ERASE])
    # a refiner that deletes every line of patch 0
    corrections.set_deltas({0: np.full((32, 32), -1e4, np.float32)})
    network = corrections.network_mask()
    assert network[corrections.user > 0].all()
    assert not network[corrections.user < 0].any()
    np.testing.assert_array_equal(
        corrections.human_mask(), protected_mask(base > 0, corrections.user)
    )
    y0, x0, y1, x1 = grid().region(0)
    free = corrections.user[y0:y1, x0:x1] == 0
    centre = np.zeros(free.shape, bool)
    centre[16:48, 16:48] = True  # the border weights fade the change out near the edges
    assert not network[y0:y1, x0:x1][free & centre].any()


def test_probabilities_are_the_blend_where_refined_and_the_start_elsewhere():
    base = base_logits()
    corrections = ViewCorrections(grid(), base)
    np.testing.assert_array_equal(corrections.probabilities, expit(base))
    deltas = {5: np.random.default_rng(1).normal(0, 1, (32, 32)).astype(np.float32)}
    region = corrections.set_deltas(deltas)
    assert region == grid().region(5)
    everywhere = (0, 0, SIZE, SIZE)
    np.testing.assert_array_equal(
        corrections.probabilities, expit(blend_logits(grid(), base, deltas, everywhere))
    )
    assert corrections.set_deltas({5: None}) == region
    np.testing.assert_array_equal(corrections.probabilities, expit(base))
    assert corrections.deltas == {}


def test_touched_patches_and_strokes_on_a_patch():
    # 3 x 3 patches of 64 px at stride 32: ADD lies in rows 7-13, columns 7-43; FAR in 98-112
    corrections = ViewCorrections(grid(), base_logits(), strokes=[ADD, FAR, ADD])
    assert corrections.touched_patches(ADD) == [0, 1]
    assert corrections.touched_patches(FAR) == [8]
    on = {index: corrections.strokes_on(index) for index in range(len(grid()))}
    assert on == {0: [ADD, ADD], 1: [ADD, ADD], 8: [FAR]} | {i: [] for i in range(2, 8)}


def test_a_stroke_outside_the_view_is_refused():
    corrections = ViewCorrections(grid(), base_logits())
    outside = Stroke("add", [(500, 500), (510, 500)], 2.0)
    with pytest.raises(ValueError, match="overlap the view"):
        stroke_box(outside, (SIZE, SIZE))
    with pytest.raises(ValueError, match="overlap the view"):
        corrections.add_stroke(outside)
    with pytest.raises(ValueError, match="must be a Stroke"):
        corrections.add_stroke(((0, 0), (5, 5)))
    assert corrections.strokes == [] and not corrections.user.any()


def test_a_propagated_change_carries_decisions_not_logit_differences():
    start = np.array([[16.0, 16.0, -16.0, 2.0]], np.float32)
    frozen = np.array([[40.0, 30.0, -20.0, 1.0]], np.float32)
    adapted = np.array([[5.0, -3.0, -60.0, 1.5]], np.float32)
    change = propagated_change(start, frozen, adapted)
    assert change.dtype == np.float32
    # both refiners sure of a line (pixel 0) or of background (2): the start stays, however far
    # apart their logits are; the adapted one changed its mind (1): the patch takes its logits
    np.testing.assert_array_equal(start + change, [[16.0, -3.0, -16.0, 2.0]])
    assert not propagated_change(start, frozen, frozen).any()
    with pytest.raises(ValueError, match="one shape"):
        propagated_change(start, frozen, adapted[:, :2])
