"""Where each pixel of the mask comes from, and the rule that protects the user's pixels.

Provenance codes (uint8), stable on disk:

====  ===========  =====================================================
code  name         meaning
====  ===========  =====================================================
0     model        as the initial (base model) prediction left it
1     human add    painted in by an add stroke (the last stroke there)
2     human erase  painted out by an erase stroke (the last stroke there)
3     refiner      changed by the refinement network against the base
====  ===========  =====================================================
"""

from __future__ import annotations

import numpy as np

from refinement_model.corrections import LINE_PROBABILITY, protected_mask

__all__ = [
    "HUMAN_ADD",
    "HUMAN_ERASE",
    "MODEL",
    "PROVENANCE_NAMES",
    "REFINER",
    "final_mask",
    "provenance_map",
]

MODEL, HUMAN_ADD, HUMAN_ERASE, REFINER = 0, 1, 2, 3
PROVENANCE_NAMES = ("model", "human add", "human erase", "refiner")


def _check_same_shape(**arrays) -> None:
    shapes = {name: np.shape(a) for name, a in arrays.items()}
    first = next(iter(shapes.values()))
    if len(first) != 2 or any(s != first for s in shapes.values()):
        raise ValueError(f"arrays must be 2-D and of one shape, got {shapes}")


def final_mask(probabilities: np.ndarray, user_map: np.ndarray) -> np.ndarray:
    """Binary mask with the user's pixels protected.

    Parameters
    ----------
    probabilities : (H, W) float ndarray
        Current line probabilities.
    user_map : (H, W) int8 ndarray
        +1 where the last stroke was an add stroke, -1 where it was an erase stroke, else 0.

    Returns
    -------
    mask : (H, W) bool ndarray
        ``probabilities > 0.5`` where the user drew nothing, else what the user drew (the
        rule of :func:`refinement_model.corrections.protected_mask`).

    Examples
    --------
    >>> final_mask(np.array([[0.9, 0.1, 0.9]]), np.array([[0, 1, -1]], np.int8)).tolist()
    [[True, True, False]]
    """
    _check_same_shape(probabilities=probabilities, user_map=user_map)
    return protected_mask(np.asarray(probabilities) > LINE_PROBABILITY, user_map)


def provenance_map(user_map: np.ndarray, mask: np.ndarray, base_mask: np.ndarray) -> np.ndarray:
    """Per-pixel provenance codes.

    Parameters
    ----------
    user_map : (H, W) int8 ndarray
        As in :func:`final_mask`.
    mask : (H, W) bool ndarray
        The current mask.
    base_mask : (H, W) bool ndarray
        The initial prediction (base logits > 0).

    Returns
    -------
    provenance : (H, W) uint8 ndarray
        :data:`HUMAN_ADD` / :data:`HUMAN_ERASE` where the user drew, :data:`REFINER` where the
        mask differs from the initial prediction otherwise, :data:`MODEL` elsewhere.

    Examples
    --------
    >>> provenance_map(np.array([[0, 1, -1, 0]], np.int8), np.array([[1, 1, 0, 0]], bool),
    ...                np.array([[0, 0, 1, 0]], bool)).tolist()
    [[3, 1, 2, 0]]
    """
    _check_same_shape(user_map=user_map, mask=mask, base_mask=base_mask)
    user_map = np.asarray(user_map)
    out = (np.asarray(mask) != np.asarray(base_mask)).view(np.uint8) * np.uint8(REFINER)
    np.copyto(out, HUMAN_ADD, where=user_map > 0)
    np.copyto(out, HUMAN_ERASE, where=user_map < 0)
    return out
