"""Etruscan-like letters as polyline glyphs, and inscriptions written right to left."""

from __future__ import annotations

import numpy as np

_CIRCLE = [(0.5 + 0.4 * np.cos(t), 0.5 + 0.45 * np.sin(t)) for t in np.linspace(0, 2 * np.pi, 25)]

#: Strokes of each glyph in a unit box (x right, y down), drawn as the Etruscans did
#: (left-facing, because the script runs right to left).
GLYPHS = {
    "A": [[(1.0, 1.0), (0.45, 0.0), (0.1, 1.0)], [(0.85, 0.5), (0.2, 0.72)]],
    "E": [[(0.2, 0.0), (0.8, 0.05), (0.8, 1.0), (0.25, 1.0)], [(0.8, 0.5), (0.3, 0.5)]],
    "V": [[(0.7, 1.0), (0.7, 0.0), (0.15, 0.05)], [(0.7, 0.45), (0.25, 0.45)]],
    "Z": [[(0.1, 0.0), (0.9, 0.05)], [(0.5, 0.02), (0.5, 1.0)], [(0.1, 1.0), (0.9, 0.95)]],
    "H": [[(0.2, 0.0), (0.2, 1.0)], [(0.8, 0.0), (0.8, 1.0)], [(0.2, 0.5), (0.8, 0.5)]],
    "Θ": [_CIRCLE, [(0.25, 0.35), (0.75, 0.65)]],
    "I": [[(0.5, 0.0), (0.5, 1.0)]],
    "K": [[(0.75, 0.0), (0.75, 1.0)], [(0.15, 0.0), (0.75, 0.55), (0.15, 1.0)]],
    "L": [[(0.7, 0.0), (0.7, 1.0), (0.2, 0.85)]],
    "M": [[(0.95, 1.0), (0.85, 0.0), (0.6, 0.6), (0.4, 0.0), (0.2, 0.6), (0.05, 0.0)]],
    "N": [[(0.8, 1.0), (0.8, 0.0), (0.25, 0.6), (0.2, 0.0)]],
    "P": [[(0.7, 1.0), (0.7, 0.0), (0.2, 0.15), (0.7, 0.45)]],
    "R": [[(0.7, 1.0), (0.7, 0.0), (0.2, 0.18), (0.7, 0.45), (0.15, 1.0)]],
    "S": [[(0.2, 0.0), (0.8, 0.3), (0.2, 0.65), (0.8, 1.0)]],
    "T": [[(0.05, 0.15), (0.95, 0.0)], [(0.5, 0.08), (0.5, 1.0)]],
    "U": [[(0.1, 0.0), (0.5, 0.5), (0.9, 0.0)], [(0.5, 0.5), (0.5, 1.0)]],
    "Φ": [_CIRCLE, [(0.5, -0.15), (0.5, 1.15)]],
    "X": [[(0.1, 0.0), (0.9, 1.0)], [(0.9, 0.0), (0.1, 1.0)]],
    "C": [[(0.8, 0.0), (0.25, 0.5), (0.8, 1.0)]],
    "8": [
        [
            (0.5, 0.5),
            (0.2, 0.25),
            (0.5, 0.0),
            (0.8, 0.25),
            (0.5, 0.5),
            (0.15, 0.75),
            (0.5, 1.0),
            (0.85, 0.75),
            (0.5, 0.5),
        ]
    ],
}

#: Names of gods and heroes found on engraved mirrors, spelt with the glyphs above.
NAMES = (
    "MENRVA",
    "TURAN",
    "HERCLE",
    "APLU",
    "8U8LUNS",
    "TINIA",
    "ELINAI",
    "ACHLE",
    "LASA",
    "ARTUMES",
    "SEΘLANS",
    "ALCSNTRE",
    "PELE",
    "ΘETIS",
    "ATUNIS",
    "CASTUR",
    "PULTUCE",
    "AIVAS",
    "ΦERSE",
    "MENLE",
    "URUSTE",
    "TALMIΘE",
    "UNI",
    "TURMS",
)


def inscription(word, *, origin, height, angle=0.0, rng):
    """Strokes of a word written right to left, starting at ``origin``.

    Parameters
    ----------
    word : str
        Letters from :data:`GLYPHS`.
    origin : (float, float)
        Top-right corner of the first letter in px.
    height : float
        Letter height in px.
    angle : float
        Direction of the baseline in radians, measured from the leftward direction.
    rng : numpy.random.Generator
        Jitters letter size, slant and spacing a little, as a hand would.

    Returns
    -------
    list of ndarray of float64, shape (N, 2)
        One polyline per stroke, in px.
    """
    unknown = set(word) - set(GLYPHS)
    if unknown:
        raise ValueError(f"word contains letters without a glyph: {sorted(unknown)}")
    direction = np.array([-np.cos(angle), -np.sin(angle)])
    down = np.array([-direction[1], direction[0]]) * -1.0
    strokes = []
    advance = 0.0
    for letter in word:
        h = height * rng.uniform(0.9, 1.1)
        w = 0.62 * h
        slant = rng.uniform(-0.12, 0.12)
        # the glyph's right edge sits at the current pen position, the word runs leftwards
        corner = np.asarray(origin, dtype=np.float64) + direction * (advance + w)
        for stroke in GLYPHS[letter]:
            g = np.asarray(stroke, dtype=np.float64)
            gx = (g[:, 0] + slant * (1.0 - g[:, 1])) * w
            gy = g[:, 1] * h
            strokes.append(
                corner[None, :] - direction[None, :] * gx[:, None] + down[None, :] * gy[:, None]
            )
        advance += w * rng.uniform(1.35, 1.6)
    return strokes
