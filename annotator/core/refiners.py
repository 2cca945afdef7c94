"""The refine-function protocol the session calls, and two ways to get one.

A refine function is stateless::

    refine(image_patch, base_logits, stroke_channel) -> refined_logits

with ``image_patch`` (C, n, n) float32 (the network inputs of one patch at network size ``n``),
``base_logits`` (n, n) float32 (the base model's logits there), ``stroke_channel`` (n, n) float32
in {-1, 0, +1} (*all* strokes on the patch) and ``refined_logits`` (n, n) float32. Because it is
stateless, the session's mask is a function of the base logits and the event journal.

- :func:`as_refine_fn` wraps anything callable that way, or any object with such a ``refine``
  method (``refinement_model.patch_refiner.PatchRefiner``), into a function over a *batch* of
  patches, and checks what comes back. An object that also has ``refine_batch`` (the same on
  (B, ...) arrays) gets the patches a stroke touches in one forward pass, about a third faster
  on a CPU than one patch at a time.
- :class:`SpreadRefiner` needs no model: it pushes the base logits towards the stroke sign in a
  blurred neighbourhood of the strokes. It is deterministic and cheap, for tests, benchmarks and
  for annotating without trained weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

__all__ = ["BatchRefineFn", "SpreadRefiner", "as_refine_fn"]

BatchRefineFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def as_refine_fn(refiner) -> BatchRefineFn:
    """A checked refine function over batches, from a refine function or object.

    Parameters
    ----------
    refiner : callable or object with ``refine`` (and optionally ``refine_batch``)
        Called as ``refine(image_patch, base_logits, stroke_channel)`` per patch, or
        ``refine_batch(image_patches, base_logits, stroke_channels)`` per batch.

    Returns
    -------
    refine_many : callable
        ``refine_many(image_patches (B, C, n, n), base_logits (B, n, n), stroke_channels
        (B, n, n)) -> (B, n, n)`` float32, a new array (tensors are converted); raises
        ``ValueError`` when the refiner returns another shape or non-finite values.
    """
    single = getattr(refiner, "refine", refiner)
    if not callable(single):
        raise ValueError(
            f"refiner must be callable or have a refine method, got {type(refiner).__name__}"
        )
    batched = getattr(refiner, "refine_batch", None)

    def refine_many(image_patches, base_logits, stroke_channels):
        if batched is not None:
            out = _as_float_array(batched(image_patches, base_logits, stroke_channels))
        else:
            out = np.stack(
                [
                    _as_float_array(single(*job))
                    for job in zip(image_patches, base_logits, stroke_channels, strict=True)
                ]
            )
        if out.shape != np.shape(base_logits):
            raise ValueError(
                f"refiner returned shape {out.shape}, expected {np.shape(base_logits)}"
            )
        if not np.isfinite(out).all():
            raise ValueError("refiner returned non-finite logits")
        return out

    return refine_many


def _as_float_array(out) -> np.ndarray:
    if hasattr(out, "detach"):
        out = out.detach().cpu().numpy()
    return np.array(out, dtype=np.float32).reshape(np.shape(out))


@dataclass(frozen=True)
class SpreadRefiner:
    """Model-free refiner: base logits plus ``strength`` times the blurred stroke channel.

    An add stroke raises the logits around it (completing a line the user started), an erase
    stroke lowers them; the effect fades over ``sigma`` network pixels. Unlike a trained refiner
    it ignores the image.

    Parameters
    ----------
    sigma : float
        Gaussian blur of the stroke channel in network pixels (> 0).
    strength : float
        Logit change at the centre of a wide stroke (>= 0).

    Examples
    --------
    >>> refine = SpreadRefiner(sigma=1.0, strength=4.0)
    >>> channel = np.zeros((5, 5), np.float32); channel[2, 2] = 1
    >>> out = refine(np.zeros((1, 5, 5), np.float32), np.zeros((5, 5), np.float32), channel)
    >>> bool(out[2, 2] > out[2, 3] > out[0, 0] > 0)
    True
    """

    sigma: float = 2.0
    strength: float = 8.0

    def __post_init__(self):
        if not (np.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"sigma must be finite and > 0, got {self.sigma!r}")
        if not (np.isfinite(self.strength) and self.strength >= 0):
            raise ValueError(f"strength must be finite and >= 0, got {self.strength!r}")

    def __call__(self, image_patch, base_logits, stroke_channel) -> np.ndarray:
        base = np.asarray(base_logits, dtype=np.float32)
        channel = np.asarray(stroke_channel, dtype=np.float32)
        if channel.shape != base.shape or base.ndim != 2:
            raise ValueError(
                f"base_logits and stroke_channel must be the same (n, n) shape, "
                f"got {base.shape} and {channel.shape}"
            )
        push = gaussian_filter(channel, self.sigma, mode="constant")
        return base + np.float32(self.strength) * push
