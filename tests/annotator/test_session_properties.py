"""Random edit sequences always equal the replay of their journal, and undo is exact."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refinement_model.strokes import Stroke
from tests.annotator.session_fixtures import assert_same_state, make_session, replayed, state

coordinate = st.floats(min_value=-10, max_value=105, allow_nan=False)
strokes = st.builds(
    Stroke,
    kind=st.sampled_from(["add", "erase"]),
    points=st.lists(st.tuples(coordinate, coordinate), min_size=1, max_size=4),
    radius=st.floats(min_value=0.6, max_value=6.0),
)
actions = st.one_of(
    st.tuples(st.just("accept"), strokes),
    st.tuples(st.just("reject"), strokes),
    st.tuples(st.just("plain"), strokes),
    st.tuples(st.just("undo"), st.none()),
    st.tuples(st.just("redo"), st.none()),
    st.tuples(st.sampled_from(["done", "reopen", "visit", "skip"]), st.integers(0, 3)),
)


def perform(session, action, argument) -> bool:
    """Do one action; False when it was refused (stroke outside the view, nothing to undo)."""
    try:
        if action in ("accept", "reject"):
            session.propose_stroke(argument)
            getattr(session, action)()
        elif action == "plain":
            session.apply_stroke(argument, refine=False)
        elif action in ("undo", "redo"):
            getattr(session, action)()
        elif action in ("done", "reopen"):
            session.mark_done(argument, action == "done")
        else:
            getattr(session, action)(argument)
    except ValueError:
        return False
    return True


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(actions, max_size=12), st.integers(0, 2**16))
def test_random_edits_equal_the_replay_of_the_journal(sequence, cache_bytes):
    session = make_session(cache_bytes=cache_bytes)
    undo_stack, redo_stack = [], []
    for action, argument in sequence:
        before = state(session)
        journal_length = len(session.journal)
        if not perform(session, action, argument):
            assert len(session.journal) == journal_length
            assert_same_state(before, state(session))
            continue
        if action == "undo":
            assert_same_state(undo_stack.pop(), state(session))
            redo_stack.append(before)
        elif action == "redo":
            assert_same_state(redo_stack.pop(), state(session))
            undo_stack.append(before)
        elif action not in ("visit", "skip"):
            undo_stack.append(before)
            redo_stack.clear()
    again = replayed(session)
    assert_same_state(state(session), again_state := state(again))
    assert np.array_equal(session.patch_states, again.patch_states)
    assert again.can_undo == session.can_undo and again.can_redo == session.can_redo
    assert again_state[3].astype(bool).sum() == session.effort()["annotated_pixels"]
