import numpy as np
import pytest

from refinement_model.simulated_user import (
    SimulatedStroke,
    choose_stroke,
    simulate_add,
    simulate_erase,
)
from refinement_model.stroke_widths import PAPER_STROKE_WIDTHS, skeleton
from refinement_model.strokes import Stroke, burn_in, rasterize_stroke


def _lines():
    """A ground truth of two lines (one bending) and a prediction missing part of each."""
    gt = burn_in(
        np.zeros((48, 64), bool),
        [
            Stroke("add", [(4, 10), (40, 10), (58, 30)], 1.5),
            Stroke("add", [(6, 40), (30, 40)], 1.0),
        ],
    )
    current = gt.copy()
    current[:, 20:50] = False
    return gt, current


def _centre(stroke):
    pts = stroke.as_array().astype(int)
    assert np.array_equal(pts, stroke.as_array())  # centre lines run through pixel centres
    return pts[:, 1], pts[:, 0]


def _assert_follows_line(stroke):
    steps = np.abs(np.diff(stroke.as_array(), axis=0))
    assert (steps.max(axis=1) == 1).all(), "consecutive points must be 8-neighbours"
    assert len(set(stroke.points)) == len(stroke.points), "a piece never revisits a pixel"


def test_add_stroke_lies_on_missing_ground_truth_skeleton():
    gt, current = _lines()
    missing = skeleton(gt) & ~current
    for seed in range(20):
        stroke = simulate_add(gt, current, rng=seed)
        assert stroke.kind == "add" and len(stroke.points) == 11
        rows, cols = _centre(stroke)
        assert missing[rows, cols].all()
        _assert_follows_line(stroke)


def test_add_takes_the_longest_missing_segment():
    gt, current = _lines()
    # The first line misses columns 20-49 along a bend, the second only columns 20-30.
    for seed in range(10):
        rows, _ = _centre(simulate_add(gt, current, rng=seed))
        assert rows.max() < 30


def test_add_radius_comes_from_the_gamma_at_patch_scale():
    gt, current = _lines()
    radii = [simulate_add(gt, current, rng=seed, scale=0.5).radius for seed in range(200)]
    assert abs(np.mean(radii) - PAPER_STROKE_WIDTHS.mean * 0.5) < 0.15
    expected = PAPER_STROKE_WIDTHS.sample(7, scale_factor=0.25)
    assert simulate_add(gt, current, rng=7, scale=0.25).radius == expected


def test_erase_stroke_lies_outside_the_ground_truth_and_never_covers_it():
    gt, current = _lines()
    current[22:26, 5:60] = True  # a false positive line between the two true ones
    current[2, 2] = True  # and a speck
    for seed in range(20):
        stroke = simulate_erase(gt, current, rng=seed)
        assert stroke.kind == "erase"
        rows, cols = _centre(stroke)
        assert not gt[rows, cols].any()
        assert current[rows, cols].all()
        assert rows.min() >= 22 and rows.max() < 26  # the longest superfluous piece
        assert not (rasterize_stroke(stroke, gt.shape) & gt).any()
        _assert_follows_line(stroke)


def test_none_when_nothing_is_missing_or_superfluous():
    gt, _ = _lines()
    assert simulate_add(gt, gt, rng=0) is None
    assert simulate_erase(gt, gt, rng=0) is None
    assert choose_stroke(gt, gt, rng=0) is None
    empty = np.zeros_like(gt)
    assert simulate_add(empty, empty, rng=0) is None and simulate_erase(empty, empty, rng=0) is None
    # A prediction thicker than the truth has nothing outside the truth dilated by the radius.
    thicker = burn_in(gt, [Stroke("add", [(10, 40), (28, 40)], 1.5)])
    assert simulate_erase(gt, thicker, rng=0) is None


def test_same_seed_same_stroke_and_inputs_untouched():
    gt, current = _lines()
    before = gt.copy(), current.copy()
    a = choose_stroke(gt, current, rng=3)
    b = choose_stroke(gt, current, rng=3)
    assert a == b
    assert simulate_add(gt, current, rng=5) == simulate_add(gt, current, rng=5)
    np.testing.assert_array_equal(gt, before[0])
    np.testing.assert_array_equal(current, before[1])
    starts = {simulate_add(gt, current, rng=seed).points[0] for seed in range(20)}
    assert len(starts) > 3, "the piece is picked at random along the segment"


def test_short_segment_gives_a_shorter_stroke_and_single_pixels_work():
    gt = np.zeros((9, 9), bool)
    gt[4, 2:7] = True
    current = np.zeros_like(gt)
    stroke = simulate_add(gt, current, rng=0, length=11)
    assert sorted(stroke.points) == [(float(x), 4.0) for x in range(2, 7)]
    speck = np.zeros_like(gt)
    speck[0, 8] = True
    assert simulate_erase(np.zeros_like(gt), speck, rng=0).points == ((8.0, 0.0),)


def test_precomputed_skeleton_gives_the_same_stroke():
    gt, current = _lines()
    assert simulate_add(gt, current, rng=1, gt_skeleton=skeleton(gt)) == simulate_add(
        gt, current, rng=1
    )


def test_choose_prefers_the_longer_segment_or_the_better_score():
    gt, current = _lines()
    current[30, 30:34] = True  # a short false positive: the add segment is longer
    chosen = choose_stroke(gt, current, rng=0)
    assert isinstance(chosen, SimulatedStroke) and chosen.stroke.kind == "add"
    assert chosen.segment_length > 4 and chosen.score is None
    scored = choose_stroke(gt, current, rng=0, score=lambda s: float(s.kind == "erase"))
    assert scored.stroke.kind == "erase" and scored.score == 1.0
    only_erase = choose_stroke(gt, gt | (np.arange(64) == 62)[None, :], rng=0)
    assert only_erase.stroke.kind == "erase"


def test_invalid_arguments_raise_value_error_naming_them():
    gt, current = _lines()
    with pytest.raises(ValueError, match="current"):
        simulate_add(gt, current[:, :10], rng=0)
    with pytest.raises(ValueError, match="length"):
        simulate_add(gt, current, rng=0, length=0)
    with pytest.raises(ValueError, match="scale"):
        simulate_erase(gt, current, rng=0, scale=-1)
    with pytest.raises(ValueError, match="gt_skeleton"):
        simulate_add(gt, current, rng=0, gt_skeleton=gt[:5])
    with pytest.raises(ValueError, match="widths"):
        choose_stroke(gt, current, rng=0, widths=(49, -4, 0.2))
