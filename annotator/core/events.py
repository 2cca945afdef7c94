"""How journal events change the session state: the one code path for live edits and replay.

:class:`EventLog` is the base of :class:`annotator.core.session.AnnotationSession`; it applies
one event at a time (``_apply``) to the stroke stack, the patch versions, the history, the queue
and, region by region, to the arrays: the user map, patch changes and probabilities live in a
:class:`refinement_model.corrections.ViewCorrections`, the one the evaluation corrects too.
During replay it runs *deferred*: only the cheap bookkeeping is done per event, and
``_rebuild`` then computes each array once, refining only the patch versions that are finally
shown (a new session is the replay of the empty journal).
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

from annotator.core.history import (
    BASE_VERSION,
    DeltaCache,
    DoneStep,
    History,
    StrokeRecord,
    StrokeStep,
)
from annotator.core.patch_queue import check_patch_index
from annotator.core.provenance import provenance_map
from refinement_model.corrections import ViewCorrections, stroke_box
from refinement_model.errors import Cancelled
from refinement_model.patches import union
from refinement_model.strokes import Stroke

__all__ = ["Change", "EVENT_TYPES", "EventLog"]

EVENT_TYPES = ("stroke", "done", "undo", "redo", "visit", "skip", "adapt", "propagate")
# Rows of the mask and the provenance rebuilt at once: the temporaries stay small.
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
        # patches a correction has read or changed: the start refined later leaves them as
        # they were (see AnnotationSession.refine_start)
        self._start_frozen: set[int] = set()
        self._cache = DeltaCache(cache_bytes)
        self._known: dict = {}
        self._deferred = False
        # the strokes' user map, the patch changes and the probabilities, made by ``_rebuild``
        self._corrections: ViewCorrections | None = None
        # the subclass's own refine function, and update (index of an "adapt" event) -> that
        # adapted refiner; see ``_refiner_of``
        self._base_refine = None
        self._adapted_source = None

    def _record(self, seq: int, stroke) -> StrokeRecord:
        box = stroke_box(stroke, self.grid.shape)
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
        self._corrections.add_stroke(record.stroke)
        return self._refresh(record.box, blend_box), tuple(sorted(record.patches))

    def _pop(self, step: StrokeStep):
        record = self._strokes.pop()
        if record is not step.record:
            raise RuntimeError("history out of step with the stroke stack")
        self.queue.stroke_counts[sorted(record.patches)] -= 1
        blend_box = self._set_versions(step.old_versions, None)
        if self._deferred:
            return None, ()
        stroke, box = self._corrections.remove_last_stroke()
        if stroke is not record.stroke:
            raise RuntimeError("history out of step with the corrections' strokes")
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

    # ----------------------------------------------------------------- patch versions
    def _set_versions(self, versions: dict, deltas):
        """Show the given patch versions (blended at once unless deferred); returns the box of
        the patches that changed."""
        changes = {}  # patch -> its new change, None for the base prediction
        for index, seq in versions.items():
            old = self._versions.get(index, BASE_VERSION)
            if old == seq:
                continue
            self._start_frozen.add(index)
            changes[index] = None
            if old != BASE_VERSION and not self._deferred:
                self._cache.put((index, old), self._corrections.deltas[index])
            if seq == BASE_VERSION:
                del self._versions[index]
                continue
            self._versions[index] = seq
            if not self._deferred:
                given = None if deltas is None else deltas.get(index)
                changes[index] = given if given is not None else self._delta_for(index, seq)
        if self._deferred:
            return union(*(self.grid.region(index) for index in changes))
        return self._corrections.set_deltas(changes)

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
            job = self._job(self._strokes[: position + 1], self._strokes[position].patches)
            deltas = self._refine_patches(job, self._refiner_of(event.get("adapted")))
            for other, other_delta in deltas.items():
                if other != index:  # the same refinement made them: kept for their turn
                    self._cache.put((other, seq), other_delta)
            delta = deltas[index]
        return delta

    @staticmethod
    def _job(records, patches) -> tuple:
        """The refinement of ``patches`` (the ones a stroke touches): them, ascending, and the
        strokes of ``records`` (up to that stroke, in drawing order) on any of them."""
        return sorted(patches), [r.stroke for r in records if r.patches & patches]

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
        """Recompute mask, provenance and patch scores in the box of a stroke and the patches
        whose changes were blended anew."""
        corrections = self._corrections
        region = union(box, blend_box)
        self.queue.update(corrections.probabilities, region, corrections.user)
        window = _window(region)
        self._mask[window] = corrections.network_mask(window)
        self._provenance[window] = provenance_map(
            corrections.user[window], self._mask[window], self.base_logits[window] > 0
        )
        return region

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

        Each array is computed once (the probabilities blended only where refined patches lie,
        see :meth:`ViewCorrections.reblend`), the mask and provenance ``_SLAB_ROWS`` rows at a
        time; the patch scores once, at the end."""
        deltas = {}
        for done, (index, seq) in enumerate(sorted(self._versions.items())):
            if cancel is not None and cancel():
                raise Cancelled("replay cancelled")
            deltas[index] = self._delta_for(index, seq)
            if progress is not None:
                progress(done + 1, len(self._versions))
        corrections = self._corrections = ViewCorrections(
            self.grid, self.base_logits, strokes=[r.stroke for r in self._strokes], deltas=deltas
        )
        # outside every stroke and refined patch the provenance stays "model", as live edits
        # leave it
        changed = union(
            *(self.grid.region(index) for index in deltas),
            *(record.box for record in self._strokes),
        )
        for y0 in range(0, self.grid.height, _SLAB_ROWS):
            y1 = min(y0 + _SLAB_ROWS, self.grid.height)
            self._mask[y0:y1] = corrections.network_mask(np.s_[y0:y1])
            if changed is not None and changed[0] < y1 and y0 < changed[2]:
                window = _window((max(y0, changed[0]), changed[1], min(y1, changed[2]), changed[3]))
                self._provenance[window] = provenance_map(
                    corrections.user[window], self._mask[window], self.base_logits[window] > 0
                )
        self.queue.update(corrections.probabilities, user=corrections.user)
