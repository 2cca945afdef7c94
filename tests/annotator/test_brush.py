"""The brush: width steps and clipping, point spacing, the parts to draw, the finished stroke."""

import numpy as np
import pytest

from annotator.core.brush import (
    MAX_RADIUS,
    MIN_RADIUS,
    MIN_SPACING,
    WIDTH_STEP,
    BrushDrag,
    clip_radius,
    step_radius,
)
from refinement_model.strokes import Stroke, rasterize_stroke


def test_radius_is_clipped_and_ten_steps_double_it():
    assert clip_radius(0.01) == MIN_RADIUS and clip_radius(1e6) == MAX_RADIUS
    assert clip_radius(3) == 3.0
    assert step_radius(4.0, 10) == pytest.approx(8.0)
    assert step_radius(4.0, -10) == pytest.approx(2.0)
    assert step_radius(4.0, 1) == pytest.approx(4.0 * WIDTH_STEP)
    assert step_radius(MAX_RADIUS, 1) == MAX_RADIUS and step_radius(MIN_RADIUS, -1) == MIN_RADIUS


def test_moves_closer_than_the_spacing_add_no_point():
    drag = BrushDrag("add", 2.0, (10, 10))
    assert not drag.move((10.2, 10.2))  # |dx| + |dy| = 0.4 < 0.5
    assert drag.move((10.3, 10.2))  # 0.5: far enough
    assert not drag.move((10.3, 10.2))  # the same point again
    assert drag.move((20, 10))
    np.testing.assert_allclose(drag.points, [(10, 10), (10.3, 10.2), (20, 10)])
    assert drag.points.dtype == np.float64 and drag.points.shape == (3, 2)
    assert MIN_SPACING == 0.5


def test_spacing_counts_from_the_last_kept_point():
    # slow creep: each move 0.3 from the one before, so every other one is kept
    drag = BrushDrag("erase", 1.0, (0, 0))
    kept = [drag.move((0.3 * i, 0)) for i in range(1, 7)]
    assert kept == [False, True, False, True, False, True]
    np.testing.assert_allclose(drag.points[:, 0], [0, 0.6, 1.2, 1.8])


def test_a_wider_spacing_keeps_fewer_points():
    drag = BrushDrag("add", 1.0, (0, 0), min_spacing=5.0)
    for x in range(1, 21):
        drag.move((x, 0))
    np.testing.assert_allclose(drag.points[:, 0], [0, 5, 10, 15, 20])


def test_finish_gives_the_sessions_stroke():
    drag = BrushDrag("erase", 4.0, (100, 100))
    for dx in (5, 10, 20):
        drag.move((100 + dx, 100))
    stroke = drag.finish()
    assert stroke == Stroke("erase", ((100, 100), (105, 100), (110, 100), (120, 100)), 4.0)
    mask = rasterize_stroke(stroke, (200, 200))
    assert mask[100, 100:121].all() and mask[100 + 4, 110] and not mask[100 + 5, 110]


def test_a_press_without_a_move_is_a_dot():
    stroke = BrushDrag("add", 3.0, (7.5, 8.25)).finish()
    assert stroke.points == ((7.5, 8.25),) and stroke.radius == 3.0


def test_points_are_a_copy():
    drag = BrushDrag("add", 1.0, (0, 0))
    drag.points[0] = (99, 99)
    assert drag.finish().points == ((0.0, 0.0),)


@pytest.mark.parametrize(
    ("kind", "radius", "match"), [("paint", 1.0, "kind"), ("add", 0.0, "radius")]
)
def test_bad_kind_or_radius_is_refused(kind, radius, match):
    with pytest.raises(ValueError, match=match):
        BrushDrag(kind, radius, (0, 0))


def test_runs_near_a_box_are_the_segments_whose_ink_may_reach_it():
    drag = BrushDrag("add", 2.0, (0, 0))
    for point in [(10, 0), (10, 50), (0, 50), (0, 100)]:
        drag.move(point)
    # a box around (10, 25): only the vertical segment (10, 0)-(10, 50)
    (run,) = drag.runs_near((9, 20, 11, 30))
    np.testing.assert_allclose(run, [(10, 0), (10, 50)])
    # a box at the left edge, y 0..100: the first, third and fourth segments, in two runs
    runs = drag.runs_near((-1, -1, 1, 100))
    assert [r.tolist() for r in runs] == [[[0, 0], [10, 0]], [[10, 50], [0, 50], [0, 100]]]
    # the radius counts: 1.5 beyond the line's end is still inked, 2.5 is not
    assert drag.runs_near((11.5, 25, 12, 26)) and not drag.runs_near((12.5, 25, 13, 26))
    assert drag.runs_near((200, 200, 300, 300)) == []


def test_runs_near_of_a_dot():
    drag = BrushDrag("erase", 3.0, (5, 5))
    (run,) = drag.runs_near((7, 7, 8, 8))
    np.testing.assert_allclose(run, [(5, 5)])
    assert drag.runs_near((9, 9, 10, 10)) == []
