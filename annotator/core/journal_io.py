"""The stroke JSON file: what ``etmira project replay`` reads and ``export --journal`` writes.

Format (UTF-8 JSON, coordinates in full-resolution view pixels, pixel ``(row i, column j)``
centred on ``(x, y) = (j, i)``)::

    {
      "format": "etmira-strokes",            (optional on input)
      "version": 1,                          (optional on input; other versions are refused)
      "strokes": [
        {"kind": "add",   "radius": 3.1, "points": [[120.0, 45.5], [130.0, 47.0]]},
        {"kind": "erase", "radius": 6.0, "points": [[300, 200]]}
      ],
      "events": [...],                       (optional: the session's full journal, with undo,
                                              redo and refinement decisions, for exact replay)
      "effort": {...},                       (optional: effort statistics, ignored on input)
      "view": {...}                          (optional: the view it was drawn on, ignored)
    }

``kind`` is ``"add"`` (paint the line in) or ``"erase"`` (paint it out); ``radius`` is half the
stroke width in pixels (> 0); ``points`` is the centre line, one point or more (see
:class:`refinement_model.strokes.Stroke`). Strokes are applied in file order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping

from annotator.core.export import write_text
from refinement_model.errors import InputError
from refinement_model.strokes import Stroke

FORMAT = "etmira-strokes"
VERSION = 1
# A stroke file of this size would hold millions of strokes: refuse rather than exhaust memory.
MAX_BYTES = 256 * 1024 * 1024


def strokes_document(
    strokes: Iterable[Stroke],
    *,
    events: Iterable[Mapping] | None = None,
    effort: Mapping | None = None,
    view: Mapping | None = None,
) -> dict:
    """The JSON document (a new dict) for `strokes`, with optional full journal and statistics."""
    document = {
        "format": FORMAT,
        "version": VERSION,
        "strokes": [stroke.to_dict() for stroke in strokes],
    }
    for key, value in (("events", events), ("effort", effort), ("view", view)):
        if value is not None:
            document[key] = list(value) if key == "events" else dict(value)
    return document


def parse_strokes(document, *, source: str | os.PathLike | None = None) -> list[Stroke]:
    """The strokes of a parsed stroke document.

    Raises
    ------
    InputError
        Naming `source` and the first problem (not an object, wrong format or version, no
        ``strokes`` list, a bad stroke with its index).
    """
    if not isinstance(document, Mapping):
        raise InputError(source, "a stroke file must hold a JSON object with a 'strokes' list")
    if document.get("format", FORMAT) != FORMAT:
        raise InputError(source, f"not a stroke file (format {document.get('format')!r})")
    if document.get("version", VERSION) != VERSION:
        raise InputError(
            source,
            f"stroke file version {document.get('version')!r} is not "
            f"supported (this etmira reads version {VERSION})",
        )
    items = document.get("strokes")
    if not isinstance(items, list):
        raise InputError(source, "a stroke file must hold a JSON object with a 'strokes' list")
    strokes = []
    for index, item in enumerate(items):
        try:
            strokes.append(Stroke.from_dict(item))
        except ValueError as error:
            raise InputError(source, f"stroke {index}: {error}") from None
    return strokes


def read_document(path: str | os.PathLike) -> dict:
    """Read a stroke file's JSON object (checked by :func:`parse_strokes`)."""
    try:
        if os.path.getsize(path) > MAX_BYTES:
            raise InputError(path, f"stroke file is larger than {MAX_BYTES // 2**20} MiB")
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except IsADirectoryError:
        raise InputError(path, "is a folder, not a stroke file") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise InputError(path, f"not valid JSON ({error})") from None
    parse_strokes(document, source=path)
    return document


def read_strokes(path: str | os.PathLike) -> list[Stroke]:
    """The strokes of the stroke file at `path`, in order; :class:`InputError` if it is bad."""
    return parse_strokes(read_document(path), source=path)


def write_strokes(
    path: str | os.PathLike,
    strokes: Iterable[Stroke],
    *,
    events: Iterable[Mapping] | None = None,
    effort: Mapping | None = None,
    view: Mapping | None = None,
) -> None:
    """Write a stroke file atomically (see :func:`strokes_document` for the options)."""
    document = strokes_document(strokes, events=events, effort=effort, view=view)
    write_text(path, json.dumps(document, indent=1, allow_nan=False) + "\n")
