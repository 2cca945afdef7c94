"""Stroke-width statistics of ground-truth drawings (docs/method.md, "Simulated human").

The half-width of an engraved line is the Euclidean distance to the nearest background pixel,
read at the line's skeleton pixels. Outliers (junctions, line ends) are removed with the
two-sigma rule and a Gamma distribution is fitted to the rest; the simulated annotator draws its
stroke radii from that Gamma.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, stats
from skimage.morphology import skeletonize

# The smallest half-width the measurement can produce: a one-pixel line is 1 px from background.
MIN_HALF_WIDTH = 1.0


@dataclass(frozen=True)
class StrokeWidthModel:
    """A Gamma distribution of line half-widths, in full-resolution pixels.

    Parameters
    ----------
    a, loc, scale : float
        Gamma shape, location and scale (``scipy.stats.gamma`` convention).
    mean, std : float
        Mean and standard deviation of the half-widths the fit was made on (after outlier
        removal); for :data:`PAPER_STROKE_WIDTHS` those of the Gamma itself.
    n : int
        Number of half-widths the fit was made on (0 when unknown).
    """

    a: float
    loc: float
    scale: float
    mean: float
    std: float
    n: int = 0

    def __post_init__(self):
        for name in ("a", "scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be finite and > 0, got {value!r}")
        if not math.isfinite(self.loc):
            raise ValueError(f"loc must be finite, got {self.loc!r}")
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {self.n!r}")

    def sample(self, rng=None, size=None, *, scale_factor: float = 1.0):
        """Draw half-widths (stroke radii).

        Parameters
        ----------
        rng : None, int or numpy.random.Generator
            Normalised with ``np.random.default_rng``.
        size : None, int or tuple of int
            ``None`` returns one float; otherwise a float64 array of that shape.
        scale_factor : float, keyword-only
            Multiplies the half-widths, e.g. 0.5 for 512 px patches resized to 256 px. Values are
            clipped below at ``MIN_HALF_WIDTH`` before scaling.
        """
        if not (math.isfinite(scale_factor) and scale_factor > 0):
            raise ValueError(f"scale_factor must be finite and > 0, got {scale_factor!r}")
        rng = np.random.default_rng(rng)
        values = self.loc + self.scale * rng.gamma(self.a, size=size)
        values = np.maximum(values, MIN_HALF_WIDTH) * scale_factor
        return float(values) if size is None else values

    def pdf(self, x) -> np.ndarray:
        """Density of the fitted Gamma at ``x`` (array_like), as float64."""
        x = np.asarray(x, dtype=np.float64)
        return stats.gamma.pdf(x, self.a, loc=self.loc, scale=self.scale)

    def to_dict(self) -> dict:
        """The ``--json`` form: keys a, loc, scale, mean, std, n."""
        return {
            "a": self.a,
            "loc": self.loc,
            "scale": self.scale,
            "mean": self.mean,
            "std": self.std,
            "n": self.n,
        }


def _paper_model() -> StrokeWidthModel:
    a, loc, scale = 49.12884764, -4.27884325, 0.21316680
    mean, var = stats.gamma.stats(a, loc=loc, scale=scale, moments="mv")
    return StrokeWidthModel(a, loc, scale, float(mean), float(math.sqrt(var)), 0)


#: The authors' fit on the real ground truth (mean 6.19 px, std 1.49 px at full resolution).
PAPER_STROKE_WIDTHS = _paper_model()


def half_widths(mask) -> np.ndarray:
    """Half-widths of the lines in a binary mask, one per skeleton pixel.

    Parameters
    ----------
    mask : (H, W) array_like of bool
        Line pixels True. Not modified.

    Returns
    -------
    widths : (K,) float64
        Distance to the nearest background pixel at each of the K skeleton pixels, in row-major
        order (empty when the mask is empty). Pixels outside the image count as background.

    Examples
    --------
    >>> bar = np.zeros((7, 20), bool); bar[2:5, 1:19] = True
    >>> float(np.median(half_widths(bar)))  # 3 px thick: the centre row is 2 px from background
    2.0
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    mask = mask.astype(bool)
    box = _foreground_box(mask)
    if box is None:
        return np.zeros(0, dtype=np.float64)
    crop = np.pad(mask[box], 1)  # the rim makes the image border count as background
    distance = ndimage.distance_transform_edt(crop)
    return distance[skeletonize(crop)].astype(np.float64)


def skeleton(mask) -> np.ndarray:
    """``skimage.morphology.skeletonize``, computed on the bounding box of the foreground only.

    Parameters
    ----------
    mask : (H, W) array_like of bool
        Not modified.

    Returns
    -------
    skeleton : (H, W) bool
        A new array; all False for an empty mask.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    mask = mask.astype(bool)
    out = np.zeros_like(mask)
    box = _foreground_box(mask)
    if box is not None:
        out[box] = skeletonize(mask[box])
    return out


def _foreground_box(mask: np.ndarray) -> tuple[slice, slice] | None:
    """Bounding box of the True pixels (views and patches are mostly background)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def remove_outliers(widths, *, n_sigma: float = 2.0) -> np.ndarray:
    """Keep the values within ``n_sigma`` standard deviations of the mean.

    Parameters
    ----------
    widths : (K,) array_like of float
    n_sigma : float, keyword-only
        Width of the band kept, > 0 (the paper: 2).

    Returns
    -------
    kept : (M,) float64, M <= K, in the input order.
    """
    widths = _check_widths(widths)
    if not (math.isfinite(n_sigma) and n_sigma > 0):
        raise ValueError(f"n_sigma must be finite and > 0, got {n_sigma!r}")
    if len(widths) == 0:
        return widths
    centre, spread = widths.mean(), widths.std()
    return widths[np.abs(widths - centre) <= n_sigma * spread]


def fit_stroke_widths(widths, *, n_sigma: float | None = 2.0) -> StrokeWidthModel:
    """Fit a Gamma to half-widths after two-sigma outlier removal.

    Parameters
    ----------
    widths : (K,) array_like of float
        Half-widths, e.g. from :func:`half_widths` over all ground-truth masks.
    n_sigma : float or None, keyword-only
        Outlier band of :func:`remove_outliers`; ``None`` keeps every value.

    Returns
    -------
    StrokeWidthModel
        ``mean``, ``std`` and ``n`` describe the values kept.
    """
    kept = _check_widths(widths) if n_sigma is None else remove_outliers(widths, n_sigma=n_sigma)
    if len(kept) < 3 or np.ptp(kept) == 0:
        raise ValueError(
            f"widths must hold at least 3 distinct values to fit a Gamma, got {len(kept)} "
            f"value(s) after outlier removal"
        )
    a, loc, scale = stats.gamma.fit(kept)
    return StrokeWidthModel(
        float(a), float(loc), float(scale), float(kept.mean()), float(kept.std()), int(len(kept))
    )


def _check_widths(widths) -> np.ndarray:
    widths = np.asarray(widths, dtype=np.float64)
    if widths.ndim != 1:
        raise ValueError(f"widths must be 1-D, got shape {widths.shape}")
    if not np.isfinite(widths).all():
        raise ValueError("widths must be finite")
    return widths
