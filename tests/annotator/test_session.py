import numpy as np
import pytest
from scipy.special import expit

from annotator.core import events
from annotator.core import provenance as prov
from annotator.core.refiners import SpreadRefiner
from annotator.core.session import HALF_WIDTH_MEAN, AnnotationSession, default_radius
from refinement_model import corrections
from refinement_model.errors import Cancelled
from refinement_model.metrics import score_masks
from refinement_model.patches import blend_logits, stitch_logits, stitch_region_logits
from refinement_model.strokes import Stroke, rasterize_stroke, stroke_channel
from tests.annotator.session_fixtures import (
    CountingRefiner,
    assert_same_state,
    make_session,
    replayed,
    small_base,
    small_grid,
    small_view,
    state,
)

ADD = Stroke("add", [(50, 31), (86, 31)], 1.5)  # completes the first line
ERASE = Stroke("erase", [(20, 45), (30, 45)], 3.0)


def constant_refiner(value):
    return lambda image, base, channel: np.full_like(base, value)


def test_default_radius_is_the_gamma_mean():
    assert pytest.approx(6.19, abs=0.005) == HALF_WIDTH_MEAN
    assert default_radius(0.5) == pytest.approx(HALF_WIDTH_MEAN / 2)
    with pytest.raises(ValueError, match="scale"):
        default_radius(0)


def test_initial_state_is_the_base_prediction():
    session = make_session()
    assert session.mask.dtype == bool and session.provenance.dtype == np.uint8
    assert np.array_equal(session.probabilities, expit(session.base_logits))
    assert np.array_equal(session.mask, session.base_logits > 0)
    assert not session.provenance.any() and not session.user_map.any()
    with pytest.raises(ValueError):
        session.mask[0, 0] = True  # read-only views


def test_add_stroke_burns_in_and_refines_neighbourhood():
    session = make_session()
    base = small_base(session.view)
    session.apply_stroke(ADD)
    drawn = rasterize_stroke(ADD, session.grid.shape)
    assert session.mask[drawn].all()
    assert (session.user_map[drawn] == 1).all() and not session.user_map[~drawn].any()
    assert (session.provenance[drawn] == prov.HUMAN_ADD).all()
    # the refiner grew the line beyond the stroke: those pixels are marked as its work
    grown = session.mask & ~drawn & ~(base > 0)
    assert grown.any() and (session.provenance[grown] == prov.REFINER).all()
    assert session.journal[-1]["accepted"] is True and session.effort()["strokes"] == 1


def test_later_strokes_paint_over_earlier_ones():
    session = make_session(None)
    session.apply_stroke(Stroke("add", [(10, 10), (30, 10)], 2.0))
    session.apply_stroke(Stroke("erase", [(20, 5), (20, 15)], 2.0))
    assert session.user_map[10, 12] == 1 and session.mask[10, 12]
    assert session.user_map[10, 20] == -1 and not session.mask[10, 20]
    assert session.provenance[10, 20] == prov.HUMAN_ERASE


@pytest.mark.parametrize("kind, push", [("add", -50.0), ("erase", 50.0)])
def test_refinement_never_overwrites_user_pixels(kind, push):
    session = make_session(constant_refiner(push))
    stroke = Stroke(kind, [(20, 20), (70, 70)], 4.0)
    session.apply_stroke(stroke)
    drawn = rasterize_stroke(stroke, session.grid.shape)
    assert (session.mask[drawn] == (kind == "add")).all()
    # everywhere else (every patch is refined here) the network won
    assert (session.mask[~drawn] == (push > 0)).all()


def test_region_blend_equals_whole_view_blend():
    grid = small_grid()
    rng = np.random.default_rng(3)
    base = rng.normal(size=grid.shape).astype(np.float32)
    deltas = {i: rng.normal(size=(grid.net_size, grid.net_size)).astype(np.float16) for i in (0, 3)}
    whole = blend_logits(grid, base, deltas, (0, 0, 96, 96))
    for region in [(0, 0, 40, 50), (10, 33, 96, 96), (31, 31, 33, 33), (64, 0, 96, 96)]:
        y0, x0, y1, x1 = region
        assert np.array_equal(blend_logits(grid, base, deltas, region), whole[y0:y1, x0:x1])
    # no change where no refined patch reaches
    only_first = blend_logits(grid, base, {0: deltas[0]}, (0, 0, 96, 96))
    assert np.array_equal(only_first[64:], base[64:])
    assert not np.array_equal(only_first[:64, :64], base[:64, :64])


def test_blend_matches_the_stitching_contract_on_zero_base():
    grid = small_grid()
    rng = np.random.default_rng(4)
    deltas = {i: rng.normal(size=(grid.net_size, grid.net_size)).astype(np.float32) for i in (1, 3)}
    zero = np.zeros(grid.shape, np.float32)
    stitched = stitch_logits(
        grid, (deltas.get(i, np.zeros((grid.net_size,) * 2, np.float32)) for i in range(len(grid)))
    )
    assert np.allclose(expit(blend_logits(grid, zero, deltas, (0, 0, 96, 96))), stitched, atol=1e-6)


def test_session_region_updates_equal_a_full_rebuild():
    session = make_session()
    for stroke in (ADD, ERASE, Stroke("add", [(5, 61), (40, 61)], 2.0)):
        session.apply_stroke(stroke)
    assert_same_state(state(session), state(replayed(session)))


def test_proposal_diff_accept_and_reject():
    session = make_session()
    before = state(session)
    proposal = session.propose_stroke(ADD)
    assert session.pending is proposal
    assert_same_state(before, state(session))  # nothing changes before the decision
    assert proposal.added.any() and not (proposal.added & proposal.removed).any()
    with pytest.raises(RuntimeError, match="pending"):
        session.undo()
    session.reject()
    y0, x0, y1, x1 = proposal.region
    assert np.array_equal(session.mask[y0:y1, x0:x1], proposal.human_mask)
    assert np.array_equal(session.probabilities, before[1])  # the network's change is not kept
    assert session.journal[-1]["accepted"] is False
    session.undo()
    proposal = session.propose_stroke(ADD)
    session.accept()
    assert np.array_equal(session.mask[y0:y1, x0:x1], proposal.mask)
    assert session.effort()["accepted"] == 1 and session.effort()["rejected"] == 0
    with pytest.raises(RuntimeError, match="no refinement"):
        session.accept()


class PreviewedRefiner(CountingRefiner):
    """A refiner with a faster ``preview`` that refines differently (a weaker spread)."""

    def __init__(self):
        super().__init__(sigma=1.5, strength=6.0)
        self.preview = CountingRefiner(sigma=1.0, strength=2.0)


def test_preview_is_shown_first_and_the_refiners_own_result_is_kept():
    refiner = PreviewedRefiner()
    session = make_session(refiner)
    preview = session.propose_stroke(ADD, preview=True)
    assert not preview.final and refiner.preview.calls > 0 and refiner.calls == 0
    job = session.finishing_job()
    session.visit(0)  # the session goes on while the job would run elsewhere
    deltas = job()
    final = session.finish_proposal(preview, deltas)
    assert final.final and session.pending is final and final.region == preview.region
    assert not np.array_equal(final.mask, preview.mask)  # the two refiners differ here
    assert session.finish_proposal(final) is final
    session.accept()
    # what is kept is the refiner's: the same as a session that never previewed
    plain = make_session(PreviewedRefiner())
    plain.apply_stroke(ADD)
    assert_same_state(state(plain), state(session))
    assert_same_state(state(session), state(replayed(session)))


def test_accepting_a_preview_finishes_it_and_stale_results_are_refused():
    session = make_session(PreviewedRefiner())
    preview = session.propose_stroke(ADD, preview=True)
    session.accept()  # before its finishing job ran: computed here
    plain = make_session(PreviewedRefiner())
    plain.apply_stroke(ADD)
    assert_same_state(state(plain), state(session))
    # a job's result for a proposal no longer pending is refused
    job_of_erase = (session.propose_stroke(ERASE, preview=True), session.finishing_job())
    session.reject()
    with pytest.raises(RuntimeError, match="not the pending"):
        session.finish_proposal(job_of_erase[0], job_of_erase[1]())
    with pytest.raises(RuntimeError, match="not the pending"):
        session.finish_proposal(preview)
    with pytest.raises(RuntimeError, match="no refinement"):
        session.finishing_job()
    # deltas for other patches than the preview's are refused
    preview = session.propose_stroke(ADD, preview=True)
    with pytest.raises(ValueError, match="patches"):
        session.finish_proposal(preview, {0: next(iter(preview.deltas.values()))})


def test_without_a_preview_refiner_a_preview_request_gives_the_final_proposal():
    refiner = CountingRefiner()
    session = make_session(refiner)
    proposal = session.propose_stroke(ADD, preview=True)
    assert proposal.final and refiner.calls > 0


def test_cancelled_proposal_changes_nothing():
    session = make_session()
    before = state(session)
    with pytest.raises(Cancelled):
        session.propose_stroke(ADD, cancel=lambda: True)
    assert session.pending is None and session.journal == []
    assert_same_state(before, state(session))


def test_undo_redo_are_exact_and_redo_is_cleared_by_a_new_edit():
    session = make_session()
    states = [state(session)]
    for stroke in (ADD, ERASE):
        session.apply_stroke(stroke)
        states.append(state(session))
    session.undo()
    assert_same_state(states[1], state(session))
    session.undo()
    assert_same_state(states[0], state(session))
    assert session.effort()["annotated_pixels"] == 0
    session.redo()
    assert_same_state(states[1], state(session))
    session.apply_stroke(Stroke("add", [(70, 80)], 3.0))
    assert not session.can_redo
    with pytest.raises(ValueError, match="nothing to redo"):
        session.redo()


def test_undo_recomputes_evicted_refinements_exactly():
    refine = CountingRefiner(sigma=1.5, strength=6.0)
    session = make_session(refine, cache_bytes=0)
    session.apply_stroke(ADD)
    first = state(session)
    session.apply_stroke(Stroke("add", [(60, 40), (80, 35)], 2.0))
    calls = refine.calls
    session.undo()
    assert refine.calls > calls  # nothing cached: the old versions were refined again
    assert_same_state(first, state(session))


def test_history_is_bounded():
    session = make_session(None, history_limit=2)
    for x in (10, 30, 50):
        session.apply_stroke(Stroke("add", [(x, 80)], 2.0))
    session.undo()
    session.undo()
    assert not session.can_undo and session.effort()["strokes"] == 1
    with pytest.raises(ValueError, match="nothing to undo"):
        session.undo()
    # replay reproduces the bound
    assert not replayed(session, None, history_limit=2).can_undo


def test_queue_scores_know_the_users_pixels():
    from annotator.core.patch_queue import patch_scores

    session = make_session()
    for stroke in (ADD, ERASE):
        session.apply_stroke(stroke)
        expected = patch_scores(
            session.probabilities, session.grid, session.view.mirror_mask, session.user_map
        )
        np.testing.assert_allclose(session.queue.scores, expected, rtol=1e-9)
    session.undo()
    expected = patch_scores(
        session.probabilities, session.grid, session.view.mirror_mask, session.user_map
    )
    np.testing.assert_allclose(session.queue.scores, expected, rtol=1e-9)


def test_replay_reproduces_mask_history_and_queue():
    session = make_session()
    session.apply_stroke(ADD)
    session.next_patch()
    session.mark_done(0)
    session.apply_stroke(ERASE)
    session.undo()
    again = replayed(session)
    assert_same_state(state(session), state(again))
    assert again.journal == session.journal
    assert np.array_equal(again.patch_states, session.patch_states)
    assert np.array_equal(again.queue.scores, session.queue.scores)
    again.redo()
    session.redo()
    assert_same_state(state(session), state(again))


def test_replay_with_stored_patch_deltas_needs_no_refiner():
    session = make_session()
    session.apply_stroke(ADD)
    session.apply_stroke(ERASE)
    again = replayed(session, None, patch_deltas=session.patch_deltas())
    assert_same_state(state(session), state(again))
    with pytest.raises(ValueError, match="no refiner"):
        replayed(session, None)


@pytest.mark.parametrize("slab_rows", [1, 64])
def test_replay_rebuilt_in_any_slabs_equals_the_live_session(monkeypatch, slab_rows):
    session = make_session()
    for stroke in (ADD, ERASE, Stroke("add", [(5, 61), (40, 61)], 2.0)):
        session.apply_stroke(stroke)
    session.undo()
    session.apply_stroke(Stroke("erase", [(70, 80), (90, 85)], 2.0), refine=False)
    monkeypatch.setattr(events, "_SLAB_ROWS", slab_rows)
    monkeypatch.setattr(corrections, "_SLAB_ROWS", slab_rows)
    for again in (replayed(session), replayed(session, None, patch_deltas=session.patch_deltas())):
        assert_same_state(state(session), state(again))
        assert np.array_equal(again.queue.scores, session.queue.scores)


def test_replay_names_the_bad_event():
    session = make_session()
    session.apply_stroke(ADD)
    events = session.journal + [{"type": "undo"}, {"type": "undo"}]
    with pytest.raises(ValueError, match=r"events\[2\]: nothing to undo"):
        AnnotationSession.replay(
            session.view,
            session.base_logits,
            None,
            events,
            grid=small_grid(),
            patch_deltas=session.patch_deltas(),
        )
    with pytest.raises(ValueError, match=r"events\[0\].*type"):
        AnnotationSession.replay(
            session.view, session.base_logits, None, [{"type": "x"}], grid=small_grid()
        )


def test_listeners_get_the_event_and_a_region_holding_every_change():
    session = make_session()
    changes = []
    session.add_listener(changes.append)
    before = state(session)
    session.apply_stroke(ADD)
    after = state(session)
    (change,) = changes
    assert change.event is session.journal[-1]
    y0, x0, y1, x1 = change.region
    outside = np.ones(session.grid.shape, bool)
    outside[y0:y1, x0:x1] = False
    for a, b in zip(before, after, strict=True):
        assert np.array_equal(a[outside], b[outside])
    session.visit(3)
    assert changes[-1].region is None and changes[-1].patches == (3,)


def test_stroke_outside_the_view_is_refused():
    session = make_session()
    with pytest.raises(ValueError, match="overlap the view"):
        session.apply_stroke(Stroke("add", [(500, 500)], 2.0))
    assert session.journal == []


def test_scores_follow_the_mask_and_need_ground_truth():
    session = make_session()
    view = session.view
    expected = score_masks(session.mask, view.ground_truth, mask=view.mirror_mask)
    assert session.scores() == pytest.approx(expected)
    session.apply_stroke(Stroke("add", [(48, 31), (87, 31)], 1.5), refine=False)
    assert session.scores()["pfm"] > expected["pfm"]
    assert make_session(view=small_view(ground_truth=False)).scores() is None


def test_effort_counts_pixels_and_capped_time():
    times = iter([0.0, 10.0, 500.0])
    session = make_session(None, clock=lambda: next(times))
    session.apply_stroke(Stroke("add", [(10, 10), (20, 10)], 2.0))
    session.apply_stroke(Stroke("erase", [(15, 10)], 2.0))
    session.visit(0)
    effort = session.effort(idle_cap_s=60.0)
    assert effort["annotated_pixels"] == np.count_nonzero(session.user_map)
    assert effort["strokes"] == 2 and effort["time_s"] == 70.0


def test_patch_states_follow_strokes_done_and_undo():
    session = make_session(None)
    first = session.next_patch()
    assert session.patch_states[first] == 1  # visited
    stroke = Stroke("add", [(5, 5)], 1.0)  # only patch 0 holds it
    session.apply_stroke(stroke)
    assert session.patch_states[0] == 2  # refined
    session.mark_done(0)
    assert session.patch_states[0] == 3
    session.undo()
    assert session.patch_states[0] == 2
    session.undo()
    assert session.patch_states[0] == (1 if first == 0 else 0)


def test_revisit_and_coverage_through_the_session():
    session = make_session(None)
    assert session.revisit_patch() is None and session.coverage() == 0.0
    first = session.next_patch()
    session.skip(first)
    others = [session.next_patch() for _ in range(3)]  # 4 patches: the others come first
    assert sorted(others + [first]) == [0, 1, 2, 3]
    assert session.next_patch() == first  # then the skipped one again
    assert session.next_patch() is None
    assert session.revisit_patch() in (0, 1, 2, 3)
    for index in range(4):
        session.mark_done(index)
    assert session.revisit_patch() is None
    session.undo()
    assert session.revisit_patch() == 3
    assert 0 < session.coverage(done_only=True) < session.coverage() == 1.0


def test_memory_of_refined_patches_and_cache_is_reported_and_bounded():
    session = make_session(cache_bytes=2 * 64 * 64 * 2)  # room for two patch changes
    assert session.memory_bytes() == {"refined_patches": 0, "cache": 0}
    for x in (20, 40, 60, 75):
        session.apply_stroke(Stroke("add", [(x, 50)], 2.0))
    memory = session.memory_bytes()
    assert memory["refined_patches"] == 4 * 64 * 64 * 2  # 4 patches, float16 at net size
    assert 0 < memory["cache"] <= 2 * 64 * 64 * 2


def test_prepared_refinement_input_gives_the_same_result():
    # The app builds the refiner's input at open; strokes then refine exactly as before.
    lazy, prepared = make_session(), make_session()
    prepared.prepare_refinement()
    for session in (lazy, prepared):
        session.apply_stroke(ADD)
        session.apply_stroke(ERASE)
    assert_same_state(state(lazy), state(prepared))


class BatchCountingRefiner(CountingRefiner):
    """Also offers ``refine_batch``, as ``PatchRefiner`` does; records the batches' shapes."""

    def __init__(self, **options):
        super().__init__(**options)
        self.batches = []

    def refine_batch(self, image_patches, base_logits, stroke_channels):
        self.batches.append(np.shape(base_logits))
        return np.stack(
            [
                self.inner(*job)
                for job in zip(image_patches, base_logits, stroke_channels, strict=True)
            ]
        )


def test_the_patches_of_a_stroke_are_refined_as_one_image():
    batched = BatchCountingRefiner(sigma=1.5, strength=6.0)
    single = CountingRefiner(sigma=1.5, strength=6.0)
    sessions = [make_session(refine) for refine in (batched, single)]
    for session in sessions:
        proposal = session.propose_stroke(ADD)
        session.accept()
    assert sorted(proposal.deltas) == [0, 1, 2, 3]  # all 2 x 2 patches: the whole 96 x 96 view
    assert batched.batches == [(1, 96, 96)] and batched.calls == 0
    assert single.calls == 1
    assert_same_state(state(sessions[0]), state(sessions[1]))
    # each patch's change is its part of the one image's refinement
    session, grid = sessions[0], sessions[0].grid
    refined = SpreadRefiner(sigma=1.5, strength=6.0)(
        session.network_image, session.base_logits, stroke_channel([ADD], grid.shape)
    )
    for index, delta in proposal.deltas.items():
        y0, x0, y1, x1 = grid.region(index)
        expected = refined[y0:y1, x0:x1] - session.base_logits[y0:y1, x0:x1]
        np.testing.assert_array_equal(delta, expected.astype(np.float16))


def test_a_refiner_returning_the_wrong_batch_shape_is_refused():
    def wrong(image_patches, base_logits, stroke_channels):
        return base_logits[:, 1:]

    refiner = CountingRefiner()
    refiner.refine_batch = wrong
    session = make_session(refiner)
    with pytest.raises(ValueError, match="shape"):
        session.propose_stroke(ADD)
    assert session.pending is None and session.journal == []


def test_the_start_refined_later_changes_untouched_patches_one_box_each():
    session = make_session()
    grid, start = session.grid, session.base_logits.copy()
    mask = session.mask.copy()
    seen = []
    session.add_listener(seen.append)
    ones = np.full((grid.net_size, grid.net_size), 4.0, np.float32)
    changes = session.refine_start({3: ones, 0: ones})
    # patches 0 and 3 lie in opposite corners: each is refreshed over its own box only
    assert [c.region for c in changes] == [grid.region(0), grid.region(3)]
    assert seen == changes and session.journal == []  # not a journal event
    assert session.start_updates == 1
    # blended as the stitching would: the change fades out towards the patch border
    expected = start + stitch_region_logits(
        grid, {0: ones, 3: ones}, (0, 0, *grid.shape), missing=0.0
    )
    np.testing.assert_allclose(session.base_logits, expected, atol=0.02)
    np.testing.assert_allclose(session.probabilities, expit(session.base_logits), atol=1e-6)
    assert session.mask.sum() > mask.sum()
    # a stroke freezes the patches it touches: their pixels keep the start they have
    session.apply_stroke(Stroke("erase", [(10, 10), (20, 12)], 2.0))
    touched = sorted(grid.patches_touching(8, 8, 14, 22).tolist())
    before = session.base_logits.copy()
    changes = session.refine_start({index: ones for index in range(len(grid))})
    assert {c.event["patches"][0] for c in changes} == set(range(len(grid))) - set(touched)
    frozen = np.zeros(grid.shape, bool)
    for index in touched:
        y0, x0, y1, x1 = grid.region(index)
        frozen[y0:y1, x0:x1] = True
    np.testing.assert_array_equal(session.base_logits[frozen], before[frozen])
    after, earlier = session.base_logits[~frozen], before[~frozen]
    assert (after >= earlier).all() and (after > earlier + 1).mean() > 0.5
    assert_same_state(state(replayed(session)), state(session))  # replays on the stored start
