"""The GT-free patch score: doubt per predicted line pixel."""

import numpy as np
import pytest

from refinement_model.patches import PatchGrid
from refinement_model.ranking import (
    LINE_FLOOR,
    oracle_scores,
    ranking_quality,
    uncertainty_score,
    uncertainty_scores,
)


def _patch(lines: int, doubtful: int, size: int = 40) -> np.ndarray:
    p = np.full(size * size, 0.02, np.float32)
    p[:lines] = 0.98
    p[lines : lines + doubtful] = 0.5
    return p.reshape(size, size)


def test_doubt_is_counted_per_line_pixel():
    # The same doubtful pixels weigh more among few lines than among many: pFM is relative.
    many, few = _patch(400, 40), _patch(60, 40)
    assert uncertainty_score(few) > uncertainty_score(many)
    doubt = 4 * (40 * 0.25 + 60 * 0.98 * 0.02 + 1500 * 0.02 * 0.98)
    assert uncertainty_score(few) == pytest.approx(doubt / 60, rel=1e-5)
    confident = _patch(60, 0)
    assert uncertainty_score(confident) < uncertainty_score(few)


def test_nearly_empty_patches_divide_by_the_floor_and_off_mirror_is_never_visited():
    p = np.zeros((40, 40), np.float32)
    p[0, :3] = 0.5
    assert uncertainty_score(p) == pytest.approx(3 / (LINE_FLOOR * 1600))
    mirror = np.zeros((40, 40), bool)
    mirror[:, :20] = True
    assert uncertainty_score(p, mirror_mask=mirror) == pytest.approx(3 / (LINE_FLOOR * 800))
    assert uncertainty_score(p, mirror_mask=np.zeros((40, 40), bool)) == -np.inf
    with pytest.raises(ValueError, match="mirror_mask"):
        uncertainty_score(p, mirror_mask=mirror[:10])


def test_the_users_pixels_are_decided():
    p = _patch(60, 40)
    user = np.zeros(p.shape, np.int8)
    user.flat[60:80] = 1  # half the doubtful pixels added: lines, no doubt
    user.flat[80:100] = -1  # the other half erased: no doubt, no line
    doubt = 4 * (60 * 0.98 * 0.02 + 1500 * 0.02 * 0.98)
    assert uncertainty_score(p, user=user) == pytest.approx(doubt / 80, rel=1e-5)
    assert uncertainty_score(p, user=np.zeros_like(user)) == uncertainty_score(p)
    grid = PatchGrid(40, 80, patch_size=40, stride=40, net_size=40)
    two = np.concatenate([p, p], axis=1)
    both = np.concatenate([user, np.zeros_like(user)], axis=1)
    scores = uncertainty_scores(two, grid, user=both)
    assert scores[0] < scores[1]  # the corrected patch drops in the queue
    with pytest.raises(ValueError, match="user"):
        uncertainty_score(p, user=user[:10])


def test_the_score_ranks_patches_by_relative_error():
    # Each patch: a line of 8 px rows, some of its pixels doubtful (p = 0.5, counted wrong at
    # 0.5) or missed (p = 0.3): the more of the line is doubtful, the worse its pFM and score.
    grid = PatchGrid(32, 128, patch_size=32, stride=32, net_size=32)
    truth = np.zeros((32, 128), bool)
    truth[12:20, :] = True
    p = np.where(truth, 0.95, 0.02).astype(np.float32)
    for index, doubtful in enumerate((0, 4, 10, 20)):
        p[12:20, 32 * index : 32 * index + doubtful] = 0.45
    gt_free = uncertainty_scores(p, grid)
    oracle = oracle_scores(p > 0.5, truth, grid)
    assert np.all(np.diff(gt_free) > 0) and np.all(np.diff(oracle) > 0)
    assert ranking_quality(gt_free, oracle) == pytest.approx(1.0)
