import numpy as np
import pytest

from annotator.core.history import DeltaCache, DoneStep, History


def test_undo_redo_order_and_redo_cleared_by_push():
    history = History(limit=10)
    for k in range(3):
        history.push(DoneStep(k, False, True))
    assert history.undo().patch == 2 and history.undo().patch == 1
    assert history.redo().patch == 1
    assert history.can_redo
    history.push(DoneStep(9, False, True))
    assert not history.can_redo and len(history) == 3


def test_limit_forgets_the_oldest_steps():
    history = History(limit=2)
    for k in range(5):
        history.push(DoneStep(k, False, True))
    assert [history.undo().patch, history.undo().patch] == [4, 3]
    assert not history.can_undo
    with pytest.raises(ValueError, match="nothing to undo"):
        history.undo()


@pytest.mark.parametrize("limit", [0, -1, 1.5, True])
def test_limit_is_validated(limit):
    with pytest.raises(ValueError, match="limit"):
        History(limit)


def test_delta_cache_evicts_least_recently_used_by_bytes():
    cache = DeltaCache(max_bytes=2 * 32)
    arrays = {k: np.full((4, 4), k, np.float16) for k in range(3)}  # 32 bytes each
    cache.put((0, 1), arrays[0])
    cache.put((1, 1), arrays[1])
    cache.put((2, 1), arrays[2])
    assert cache.pop((0, 1)) is None and len(cache) == 2 and cache.nbytes == 64
    assert cache.pop((1, 1)) is arrays[1] and cache.nbytes == 32
    assert DeltaCache(0).pop((0, 0)) is None
    empty = DeltaCache(0)
    empty.put((0, 0), arrays[0])
    assert len(empty) == 0 and empty.nbytes == 0
