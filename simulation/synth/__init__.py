"""Synthetic engraved bronze mirrors in the real data layout.

``generate_view`` makes the maps and masks of one mirror side in memory; ``write_view`` writes
them where :func:`refinement_model.views.load_view` finds them. Never imports Qt.
"""

from simulation.synth.drawings import HALF_WIDTH_GAMMA, REFERENCE_PX_PER_MM, Groove
from simulation.synth.generate import DEFAULT_DIFFICULTY, SyntheticView, generate_view
from simulation.synth.writer import synthetic_view_id, write_view

__all__ = [
    "DEFAULT_DIFFICULTY",
    "HALF_WIDTH_GAMMA",
    "REFERENCE_PX_PER_MM",
    "Groove",
    "SyntheticView",
    "generate_view",
    "synthetic_view_id",
    "write_view",
]
