"""Training of the base segmenter and the refinement network (single process or DDP)."""
