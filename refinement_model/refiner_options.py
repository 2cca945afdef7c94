"""How a refiner refines: orientations averaged and refinements per stroke, and the app's choice.

Torch-free, so that the app's core and the simulation's settings name options without loading a
network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

__all__ = [
    "ADAPTATION_PERIOD",
    "APP_REFINEMENT",
    "ONE_PASS",
    "ORIENTATIONS",
    "RefinerOptions",
    "checked_iterations",
    "checked_orientations",
]

# Orientation counts a network's logits can be averaged over: quarter turns, then their mirror
# images (see refinement_model.fast_net.FastNet).
ORIENTATIONS = (1, 2, 4, 8)


def checked_orientations(orientations: int) -> int:
    """``orientations`` if it is one of :data:`ORIENTATIONS`, else a ValueError."""
    if orientations not in ORIENTATIONS:
        raise ValueError(f"orientations must be one of {ORIENTATIONS}, got {orientations!r}")
    return orientations


def checked_iterations(iterations: int) -> int:
    """``iterations`` if it is a positive int (not a bool), else a ValueError."""
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive int, got {iterations!r}")
    return iterations


@dataclasses.dataclass(frozen=True)
class RefinerOptions:
    """The options of a :class:`~refinement_model.patch_refiner.PatchRefiner`.

    Parameters
    ----------
    orientations : {1, 2, 4, 8}, optional
        Average the refined logits over this many orientations of the patch (the first 1, 2
        or 4 quarter turns, or those four and their mirror images); each costs one more pass.
    iterations : int, optional
        Refine this many times, each refinement's logits replacing the base logits as the
        prediction input of the next, with the same strokes.

    Raises
    ------
    ValueError
        An orientation count not in :data:`ORIENTATIONS`, or iterations not a positive int.
    """

    orientations: int = 1
    iterations: int = 1

    def __post_init__(self):
        checked_orientations(self.orientations)
        checked_iterations(self.iterations)

    @property
    def one_pass(self) -> bool:
        """Whether the refiner runs once on the patch as it is."""
        return self.orientations == 1 and self.iterations == 1

    def as_record(self) -> dict:
        """``{"orientations": K, "iterations": N}``, as projects and manifests keep them."""
        return dataclasses.asdict(self)

    @classmethod
    def parse(cls, text: str) -> RefinerOptions:
        """The options ``"ORIENTATIONSxITERATIONS"`` names (``"4x2"``: four orientations,
        refined twice); a ValueError for any other text or a bad count."""
        parts = str(text).strip().lower().split("x")
        if len(parts) != 2 or not all(part.isdigit() for part in parts):
            raise ValueError(f"expected ORIENTATIONSxITERATIONS (e.g. 4x2), got {text!r}")
        return cls(int(parts[0]), int(parts[1]))

    @property
    def label(self) -> str:
        """``"ORIENTATIONSxITERATIONS"``, as :meth:`parse` reads it."""
        return f"{self.orientations}x{self.iterations}"

    @classmethod
    def from_record(cls, record: Mapping) -> RefinerOptions:
        """The options a record (:meth:`as_record`, perhaps among other keys) names; a key it
        lacks is 1, as records made before the refiner averaged orientations or refined again
        mean."""
        return cls(record.get("orientations", 1), record.get("iterations", 1))


# The refiner in one pass: the app's preview of a refinement, the protocol's one_pass setting.
ONE_PASS = RefinerOptions()
# What the app commits (and the evaluation simulates): the refined logits averaged over four
# quarter turns, +1.2 points of validation gain over one pass (benchmarks/bench_refiner_gain.py;
# eight are no better), refined twice: the first refinement replaces the base logits as the
# refiner's prediction input for the second, +0.9 points of validation gain and +1.8 points of
# mean peak relative gain in the evaluation protocol (docs/evaluation). Eight times one pass,
# so the app shows the one-pass refinement first.
APP_REFINEMENT = RefinerOptions(orientations=4, iterations=2)

#: Committed strokes between two updates of the online-adapted refiner, in the app
#: (``annotator.core.adaptation.SessionAdaptation``) and in the evaluation's ``adaptive`` setting.
ADAPTATION_PERIOD = 10
