import cv2
import numpy as np
import pytest
import skimage.morphology
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from refinement_model.metrics import (
    dice,
    f_measure,
    iou,
    precision,
    pseudo_f_measure,
    recall,
    score_masks,
    thin,
)

KEYS = {"pfm", "fm", "iou", "precision", "recall", "dice"}


def reference_scores(pred, gt, mask=None):
    """DIBCO definitions written out plainly, on the skeleton from scikit-image."""
    pred, gt = pred.astype(bool), gt.astype(bool)
    skeleton = skimage.morphology.thin(gt)
    if mask is not None:
        pred, gt, skeleton = pred & mask, gt & mask, skeleton & mask
    tp = float((pred & gt).sum())
    p = tp / pred.sum()
    r = tp / gt.sum()
    rps = float((pred & skeleton).sum()) / skeleton.sum()
    return {
        "pfm": 2 * p * rps / (p + rps),
        "fm": 2 * p * r / (p + r),
        "iou": tp / (pred | gt).sum(),
        "precision": p,
        "recall": r,
        "dice": 2 * tp / (pred.sum() + gt.sum()),
    }


def drawn_lines(shape, count, rng, widths=(3, 10)):
    image = np.zeros(shape, dtype=np.uint8)
    for _ in range(count):
        x0, x1 = rng.integers(0, shape[1], 2)
        y0, y1 = rng.integers(0, shape[0], 2)
        cv2.line(image, (int(x0), int(y0)), (int(x1), int(y1)), 1, int(rng.integers(*widths)))
    return image.astype(bool)


# --- thinning ---------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 24), st.integers(1, 24))))
def test_thin_equals_scikit_image_on_any_mask(image):
    np.testing.assert_array_equal(thin(image), skimage.morphology.thin(image))


def test_thin_equals_scikit_image_on_drawn_lines_mid_size():
    # large enough for OpenCV's multi-threaded filtering paths, lines up to 24 px wide
    image = drawn_lines((512, 768), 30, np.random.default_rng(1), widths=(3, 25))
    before = image.copy()
    result = thin(image)
    assert result.dtype == bool
    np.testing.assert_array_equal(result, skimage.morphology.thin(image))
    np.testing.assert_array_equal(image, before)


def test_thin_of_thick_bar_is_a_line():
    image = np.zeros((7, 12), dtype=np.uint8)
    image[2:5, 1:11] = 255
    skeleton = thin(image)
    assert skeleton[3, 2:10].all() and skeleton.sum() == skeleton[3].sum()


# --- scores -----------------------------------------------------------------------------------


def test_hand_made_known_answers():
    # ground truth: a 3-pixel-wide bar whose skeleton is its middle row, 8 pixels long
    gt = np.zeros((7, 12), dtype=bool)
    gt[2:5, 1:11] = True
    skeleton = thin(gt)
    assert skeleton.sum() == 8 and skeleton[3, 2:10].all()
    # prediction: the middle row only, over columns 0..5 (column 0 lies outside the ground truth)
    pred = np.zeros_like(gt)
    pred[3, 0:6] = True
    scores = score_masks(pred, gt)
    assert set(scores) == KEYS and all(type(v) is float for v in scores.values())
    p, r, rps = 5 / 6, 5 / 30, 4 / 8
    assert scores["precision"] == pytest.approx(p, abs=1e-12)
    assert scores["recall"] == pytest.approx(r, abs=1e-12)
    assert scores["pfm"] == pytest.approx(2 * p * rps / (p + rps), abs=1e-12)
    assert scores["fm"] == pytest.approx(2 * p * r / (p + r), abs=1e-12)
    assert scores["iou"] == pytest.approx(5 / 31, abs=1e-12)
    assert scores["dice"] == pytest.approx(10 / 36, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    gt = drawn_lines((96, 128), 6, rng)
    pred = drawn_lines((96, 128), 6, rng) | np.roll(gt, int(rng.integers(-3, 4)), axis=1)
    mask = np.zeros_like(gt)
    mask[10:90, 5:120] = True
    for m in (None, mask):
        ours = score_masks(pred.astype(np.uint8) * 255, gt, mask=m)
        ref = reference_scores(pred, gt, m)
        for key in KEYS:
            assert ours[key] == pytest.approx(ref[key], abs=1e-6), key


def test_mask_restricts_counting():
    gt = np.zeros((4, 8), dtype=bool)
    gt[1, :] = True
    pred = np.zeros_like(gt)
    pred[1, :4] = True
    pred[3, 6:] = True  # false positives outside the mirror area
    mask = np.zeros_like(gt)
    mask[:, :4] = True
    scores = score_masks(pred, gt, mask=mask)
    assert scores["precision"] == 1 and scores["recall"] == 1 and scores["iou"] == 1
    assert score_masks(pred, gt)["precision"] == pytest.approx(4 / 6)


def test_precomputed_skeleton_gives_same_scores():
    rng = np.random.default_rng(3)
    gt = drawn_lines((64, 64), 4, rng)
    pred = np.roll(gt, 2, axis=0)
    assert score_masks(pred, gt, gt_skeleton=thin(gt)) == score_masks(pred, gt)


def test_both_empty_scores_one():
    empty = np.zeros((5, 5), dtype=bool)
    assert score_masks(empty, empty) == dict.fromkeys(KEYS, 1.0)


def test_empty_prediction_scores_zero():
    gt = np.zeros((5, 5), dtype=bool)
    gt[2] = True
    assert score_masks(np.zeros_like(gt), gt) == dict.fromkeys(KEYS, 0.0)


def test_prediction_of_empty_ground_truth_scores_zero():
    pred = np.zeros((5, 5), dtype=bool)
    pred[2] = True
    assert score_masks(pred, np.zeros_like(pred)) == dict.fromkeys(KEYS, 0.0)


def test_disjoint_masks_score_zero_and_identical_score_one():
    gt = np.zeros((5, 5), dtype=bool)
    gt[1] = True
    pred = np.zeros_like(gt)
    pred[3] = True
    assert score_masks(pred, gt) == dict.fromkeys(KEYS, 0.0)
    assert score_masks(gt, gt) == dict.fromkeys(KEYS, 1.0)


def test_plain_functions_agree_with_score_masks():
    rng = np.random.default_rng(4)
    gt = drawn_lines((48, 48), 3, rng)
    pred = drawn_lines((48, 48), 3, rng) | gt[::-1]
    scores = score_masks(pred, gt)
    assert pseudo_f_measure(pred, gt) == scores["pfm"]
    assert f_measure(pred, gt) == scores["fm"]
    assert iou(pred, gt) == scores["iou"]
    assert dice(pred, gt) == scores["dice"]
    assert precision(pred, gt) == scores["precision"]
    assert recall(pred, gt) == scores["recall"]


def test_float_masks_of_zeros_and_ones_are_accepted():
    gt = np.zeros((4, 4), dtype=np.float32)
    gt[1] = 1
    assert score_masks(gt, gt.astype(bool))["iou"] == 1.0


def test_inputs_not_modified():
    gt = np.zeros((6, 6), dtype=bool)
    gt[2:4] = True
    pred = np.eye(6, dtype=bool)
    mask = np.ones((6, 6), dtype=bool)
    mask[0] = False
    copies = [a.copy() for a in (pred, gt, mask)]
    score_masks(pred, gt, mask=mask)
    for a, b in zip((pred, gt, mask), copies, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"pred": np.zeros((4, 4)), "gt": np.zeros((4, 5))}, "same shape"),
        ({"pred": np.zeros((4, 4, 1)), "gt": np.zeros((4, 4))}, "pred"),
        ({"pred": np.zeros((4, 4)), "gt": np.zeros((4, 4)), "mask": np.zeros((3, 4))}, "mask"),
        (
            {"pred": np.zeros((4, 4)), "gt": np.zeros((4, 4)), "gt_skeleton": np.ones((4, 4))},
            "gt_skeleton",
        ),
        ({"pred": np.array([["a"]]), "gt": np.zeros((1, 1))}, "pred"),
        ({"pred": np.zeros((2, 2)), "gt": np.full((2, 2), 0.7)}, "gt is a float array"),
    ],
)
def test_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        score_masks(**kwargs)
