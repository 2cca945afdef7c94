"""How journal events change the session state: the one code path for live edits and replay.

:class:`EventLog` is the base of :class:`annotator.core.session.AnnotationSession`; it applies
one event at a time (``_apply``) to the stroke stack, the patch versions, the history, the queue
and, region by region, to the arrays. During replay it runs *deferred*: only the cheap
bookkeeping is done per event, and ``_rebuild`` then computes each array once, refining only
the patch versions that are finally shown (a new session is the replay of the empty journal).
Both paths give bit-identical arrays because every pixel is a deterministic function of the
final stroke stack and patch versions, whatever region it is computed in.

Online adaptation (``annotator.core.adaptation``) adds two events that are not undo steps:
``adapt`` marks an accepted update of the refiner (its weights are stored by the project under
the event's index), and ``propagate`` shows, for patches without strokes, the no-stroke
prediction of an adapted refiner (its ``update``, the index of an ``adapt`` event) over the
session's own refiner's no-stroke prediction or, with
``update`` null, the base logits again. A patch version is thus the index of a stroke or a
``propagate`` event; recomputing one calls the refiner that made it (``adapted_refiner``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from annotator.core.blend import blend_probabilities
from annotator.core.history import (
    BASE_VERSION,
    DeltaCache,
    DoneStep,
    History,
    StrokeRecord,
    StrokeStep,
)
from annotator.core.patch_queue import check_patch_index
from annotator.core.provenance import final_mask, provenance_map
from refinement_model.errors import Cancelled
from refinement_model.patches import clip_box, union
from refinement_model.strokes import Stroke, rasterize_stroke, stroke_channel

__all__ = ["Change", "EVENT_TYPES", "EventLog"]

EVENT_TYPES = ("stroke", "done", "undo", "redo", "visit", "skip", "adapt", "propagate")
# Rows rebuilt at once: few patches straddle two slabs (and are upsampled twice), and the
# blending temporaries stay small.
_SLAB_ROWS = 512


@dataclass(frozen=True)
class Change:
    """What one journal event changed (passed to listeners).

    Attributes
    ----------
    event : dict
        The event just appended to the journal.
    region : (y0, x0, y1, x1) or None
        Box of the view where any of mask, probabilities, user map, provenance changed.
    patches : tuple of int
        Patches whose state (or queue position) changed.
    """

    event: dict
    region: tuple[int, int, int, int] | None
    patches: tuple[int, ...] = ()


def _window(box) -> tuple[slice, slice]:
    return np.s_[box[0] : box[2], box[1] : box[3]]


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _check_adapt(event: dict) -> None:
    for key in ("top", "examples"):
        value = event[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{key!r} must be an integer >= 0, got {value!r}")


def _flag(event: dict, key: str) -> bool:
    value = event[key]
    if not isinstance(value, bool):
        raise ValueError(f"{key!r} must be true or false, got {value!r}")
    return value


class EventLog:
    """Event application shared by the live session and replay (see the module docstring)."""

    def __init__(self, grid, *, history_limit: int, cache_bytes: int):
        self._journal: list[dict] = []
        self._history = History(history_limit)
        self._strokes: list[StrokeRecord] = []
        self._versions: dict[int, int] = {}
        self._deltas: dict[int, np.ndarray] = {}
        self._cache = DeltaCache(cache_bytes)
        self._known: dict = {}
        self._annotated = 0
        self._deferred = False
        # the subclass's own refine function, and update (index of an "adapt" event) -> that
        # adapted refiner; see ``_refiner_of``
        self._base_refine = None
        self._adapted_source = None

    def _record(self, seq: int, stroke) -> StrokeRecord:
        if not isinstance(stroke, Stroke):
            raise ValueError(f"stroke must be a Stroke, got {type(stroke).__name__}")
        box = clip_box(stroke.bounds(), self.grid.shape)
        if box[0] >= box[2] or box[1] >= box[3]:
            raise ValueError(
                f"stroke must overlap the view {self.grid.shape}, its bounds are {stroke.bounds()}"
            )
        return StrokeRecord(seq, stroke, box, frozenset(self.grid.patches_touching(*box).tolist()))

    def _stroke_region(self, record: StrokeRecord, patches) -> tuple[int, int, int, int]:
        return union(record.box, *(self.grid.region(p) for p in patches))

    # ----------------------------------------------------------------- one event
    def _apply(self, event: dict, deltas=None):
        kind = event.get("type")
        if kind not in EVENT_TYPES:
            raise ValueError(f"event type must be one of {EVENT_TYPES}, got {kind!r}")
        region, patches = None, ()
        if kind == "stroke":
            accepted = _flag(event, "accepted")
            self._check_update(event.get("adapted"), "adapted")
            record = self._record(len(self._journal), Stroke.from_dict(event["stroke"]))
            new = {p: record.seq for p in sorted(record.patches)} if accepted else {}
            old = {p: self._versions.get(p, BASE_VERSION) for p in new}
            step = StrokeStep(record, old, new)
            self._history.push(step)
            region, patches = self._push(step, deltas)
        elif kind == "done":
            index, done = check_patch_index(self.grid, event["patch"]), _flag(event, "done")
            self._history.push(DoneStep(index, bool(self.queue.done[index]), done))
            self.queue.done[index] = done
            patches = (index,)
        elif kind == "adapt":
            _check_adapt(event)
        elif kind == "propagate":
            region, patches = self._propagate(event, deltas)
        elif kind in ("undo", "redo"):
            step = self._history.undo() if kind == "undo" else self._history.redo()
            if isinstance(step, DoneStep):
                self.queue.done[step.patch] = step.old if kind == "undo" else step.new
                patches = (step.patch,)
            else:
                region, patches = self._pop(step) if kind == "undo" else self._push(step, None)
        else:
            index = check_patch_index(self.grid, event["patch"])
            if kind == "visit":
                self.queue.visited[index] = True
                if index in self.queue.skipped:
                    self.queue.skipped.remove(index)
            else:
                self.queue.skip(index)
            patches = (index,)
        self._journal.append(event)
        return Change(event, region, patches)

    def _push(self, step: StrokeStep, deltas):
        record = step.record
        self._strokes.append(record)
        self.queue.stroke_counts[sorted(record.patches)] += 1
        blend_box = self._set_versions(step.new_versions, deltas)
        if self._deferred:
            return None, ()
        window = _window(record.box)
        before = np.count_nonzero(self._user_map[window])
        self._burn(record)
        self._annotated += np.count_nonzero(self._user_map[window]) - before
        return self._refresh(record.box, blend_box), tuple(sorted(record.patches))

    def _pop(self, step: StrokeStep):
        record = self._strokes.pop()
        if record is not step.record:
            raise RuntimeError("history out of step with the stroke stack")
        self.queue.stroke_counts[sorted(record.patches)] -= 1
        blend_box = self._set_versions(step.old_versions, None)
        if self._deferred:
            return None, ()
        box = record.box
        window = _window(box)
        before = np.count_nonzero(self._user_map[window])
        under = [r.stroke for r in self._strokes if _overlaps(r.box, box)]
        shape = (box[2] - box[0], box[3] - box[1])
        self._user_map[window] = stroke_channel(under, shape, origin=(box[1], box[0]))
        self._annotated += np.count_nonzero(self._user_map[window]) - before
        return self._refresh(box, blend_box), tuple(sorted(record.patches))

    def _check_update(self, update, key: str):
        if update is not None and not (
            isinstance(update, int)
            and not isinstance(update, bool)
            and 0 <= update < len(self._journal)
            and self._journal[update]["type"] == "adapt"
        ):
            raise ValueError(f"{key!r} must be the index of an adapt event or null, got {update!r}")
        return update

    def _propagate(self, event: dict, deltas):
        update = self._check_update(event["update"], "update")
        patches = tuple(sorted({check_patch_index(self.grid, p) for p in event["patches"]}))
        drawn = [p for p in patches if self.queue.stroke_counts[p]]
        if drawn:
            raise ValueError(f"patches {drawn} have strokes: only untouched patches propagate")
        seq = BASE_VERSION if update is None else len(self._journal)
        blend_box = self._set_versions({p: seq for p in patches}, deltas)
        if self._deferred or blend_box is None:
            return None, patches
        return self._refresh(blend_box, blend_box), patches

    def _burn(self, record: StrokeRecord) -> None:
        box = record.box
        user = self._user_map[_window(box)]
        raster = rasterize_stroke(record.stroke, user.shape, origin=(box[1], box[0]))
        user[raster] = record.stroke.sign

    # ----------------------------------------------------------------- patch versions
    def _set_versions(self, versions: dict, deltas):
        """Show the given patch versions; returns the box of the patches that changed."""
        changed = []
        for index, seq in versions.items():
            old = self._versions.get(index, BASE_VERSION)
            if old == seq:
                continue
            changed.append(self.grid.region(index))
            if old != BASE_VERSION and not self._deferred:
                self._cache.put((index, old), self._deltas.pop(index))
            if seq == BASE_VERSION:
                del self._versions[index]
                continue
            self._versions[index] = seq
            if not self._deferred:
                given = None if deltas is None else deltas.get(index)
                self._deltas[index] = given if given is not None else self._delta_for(index, seq)
        return union(*changed)

    def _delta_for(self, index: int, seq: int) -> np.ndarray:
        delta = self._cache.pop((index, seq))
        if delta is None:
            delta = self._known.get((index, seq))
        if delta is None:
            event = self._journal[seq]
            if event["type"] == "propagate":
                return self._propagation_job([index], self._refiner_of(event["update"]))()[index]
            position = next(
                k for k in range(len(self._strokes) - 1, -1, -1) if self._strokes[k].seq == seq
            )
            strokes = [r.stroke for r in self._strokes[: position + 1] if index in r.patches]
            refine = self._refiner_of(event.get("adapted"))
            delta = self._refine_patches({index: strokes}, refine)[index]
        return delta

    def _refiner_of(self, update):
        """The refine function that made a patch version: the session's base refiner (update
        None) or the adapted refiner of the ``adapt`` event ``update``."""
        if update is None:
            return self._base_refine
        if self._adapted_source is None:
            raise ValueError(
                f"a patch was refined by the adapted refiner of event {update}: "
                "its change must be stored, or the adapted refiners given"
            )
        return self._adapted_source(update)

    # ----------------------------------------------------------------- arrays
    def _refresh(self, box, blend_box):
        """Recompute probabilities (where patches changed), mask and provenance in a box."""
        if blend_box is not None:
            self._probabilities[_window(blend_box)] = blend_probabilities(
                self.grid, self.base_logits, self._deltas, blend_box
            )
        region = union(box, blend_box)
        self.queue.update(self._probabilities, region, self._user_map)
        window = _window(region)
        self._mask[window] = final_mask(self._probabilities[window], self._user_map[window])
        self._provenance[window] = provenance_map(
            self._user_map[window], self._mask[window], self.base_logits[window] > 0
        )
        return region

    def _slabs(self) -> list[tuple[int, int]]:
        """Row ranges of the view between patch edges, each ``_SLAB_ROWS`` high or more (but the
        last)."""
        edges = np.unique(np.clip(self.grid.boxes[:, [0, 2]], 0, self.grid.height)).tolist()
        slabs, top = [], edges[0]
        for edge in edges[1:]:
            if edge - top >= _SLAB_ROWS or edge == edges[-1]:
                slabs.append((top, edge))
                top = edge
        return slabs

    def _replay(self, events, patch_deltas, progress, cancel) -> None:
        self._known = {
            (int(p), int(seq)): np.asarray(delta, dtype=np.float16)
            for p, (seq, delta) in patch_deltas.items()
        }
        self._deferred = True
        for i, event in enumerate(events):
            try:
                self._apply(dict(event))
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f"events[{i}]: {error}") from error
        self._deferred = False
        self._rebuild(progress, cancel)
        self._known = {}

    def _rebuild(self, progress, cancel) -> None:
        """Compute every array of a fresh session from the stroke stack and patch versions.

        Each array is computed once, slab by slab (see ``_SLAB_ROWS``), blending only the columns
        that refined patches cover; the patch scores once, at the end."""
        for done, (index, seq) in enumerate(sorted(self._versions.items())):
            if cancel is not None and cancel():
                raise Cancelled("replay cancelled")
            self._deltas[index] = self._delta_for(index, seq)
            if progress is not None:
                progress(done + 1, len(self._versions))
        for record in self._strokes:
            self._burn(record)
        self._annotated = int(np.count_nonzero(self._user_map))
        grid, base = self.grid, self.base_logits
        refined = np.array(
            [grid.region(index) for index in sorted(self._versions)], dtype=np.int64
        ).reshape(-1, 4)
        # outside every stroke and refined patch the provenance stays "model", as live edits
        # leave it
        changed = union(*refined.tolist(), *(record.box for record in self._strokes))
        for y0, y1 in self._slabs():
            rows = np.s_[y0:y1]
            inside = refined[(refined[:, 0] < y1) & (refined[:, 2] > y0)]
            runs = []  # the columns the slab's refined patches cover, as merged ranges
            for x0, x1 in sorted(inside[:, [1, 3]].tolist()):
                if runs and x0 <= runs[-1][1]:
                    runs[-1][1] = max(runs[-1][1], x1)
                else:
                    runs.append([x0, x1])
            # between the runs the blend is the base logits unchanged: only their sigmoid
            left = 0
            for x0, x1 in runs:
                expit(base[rows, left:x0], out=self._probabilities[rows, left:x0])
                self._probabilities[rows, x0:x1] = blend_probabilities(
                    grid, base, self._deltas, (y0, x0, y1, x1)
                )
                left = x1
            expit(base[rows, left:], out=self._probabilities[rows, left:])
            self._mask[rows] = final_mask(self._probabilities[rows], self._user_map[rows])
            if changed is not None and changed[0] < y1 and y0 < changed[2]:
                window = _window((max(y0, changed[0]), changed[1], min(y1, changed[2]), changed[3]))
                self._provenance[window] = provenance_map(
                    self._user_map[window], self._mask[window], base[window] > 0
                )
        self.queue.update(self._probabilities, user=self._user_map)
