import cv2
import numpy as np
import pytest

from refinement_model.metrics import score_masks
from refinement_model.patches import PatchGrid
from refinement_model.strokes import Stroke, rasterize_stroke
from simulation import protocol
from simulation.protocol import ProtocolConfig, _PatchQueue, patch_stroke_to_view, run_protocol

SIZE = 128


def _scene():
    """Ground truth with three lines; a prediction that misses one and adds a false line."""
    gt = np.zeros((SIZE, SIZE), np.uint8)
    cv2.line(gt, (10, 20), (118, 20), 1, 9)
    cv2.line(gt, (20, 40), (20, 118), 1, 9)
    cv2.line(gt, (40, 100), (110, 60), 1, 9)
    pred = gt.copy()
    pred[:, 60:] = 0  # the right half of the top line and the slanted line are missed
    pred[:, :60] = gt[:, :60]
    cv2.line(pred, (60, 80), (100, 80), 1, 9)  # a scratch taken for a line
    gt, pred = gt.astype(bool), pred.astype(bool)
    base_logits = np.where(pred, 4.0, -4.0).astype(np.float32)
    # The "image" carries the ground truth, so that the ideal refiner below can complete lines.
    image = gt[None].astype(np.float32)
    return image, base_logits, gt


def ideal_refiner(image, base, delta):
    """Near any stroke, the ideal network tells the truth (from the image); elsewhere it keeps
    the base prediction."""
    near = cv2.dilate((delta != 0).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    return np.where(near, np.where(image[0] > 0.5, 8.0, -8.0), base).astype(np.float32)


def passive_refiner(image, base, delta):
    return base.copy()


GRID = PatchGrid(SIZE, SIZE, patch_size=64, stride=32, net_size=32)


def _run(refine, **config):
    image, base, gt = _scene()
    return run_protocol(
        image,
        base,
        gt,
        refine,
        grid=GRID,
        rng=0,
        config=ProtocolConfig(**{"steps": 60, "record_every": 10, **config}),
    )


def test_curves_start_at_the_initial_prediction_score():
    image, base, gt = _scene()
    records = _run(ideal_refiner)
    initial = score_masks(base > 0, gt)
    assert records[0]["step"] == 0 and records[0]["strokes"] == 0
    for which in ("human", "network"):
        assert records[0][f"pfm_{which}"] == pytest.approx(initial["pfm"], abs=1e-12)
        assert records[0][f"iou_{which}"] == pytest.approx(initial["iou"], abs=1e-12)


def test_records_every_n_steps_and_at_the_end():
    records = _run(passive_refiner, steps=25, record_every=10)
    assert [r["step"] for r in records] == [0, 10, 20, 25]


def test_strokes_improve_the_human_only_mask_and_the_network_helps():
    records = _run(ideal_refiner)
    first, last = records[0], records[-1]
    assert last["strokes"] > 0 and last["annotated_pixels"] > 0
    assert last["pfm_human"] > first["pfm_human"]
    # The ideal refiner completes lines around each stroke: more gain than the strokes alone.
    assert last["pfm_network"] > last["pfm_human"]


def test_a_refiner_that_ignores_strokes_equals_human_only():
    records = _run(passive_refiner)
    for record in records:
        assert record["pfm_network"] == pytest.approx(record["pfm_human"], abs=1e-12)


def test_accept_rule_rejects_strokes_that_do_not_help():
    # With a perfect prediction no stroke can raise the patch pFM: none is ever committed.
    image, _, gt = _scene()
    perfect = np.where(gt, 4.0, -4.0).astype(np.float32)
    records = run_protocol(
        image, perfect, gt, ideal_refiner, grid=GRID, rng=0, config=ProtocolConfig(steps=30)
    )
    assert records[-1]["strokes"] == 0
    assert records[-1]["pfm_human"] == records[0]["pfm_human"]


def test_operations_ablation_draws_only_the_allowed_kind():
    add_only = _run(ideal_refiner, operations=("add",))
    erase_only = _run(ideal_refiner, operations=("erase",))
    both = _run(ideal_refiner)
    assert add_only[-1]["strokes"] > 0 and erase_only[-1]["strokes"] > 0
    assert add_only != erase_only != both


def test_same_seed_same_records_and_gt_free_ranking_runs():
    assert _run(ideal_refiner) == _run(ideal_refiner)
    records = _run(ideal_refiner, ranking="gt_free")
    assert records[-1]["strokes"] > 0


def test_mirror_mask_restricts_scoring():
    image, base, gt = _scene()
    mirror = np.zeros_like(gt)
    mirror[:, :64] = True
    records = run_protocol(
        image,
        base,
        gt,
        passive_refiner,
        grid=GRID,
        mirror_mask=mirror,
        config=ProtocolConfig(steps=0),
    )
    assert records[0]["pfm_human"] == pytest.approx(score_masks(base > 0, gt, mask=mirror)["pfm"])


def test_patch_frame_and_view_frame_agree():
    # A stroke drawn in network pixels of a patch covers the same place once taken to view
    # pixels and rasterised back onto the patch.
    stroke = Stroke("add", [(10.0, 12.0), (16.0, 12.0)], 2.0)
    index = 5
    view_stroke = patch_stroke_to_view(stroke, GRID, index)
    back = rasterize_stroke(
        view_stroke, (32, 32), origin=GRID.network_origin(index), scale=GRID.scale
    )
    assert np.array_equal(back, rasterize_stroke(stroke, (32, 32)))


def test_bad_inputs_are_refused():
    image, base, gt = _scene()
    with pytest.raises(ValueError, match="ground_truth"):
        run_protocol(image, base, gt[:10], passive_refiner, grid=GRID)
    with pytest.raises(ValueError, match="ranking"):
        ProtocolConfig(ranking="psychic")


def test_a_stroke_refines_every_patch_it_touches():
    # The first step commits the same stroke either way. Refined only in its queued patch, the
    # truth the ideal network finds near the stroke is diluted by the unrefined overlapping
    # patches in the blend; refined in every patch it touches (as the app does), it is not.
    touched = _run(ideal_refiner, steps=1, record_every=1)
    queued = _run(ideal_refiner, steps=1, record_every=1, refine_touched=False)
    assert touched[1]["strokes"] == queued[1]["strokes"] == 1
    assert touched[1]["pfm_human"] == queued[1]["pfm_human"]
    assert touched[1]["pfm_network"] > queued[1]["pfm_network"]


def test_patch_queue_ranks_a_patch_anew_and_leaves_out_unreachable_ones():
    queue = _PatchQueue()
    for priority, index in ((-0.9, 0), (-0.5, 1), (-0.7, 2), (np.inf, 3)):
        queue.push(priority, index)
    assert 3 not in queue and 0 in queue
    queue.push(-0.1, 0)  # patch 0 got better: its older, worse key no longer counts
    assert [queue.pop() for _ in range(4)] == [2, 1, 0, None]
    assert 0 not in queue


def _adaptive_run(adapt, **config):
    image, base, gt = _scene()
    return run_protocol(
        image,
        base,
        gt,
        ideal_refiner,
        grid=GRID,
        rng=0,
        adapt=adapt,
        config=ProtocolConfig(**{"steps": 60, "record_every": 10, "adapt_every": 3, **config}),
    )


def test_a_rejected_adaptation_changes_nothing_and_sees_no_ground_truth():
    calls = []

    def reject(patches):
        calls.append(patches)
        return None

    records = _adaptive_run(reject)
    assert records == _run(ideal_refiner)
    assert len(calls) >= 2
    n = GRID.net_size
    for image, start, target, user in calls[-1]:
        assert image.shape == (1, n, n) and start.shape == target.shape == user.shape == (n, n)
        assert target.dtype == bool and user.dtype == np.int8 and user.any()
        # the target is what the user left: the user's strokes where drawn
        assert np.array_equal(target[user != 0], user[user != 0] > 0)


def test_an_accepted_adaptation_refines_and_propagates():
    _, base, gt = _scene()

    def truthful(image, start, delta):
        return np.where(image[0] > 0.5, 8.0, -8.0).astype(np.float32)

    calls = []

    def accept(patches):
        calls.append(len(patches))
        return truthful

    records = _adaptive_run(accept)
    frozen = _run(ideal_refiner)
    assert calls and records != frozen
    assert records[-1]["pfm_network"] > frozen[-1]["pfm_network"]


def test_an_adaptation_that_decides_alike_changes_nothing():
    """Logits of an adapted refiner that differ from the frozen one's but decide alike leave
    every mask as the frozen run's (a logit difference would flip the start's lines here: the
    frozen refiner, with no strokes, calls every pixel background)."""

    def sure(image, base, delta):
        near = cv2.dilate((delta != 0).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
        return np.where(near, np.where(image[0] > 0.5, 8.0, -8.0), -8.0).astype(np.float32)

    def surer(image, base, delta):
        # three times as sure with no strokes: what propagation shows
        return (1 if delta.any() else 3) * sure(image, base, delta)

    calls = []

    def accept(patches):
        calls.append(len(patches))
        return surer

    image, base, gt = _scene()
    runs = [
        run_protocol(
            image,
            base,
            gt,
            sure,
            grid=GRID,
            rng=0,
            adapt=adapt,
            config=ProtocolConfig(steps=30, record_every=10, adapt_every=3 if adapt else 0),
        )
        for adapt in (None, accept)
    ]
    assert calls and runs[1] == runs[0]


def test_adapt_every_needs_an_adapt_function():
    image, base, gt = _scene()
    with pytest.raises(ValueError, match="needs an adapt function"):
        run_protocol(
            image, base, gt, ideal_refiner, grid=GRID, config=ProtocolConfig(steps=5, adapt_every=2)
        )
    with pytest.raises(ValueError, match="adapt_every"):
        ProtocolConfig(adapt_every=-1)


def _attempts(monkeypatch):
    """Record each simulated attempt: (patch, committed, patch pFM before and after it, the
    patch's corrected_patch after it)."""
    attempts = []
    attempt = protocol._attempt

    def recording(state, index, rng):
        before = state.patch_pfm(index)
        changed = attempt(state, index, rng)
        after = state.patch_pfm(index), state.corrected_patch(index)
        attempts.append((index, changed is not None, before, *after))
        return changed

    monkeypatch.setattr(protocol, "_attempt", recording)
    return attempts


def _visits(attempts):
    """The attempts grouped into visits: runs of consecutive attempts on one patch."""
    visits = []
    for index, *attempt in attempts:
        if not visits or visits[-1][0] != index:
            visits.append((index, []))
        visits[-1][1].append(attempt)
    return visits


def test_the_finishing_user_stays_on_a_patch_until_it_is_finished(monkeypatch):
    attempts = _attempts(monkeypatch)
    _run(ideal_refiner, finish_pfm=0.95, steps=80)
    visits = _visits(attempts)
    patches = [index for index, _ in visits]
    assert len(visits) >= 3 and len(set(patches)) == len(patches)  # never back to a patch
    for _, tries in visits[:-1]:  # the last may be cut short by the step budget
        committed, before, pfm, _ = zip(*tries, strict=True)
        finished = pfm[-1] >= 0.95 or committed[-3:] == (False,) * 3
        assert finished and all(p < 0.95 for p in pfm[:-1])
        assert before[0] < 0.95  # a patch finished already is never drawn on
    # the paper's user, on the same view, leaves a patch after one attempt and comes back
    attempts.clear()
    _run(ideal_refiner, steps=80)
    paper = [index for index, _ in _visits(attempts)]
    assert len(set(paper)) < len(paper)


def test_the_finishing_user_adapts_on_the_patches_as_it_left_them(monkeypatch):
    attempts = _attempts(monkeypatch)
    calls = []

    def reject(patches):
        calls.append(list(patches))
        return None

    # steps enough for every patch to be finished
    records = _adaptive_run(reject, finish_pfm=0.95, adapt_every=1, steps=200)
    visits = _visits(attempts)
    # a patch is finished if the user committed a stroke on it; its corrected mask is the one
    # the user left, whatever later strokes on its neighbours do to it
    left = [tries[-1][3] for _, tries in visits if any(t[0] for t in tries)]
    assert len(left) >= 3 and len(calls) == len(left) - 1
    for number, patches in enumerate(calls, start=2):
        assert len(patches) == number
        for passed, expected in zip(patches, left, strict=False):
            for got, want in zip(passed, expected, strict=True):
                np.testing.assert_array_equal(got, want)
    assert records == _run(ideal_refiner, finish_pfm=0.95, steps=200)


def test_finish_pfm_is_a_pfm():
    for bad in (1.5, -0.1, float("nan"), "0.9", True):
        with pytest.raises(ValueError, match="finish_pfm"):
            ProtocolConfig(finish_pfm=bad)
