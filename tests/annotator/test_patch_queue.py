import numpy as np
import pytest

from annotator.core.patch_queue import (
    DONE,
    NOT_SEEN,
    REFINED,
    VISITED,
    PatchQueue,
    check_patch_index,
    patch_scores,
    rank_patches,
)
from refinement_model.patches import PatchGrid


def grid_2x2():
    return PatchGrid(8, 8, patch_size=4, stride=4, net_size=4)


def test_rank_patches_worst_first_inside_the_mirror():
    grid = grid_2x2()
    p = np.zeros((8, 8), np.float32)
    p[:4, 4:] = 0.5  # patch 1: all undecided
    p[4:, :2] = 0.5  # patch 2: half undecided; the other half is outside the mirror
    p[4:, 4:] = 0.5  # patch 3: undecided, wholly outside the mirror
    mirror = np.ones((8, 8), bool)
    mirror[4:, 2:] = False
    before = p.copy()
    order, scores = rank_patches(p, grid, mirror)
    assert order.tolist() == [1, 2, 0]  # patch 3 holds no mirror pixel: never queued
    # Doubt per line pixel over mirror pixels: no line is predicted (p = 0.5 is not > 0.5), so
    # patch 1 divides its 16 doubtful pixels by the floor, 1% of 16, and patch 2 its inside
    # half (8 pixels, all undecided) by 1% of 8.
    assert scores.tolist() == pytest.approx([0.0, 100.0, 100.0, -np.inf])
    assert np.array_equal(p, before)


def test_patch_scores_of_some_patches_and_validation():
    grid = grid_2x2()
    p = np.full((8, 8), 0.5)
    p[:4, :4] = 0.1  # 4 * 0.1 * 0.9 = 0.36 per pixel, no line pixel
    p[4:, 4:] = 0.75  # 0.75 per pixel, 16 line pixels
    assert patch_scores(p, grid, np.ones((8, 8), bool)) == pytest.approx([36, 100, 100, 0.75])
    with pytest.raises(ValueError, match="mirror_mask"):
        patch_scores(p, grid, np.ones((8, 8)))
    with pytest.raises(ValueError, match="probabilities"):
        patch_scores(p[:4], grid, np.ones((8, 8), bool))
    with pytest.raises(ValueError, match="patch index"):
        check_patch_index(grid, 4)


def test_queue_next_skip_revisit_and_states():
    grid = grid_2x2()
    p = np.zeros((8, 8))
    p[:4, 4:] = 0.5  # no line pixel: scores 100 x the mean impurity,
    p[4:, :4] = 0.2  # 0, 100, 64, 36
    p[4:, 4:] = 0.1
    queue = PatchQueue(grid, np.ones((8, 8), bool), p)
    assert queue.scores == pytest.approx([0, 100, 64, 36])
    assert queue.next() == 1
    queue.skip(1)
    assert queue.next() == 2
    queue.visited[2] = True
    queue.stroke_counts[3] = 1
    queue.done[0] = True
    assert queue.states.tolist() == [DONE, NOT_SEEN, VISITED, REFINED]
    assert queue.next() == 1  # only the skipped one is left
    assert queue.revisit() == 2  # seen but not done, worst first
    queue.done[1] = True
    assert queue.next() is None


def test_coverage_counts_overlapping_patches_once():
    grid = PatchGrid(8, 12, patch_size=8, stride=4, net_size=4)  # boxes x: 0-8, 4-12
    mirror = np.zeros((8, 12), bool)
    mirror[:, 2:10] = True  # 64 mirror pixels
    queue = PatchQueue(grid, mirror, np.zeros((8, 12)))
    assert queue.coverage() == 0.0
    queue.visited[0] = True
    assert queue.coverage() == pytest.approx(48 / 64)
    queue.visited[1] = True
    assert queue.coverage() == 1.0
    queue.done[1] = True
    assert queue.coverage(done_only=True) == pytest.approx(48 / 64)


def test_update_rescores_only_where_probabilities_changed():
    grid = PatchGrid(8, 12, patch_size=8, stride=4, net_size=4)
    mirror = np.ones((8, 12), bool)
    p = np.zeros((8, 12))
    queue = PatchQueue(grid, mirror, p)
    p[:, 10:] = 0.5  # only in patch 1
    queue.update(p, (0, 10, 8, 12))
    assert queue.scores == pytest.approx([0, 16 / (0.01 * 64)])
    assert np.array_equal(queue.scores, patch_scores(p, grid, mirror))


def test_queue_scored_later_equals_queue_scored_at_once():
    grid = PatchGrid(8, 12, patch_size=8, stride=4, net_size=4)
    mirror = np.ones((8, 12), bool)
    p = np.random.default_rng(0).uniform(size=(8, 12))
    queue = PatchQueue(grid, mirror)
    assert not queue.scores.any()
    queue.update(p)  # the whole view
    assert np.array_equal(queue.scores, PatchQueue(grid, mirror, p).scores)


def test_queue_scores_are_the_evaluated_gt_free_ranking():
    # The session keeps, incrementally, exactly the score the evaluation protocol measured.
    from refinement_model.patches import PatchGrid
    from refinement_model.ranking import uncertainty_scores

    rng = np.random.default_rng(1)
    grid = PatchGrid(96, 80, patch_size=32, stride=16, net_size=16)
    probabilities = rng.random((96, 80)).astype(np.float32)
    mirror = np.zeros((96, 80), bool)
    mirror[10:90, 5:60] = True
    expected = uncertainty_scores(probabilities, grid, mirror_mask=mirror)
    np.testing.assert_allclose(patch_scores(probabilities, grid, mirror), expected, rtol=1e-6)
    user = rng.choice(np.array([-1, 0, 0, 1], np.int8), size=(96, 80))
    expected = uncertainty_scores(probabilities, grid, mirror_mask=mirror, user=user)
    np.testing.assert_allclose(patch_scores(probabilities, grid, mirror, user), expected, rtol=1e-6)
    queue = PatchQueue(grid, mirror, probabilities)
    strokes = np.zeros((96, 80), np.int8)
    strokes[20:50, 20:40] = user[20:50, 20:40]
    queue.update(probabilities, (20, 20, 50, 40), strokes)  # only where the strokes are
    np.testing.assert_allclose(
        queue.scores, patch_scores(probabilities, grid, mirror, strokes), rtol=1e-6
    )


def test_queue_offers_no_patch_with_only_a_sliver_of_mirror_yet_covers_the_whole_mirror():
    from annotator.core.patch_queue import MIN_MIRROR_SHARE
    from refinement_model.patches import PatchGrid

    grid = PatchGrid(128, 128, patch_size=32, stride=16, net_size=32)  # overlapping, as the app's
    mirror = np.zeros((128, 128), bool)
    mirror[:64, :64] = True
    mirror[64:66, :64] = True  # a sliver: all a row of patches holds
    mirror[100:128, 126:128] = True  # a thin spur no patch holds much of: still reachable
    probabilities = np.full((128, 128), 0.01, np.float32)
    probabilities[64:66, :64] = 0.5  # all doubt, where the user would see background
    probabilities[100:128, 126:128] = 0.02
    queue = PatchQueue(grid, mirror, probabilities)
    sliver = [i for i, (y0, x0, y1, x1) in enumerate(grid.boxes) if y0 == 64 and x1 <= 64]
    assert len(sliver) == 3
    assert all(
        np.count_nonzero(mirror[slice(*grid.boxes[i][[0, 2]]), slice(*grid.boxes[i][[1, 3]])])
        < MIN_MIRROR_SHARE * 32**2
        for i in sliver
    )
    assert queue.scores[sliver].min() > queue.scores[queue.eligible].max()  # worst, if queued
    assert not queue.eligible[sliver].any()
    order, _ = rank_patches(probabilities, grid, mirror)
    assert not set(order.tolist()) & set(sliver)
    seen = []
    while (index := queue.next()) is not None:
        seen.append(index)
        queue.visited[index] = True
    assert set(seen) == set(np.flatnonzero(queue.eligible).tolist()) == set(order.tolist())
    covered = np.zeros_like(mirror)
    for y0, x0, y1, x1 in grid.boxes[seen]:
        covered[y0:y1, x0:x1] = True
    assert covered[mirror].all()  # the sliver lies in queued patches too, and so does the spur
    assert queue.coverage() == 1.0
