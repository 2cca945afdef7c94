"""Qt-free core of the annotator: the annotation session and what it is made of.

Modules
-------
session
    :class:`~annotator.core.session.AnnotationSession`: the state of one view being annotated
    (mask, probabilities, user strokes, provenance, per-patch state, patch queue, history).
history
    The undo / redo stacks and the events they are rebuilt from.
patch_queue
    ``rank_patches(probabilities, grid, mirror_mask) -> (order, scores)``, the GT-free
    worst-first ranking, and :class:`PatchQueue` (next, skip, revisit, mark done, coverage).
provenance
    Per-pixel origin codes (initial model, human add, human erase, refiner).
refiners
    The refine-function protocol, an adapter for network refiners and a model-free refiner.
pyramid
    The display pyramids of a view's layers (numpy): the tiles the canvas paints at any zoom.
blend
    Re-stitching of refined patch logits onto the full-resolution base logits, by region.

Everything here is deterministic, free of I/O and of Qt; the project file (``project_store``)
and the GUI (``annotator.qt``) build on the session's journal, arrays and change listeners.
"""
