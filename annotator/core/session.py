"""The annotation session of one view: strokes, refinement, protection, history, patch queue.

Quick use::

    session = AnnotationSession(view, base_logits, refine)       # refine may be None
    proposal = session.propose_stroke(Stroke("add", [(x0, y0), (x1, y1)], default_radius()))
    proposal.added, proposal.removed, proposal.region            # preview of the network's change
    session.accept()          # or session.reject(): stroke stays, the network's change does not
    proposal = session.propose_stroke(stroke, preview=True)   # the refiner's fast preview first
    deltas = session.finishing_job()()                         # off the GUI thread, in the app
    session.finish_proposal(proposal, deltas)                  # accept() would do it anyway
    session.apply_stroke(stroke)                   # = propose + accept, returns the Change
    session.undo(); session.redo()
    session.mask, session.probabilities, session.provenance, session.user_map   # read-only views
    i = session.next_patch(); session.mark_done(i); session.coverage(); session.scores()

Model
-----
The refiner is stateless, so the session is a deterministic function of the base logits and the
append-only **journal** of events. A patch shows either the base prediction or the refinement
made when a stroke touching it was accepted: its *version* is that stroke's journal index, and
its logits are its part of ``refine(image, base, channel of all current strokes up to that
one)`` over the window of all the patches that stroke touches, refined as one image where they
can be (``refinement_model.blocks``; else each patch alone). The change ``refined - base``
(float16, network size) is blended onto the full-resolution base logits with the stitching
weights (see ``blend``), only over the patches that changed.
The mask is ``probabilities > 0.5`` with the user's pixels forced (+1 add, -1 erase; the last
stroke over a pixel wins): no refinement overwrites a pixel the user drew.

Persistence interface (for the project file)
--------------------------------------------
- State = ``base_logits`` (H, W) float32, the ``view``, the ``grid``, the refiner, plus
  :attr:`AnnotationSession.journal`: a list of JSON-serialisable event dicts, appended to and
  never rewritten (undo and redo are events too, so the undo / redo stacks survive reopening):

  - ``{"type": "stroke", "stroke": Stroke.to_dict(), "accepted": bool, "t": float}``:
    ``accepted`` says whether the network's change became part of the mask (False after
    :meth:`reject`, and for strokes applied without a refiner);
  - ``{"type": "done", "patch": int, "done": bool, "t": float}`` (undoable);
  - ``{"type": "undo", "t": float}``, ``{"type": "redo", "t": float}``;
  - ``{"type": "visit", "patch": int, "t": float}``, ``{"type": "skip", "patch": int, "t": float}``
    (navigation: not undoable, does not clear the redo stack).

  - ``{"type": "adapt", "top": int, "examples": int, "t": float}``: an accepted update of the
    online-adapted refiner, trained on ``examples`` corrected patches while the stroke event
    ``top`` was the latest in effect (not undoable; see ``annotator.core.adaptation``);
  - ``{"type": "propagate", "update": int or null, "patches": [int, ...], "t": float}``: the
    patches (none with strokes) now show the change the adapted refiner of the ``adapt`` event
    ``update`` makes over the session's refiner, both with no strokes (null: the base logits
    again); not undoable.

  A stroke refined with an adapted refiner names its ``adapt`` event as ``"adapted"``.
- The start may be refined after the session began (:meth:`AnnotationSession.refine_start`:
  the refiner's no-stroke change of patches no correction has touched, added to
  ``base_logits``). That is not a journal event: the project stores the base logits it changes.
  ``"t"`` is the wall-clock time in seconds (only used for the effort counters).
- :meth:`AnnotationSession.replay` ``(view, base_logits, refine, events, *, patch_deltas=None,
  ...)`` rebuilds the identical session. Without ``patch_deltas`` it calls the refiner once per
  refined patch; with the mapping from :meth:`AnnotationSession.patch_deltas` stored alongside the
  journal it calls it not at all (fast reopening).
- :meth:`AnnotationSession.add_listener` ``(callback)``: ``callback(change)`` after every journal
  event, with :class:`Change` ``(event, region, patches)``: the event appended, the box
  ``(y0, x0, y1, x1)`` where mask / probabilities / user map / provenance changed (or None) and
  the patches whose state changed. The project file writes the event and the dirty mask tiles;
  the GUI repaints the region.
- The session does no I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from annotator.core import regions
from annotator.core.events import Change, EventLog
from annotator.core.patch_queue import PatchQueue, check_patch_index
from annotator.core.provenance import final_mask
from annotator.core.refiners import as_refine_fn
from refinement_model.corrections import blend_probabilities
from refinement_model.errors import Cancelled
from refinement_model.metrics import score_masks, thin
from refinement_model.patches import PatchGrid, stitch_region_logits
from refinement_model.stroke_widths import PAPER_STROKE_WIDTHS
from refinement_model.strokes import Stroke, rasterize_stroke
from refinement_model.views import network_input

__all__ = [
    "AnnotationSession",
    "Change",
    "HALF_WIDTH_MEAN",
    "PROBABILITY_CLIP",
    "Proposal",
    "StoredView",
    "default_radius",
]

#: The start's probabilities are kept in [PROBABILITY_CLIP, 1 - PROBABILITY_CLIP], so that its
#: logits are finite.
PROBABILITY_CLIP = 1e-7
_LOGIT_BOUND = np.float32(np.log((1 - PROBABILITY_CLIP) / PROBABILITY_CLIP))

#: Mean of the paper's stroke half-width Gamma at full resolution (docs/method.md).
HALF_WIDTH_MEAN = PAPER_STROKE_WIDTHS.mean


def default_radius(scale: float = 1.0) -> float:
    """Default stroke radius (half-width) in view pixels: the paper's mean times ``scale``.

    ``scale`` is the view's resolution relative to the full-resolution scans (1 for them).
    """
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be finite and > 0, got {scale!r}")
    return HALF_WIDTH_MEAN * float(scale)


@dataclass(frozen=True, eq=False)
class Proposal:
    """A stroke with the refinement it would bring, shown before accept / reject.

    Attributes
    ----------
    stroke : Stroke
    region : (y0, x0, y1, x1)
        Box holding every pixel the stroke or its refinement changes.
    human_mask : (h, w) bool ndarray
        The current mask in the region with only the stroke burned in (what reject gives).
    mask : (h, w) bool ndarray
        The mask in the region after accept.
    deltas : dict int -> (n, n) float16 ndarray
        The refiner's change of each affected patch (empty without a refiner).
    final : bool
        False for the preview refiner's proposal (see :meth:`AnnotationSession.propose_stroke`).
    """

    stroke: Stroke
    region: tuple[int, int, int, int]
    human_mask: np.ndarray
    mask: np.ndarray
    deltas: dict = field(default_factory=dict)
    final: bool = True

    @property
    def added(self) -> np.ndarray:
        """(h, w) bool: pixels the network adds beyond the human-only result."""
        return self.mask & ~self.human_mask

    @property
    def removed(self) -> np.ndarray:
        """(h, w) bool: pixels the network removes from the human-only result."""
        return self.human_mask & ~self.mask


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False)
class StoredView:
    """The part of a view the session needs once the display and the refiner have their
    inputs, and all a project file holds: enough to replay a journal without the maps.

    ``mirror_mask`` (H, W) bool; ``ground_truth`` (H, W) bool or None; ``files`` the view's
    ``ViewFiles`` when known."""

    view_id: str
    mirror_mask: np.ndarray
    px_per_mm: float
    ground_truth: np.ndarray | None = None
    files: object = None


class AnnotationSession(EventLog):
    """Annotation state of one view.

    Parameters
    ----------
    view : MirrorView
        Uses ``mirror_mask``, ``ground_truth`` and (for the refiner) the maps.
    base_logits : (H, W) float32 ndarray
        The base model's stitched logits. Never modified (kept by reference).
    refine : callable or object with ``refine``, optional
        Refine function (see ``refiners``), kept as :attr:`refiner`; ``None`` annotates
        without a network. An object
        whose ``preview`` is a faster refiner (``PatchRefiner`` averaging several orientations
        or refining again has its one-pass self there) lets :meth:`propose_stroke` show that
        one's result first.
    grid : PatchGrid, optional
        Default ``PatchGrid(H, W)`` (512 px patches, stride 256, net size 256).
    image : (C, H, W) float32 ndarray, optional
        Network inputs; default ``network_input(view, inputs)``, computed at the first refinement.
    inputs : sequence of str, optional
        The refiner's image channels (see ``refinement_model.views.network_input``).
    history_limit : int, optional
        Most undo steps kept.
    cache_bytes : int, optional
        Memory for the refined patch changes of versions not shown (speeds up undo / redo).
    clock : callable() -> float, optional
        Time source for the events' ``"t"``.
    adapted_refiners : callable(int) -> refiner, optional
        The adapted refiner of an ``adapt`` event (by journal index), to recompute patch
        versions it made that are not stored (see :meth:`use_adapted_refiner`).
    """

    def __init__(
        self,
        view,
        base_logits,
        refine=None,
        *,
        grid: PatchGrid | None = None,
        image=None,
        inputs=("depth",),
        history_limit: int = 1000,
        cache_bytes: int = 32 << 20,
        clock: Callable[[], float] = time.time,
        adapted_refiners: Callable[[int], object] | None = None,
        _events=None,
    ):
        base_logits = np.asarray(base_logits)
        if base_logits.ndim != 2 or base_logits.dtype != np.float32:
            raise ValueError(
                f"base_logits must be a 2-D float32 array, got {base_logits.dtype} "
                f"{base_logits.shape}"
            )
        mirror_mask = np.asarray(view.mirror_mask)
        if mirror_mask.shape != base_logits.shape:
            raise ValueError(
                f"base_logits must have the view's shape {mirror_mask.shape}, "
                f"got {base_logits.shape}"
            )
        grid = PatchGrid(*base_logits.shape) if grid is None else grid
        if grid.shape != base_logits.shape:
            raise ValueError(f"grid must cover the view {base_logits.shape}, got {grid!r}")
        if image is not None and (np.ndim(image) != 3 or np.shape(image)[1:] != grid.shape):
            raise ValueError(
                f"image must have shape (C, H, W) with (H, W) = {grid.shape}, got {np.shape(image)}"
            )
        super().__init__(grid, history_limit=history_limit, cache_bytes=cache_bytes)
        self.view = view
        self.base_logits = base_logits
        self.grid = grid
        self._refine = None if refine is None else as_refine_fn(refine)
        self.refiner = refine
        preview = getattr(refine, "preview", None)
        self._preview = None if preview is None else as_refine_fn(preview)
        self._base_refine, self._base_preview = self._refine, self._preview
        self._adapted_update = None  # the adapt event whose refiner refines new strokes
        self._adapted_source = (
            None
            if adapted_refiners is None
            else lambda update: as_refine_fn(adapted_refiners(update))
        )
        self._image = image
        self._inputs = tuple(inputs)
        self._clock = clock
        self._listeners: list = []
        self._pending: Proposal | None = None
        self._gt_skeleton = None
        self._scores = None  # of the current mask; dropped whenever the mask changes
        self._start_updates = 0
        self._mask = np.empty(grid.shape, dtype=bool)
        self._provenance = np.zeros(grid.shape, dtype=np.uint8)
        self.queue = PatchQueue(grid, mirror_mask)
        # the arrays are computed once, after the journal (``replay``'s ``_events``, else none)
        self._replay(*(_events or ((), {}, None, None)))

    # ----------------------------------------------------------------- reading the state
    mask = property(
        lambda self: _read_only(self._mask), doc="(H, W) bool: the current mask (read-only view)."
    )
    probabilities = property(
        lambda self: _read_only(self._corrections.probabilities),
        doc="(H, W) float32: current line probabilities (read-only view).",
    )
    provenance = property(
        lambda self: _read_only(self._provenance),
        doc="(H, W) uint8: provenance codes, see ``provenance`` (read-only).",
    )
    user_map = property(
        lambda self: _read_only(self._corrections.user),
        doc="(H, W) int8: +1 added, -1 erased by the user, 0 elsewhere.",
    )
    pending = property(
        lambda self: self._pending, doc="The :class:`Proposal` awaiting accept / reject, or None."
    )
    start_updates = property(
        lambda self: self._start_updates,
        doc="How often :meth:`refine_start` changed the start: with the journal's length, "
        "what says that a result computed off the GUI thread is outdated.",
    )

    @property
    def journal(self) -> list[dict]:
        """All events so far, oldest first (a new list; treat the dicts as read-only)."""
        return list(self._journal)

    @property
    def strokes(self) -> list[Stroke]:
        """The strokes currently in effect, in drawing order."""
        return [record.stroke for record in self._strokes]

    @property
    def stroke_events(self) -> list[int]:
        """Journal indices of the stroke events in effect, in drawing order."""
        return [record.seq for record in self._strokes]

    @property
    def network_image(self) -> np.ndarray:
        """(C, H, W) float32: the refiner's whole-view input (built now if need be; see
        :meth:`prepare_refinement`). Shared: do not modify."""
        self.prepare_refinement()
        if self._image is None:
            raise ValueError("this session has no refiner, so no network input")
        return self._image

    @property
    def patch_states(self) -> np.ndarray:
        """(N,) uint8 patch states, see ``patch_queue`` (NOT_SEEN, VISITED, REFINED, DONE)."""
        return self.queue.states

    def add_listener(self, callback: Callable[[Change], None]) -> None:
        """Call ``callback(change)`` after every journal event."""
        self._listeners.append(callback)

    def remove_listener(self, callback) -> None:
        self._listeners.remove(callback)

    # ----------------------------------------------------------------- strokes
    def propose_stroke(
        self, stroke: Stroke, *, preview: bool = False, progress=None, cancel=None
    ) -> Proposal:
        """Refine the patches a stroke touches and hold the result for :meth:`accept`.

        Parameters
        ----------
        stroke : Stroke
            In view pixels (x = column, y = row); must overlap the view.
        preview : bool, keyword-only
            Refine with the refiner's faster ``preview``, if it has one: the proposal is then
            not ``final``, and :meth:`finish_proposal` (or :meth:`accept`) replaces it with the
            refiner's own.
        progress : callable(done, total), optional
            Called once the touched patches are refined (in one pass of the refiner).
        cancel : callable() -> bool, optional
            Checked before refining; raises :class:`Cancelled` (nothing changes).

        Returns
        -------
        Proposal
            Also available as :attr:`pending` until accepted or rejected.
        """
        self._check_idle()
        record = self._record(len(self._journal), stroke)
        self._start_frozen.update(record.patches)  # the refinement reads their start
        deltas, final = {}, True
        if self._refine is not None:
            if cancel is not None and cancel():
                raise Cancelled("refinement cancelled")
            job = self._new_stroke_job(record)
            final = not (preview and self._preview is not None)
            deltas = self._refine_patches(job, self._refine if final else self._preview)
            if progress is not None:
                progress(len(deltas), len(deltas))
        self._pending = self._proposal(record, deltas, final)
        return self._pending

    def finishing_job(self) -> Callable[[], dict]:
        """The work :meth:`finish_proposal` needs for the pending proposal, as a function of
        nothing that returns its ``deltas``. It only reads arrays the session never changes,
        so it may run on another thread while the session goes on."""
        if self._pending is None:
            raise RuntimeError("no refinement proposal is pending")
        return self._refinement_job(
            self._new_stroke_job(self._record(len(self._journal), self._pending.stroke))
        )

    def finish_proposal(self, proposal: Proposal, deltas: dict | None = None) -> Proposal:
        """Replace the pending preview ``proposal`` with the refiner's own.

        ``deltas`` is what :meth:`finishing_job` returned for it (computed here when None).
        Returns the final proposal, now :attr:`pending`; a final one is returned as it is.
        """
        if proposal is not self._pending:
            raise RuntimeError("that proposal is not the pending one")
        if proposal.final:
            return proposal
        deltas = self.finishing_job()() if deltas is None else deltas
        if set(deltas) != set(proposal.deltas):
            raise ValueError(
                f"deltas must be for the patches {sorted(proposal.deltas)}, got {sorted(deltas)}"
            )
        record = self._record(len(self._journal), proposal.stroke)
        self._pending = self._proposal(record, deltas, True)
        return self._pending

    def _proposal(self, record, deltas: dict, final: bool) -> Proposal:
        stroke = record.stroke
        region = self._stroke_region(record, deltas)
        window = np.s_[region[0] : region[2], region[1] : region[3]]
        user = self._corrections.user[window].copy()
        user[rasterize_stroke(stroke, user.shape, origin=(region[1], region[0]))] = stroke.sign
        human = final_mask(self._corrections.probabilities[window], user)
        refined = (
            final_mask(
                blend_probabilities(
                    self.grid, self.base_logits, {**self._corrections.deltas, **deltas}, region
                ),
                user,
            )
            if deltas
            else human.copy()
        )
        return Proposal(stroke, region, human, refined, deltas, final)

    def accept(self) -> Change:
        """Commit the pending proposal: the stroke and the refiner's change (a preview is
        finished first, so that what is kept never depends on the preview)."""
        if self._pending is not None and not self._pending.final:
            self.finish_proposal(self._pending)
        proposal = self._take_pending()
        event = {
            "type": "stroke",
            "stroke": proposal.stroke.to_dict(),
            "accepted": bool(proposal.deltas),
        }
        if proposal.deltas and self._adapted_update is not None:
            event["adapted"] = self._adapted_update
        return self._commit(event, proposal.deltas)

    def reject(self) -> Change:
        """Commit the pending stroke without the network's change."""
        proposal = self._take_pending()
        return self._commit(
            {"type": "stroke", "stroke": proposal.stroke.to_dict(), "accepted": False}
        )

    def apply_stroke(
        self, stroke: Stroke, *, refine: bool = True, progress=None, cancel=None
    ) -> Change:
        """Commit a stroke with its refinement at once (= propose + accept); with
        ``refine=False`` or without a refiner, burn the stroke in only (journalled with
        ``"accepted": false``). Returns the :class:`Change`."""
        if refine and self._refine is not None:
            self.propose_stroke(stroke, progress=progress, cancel=cancel)
            return self.accept()
        self._check_idle()
        if not isinstance(stroke, Stroke):
            raise ValueError(f"stroke must be a Stroke, got {type(stroke).__name__}")
        return self._commit({"type": "stroke", "stroke": stroke.to_dict(), "accepted": False})

    # ----------------------------------------------------------------- online adaptation
    adapted_update = property(
        lambda self: self._adapted_update,
        doc="Index of the ``adapt`` event whose refiner refines new "
        "strokes, or None (the session's own refiner).",
    )

    def use_adapted_refiner(
        self, update: int | None, refiner=None, source: Callable[[int], object] | None = None
    ) -> None:
        """Refine new strokes with ``refiner``, the adapted refiner of the ``adapt`` event at
        journal index ``update`` (None, None: the session's own refiner again).

        ``source(update)`` gives any adapted refiner by its event (kept for recomputing patch
        versions they made; default: the one given at construction). Not a journal event:
        the strokes refined from now on record ``update``."""
        self._check_idle()
        if update is not None:
            self._check_update(update, "update")
            if refiner is None:
                raise ValueError("an adapted update needs its refiner")
        if source is not None:
            self._adapted_source = lambda u: as_refine_fn(source(u))
        if update is None:
            self._refine, self._preview = self._base_refine, self._base_preview
        else:
            preview = getattr(refiner, "preview", None)
            self._refine = as_refine_fn(refiner)
            self._preview = None if preview is None else as_refine_fn(preview)
        self._adapted_update = update

    def propagation_job(self, indices, refiner) -> Callable[[], dict]:
        """The changes :meth:`propagate` shows for patches ``indices`` with the adapted
        ``refiner``, as a function of an optional ``cancel`` (it may run on another thread,
        like :meth:`finishing_job`): where the adapted and the own refiner, both with no strokes,
        decide differently, the adapted logits
        (:func:`~annotator.core.regions.propagated_patches`)."""
        if self._base_refine is None:
            raise ValueError("this session has no refiner to adapt")
        return self._propagation_job(indices, as_refine_fn(refiner))

    def _propagation_job(self, indices, adapted) -> Callable[[], dict]:
        self.prepare_refinement()
        self._start_frozen.update(int(i) for i in indices)  # the job reads their start
        return partial(
            regions.propagated_patches,
            self.grid,
            adapted,
            self._base_refine,
            self._image,
            self.base_logits,
            list(indices),
        )

    def record_adaptation(self, top: int, examples: int) -> Change:
        """Journal an accepted update of the adapted refiner (see the module docstring):
        trained on ``examples`` patches while the stroke event ``top`` was the latest in
        effect. Returns the :class:`Change`; the new event's index names the update."""
        self._check_idle()
        return self._commit({"type": "adapt", "top": int(top), "examples": int(examples)})

    def propagate(self, update: int | None, deltas: Mapping[int, np.ndarray]) -> Change:
        """Show the adapted refiner's no-stroke prediction on patches without strokes.

        Parameters
        ----------
        update : int or None
            The ``adapt`` event whose refiner made ``deltas``; None puts the patches (keys of
            ``deltas``, values ignored) back to the base logits.
        deltas : mapping of int to (n, n) float16 ndarray
            Per patch, what :meth:`propagation_job` computes.
        """
        self._check_idle()
        return self._commit(
            {"type": "propagate", "update": update, "patches": sorted(int(p) for p in deltas)},
            None if update is None else dict(deltas),
        )

    def refine_start(self, changes: Mapping[int, np.ndarray]) -> list[Change]:
        """Add the start's change of some patches to the base logits, where no correction is.

        For a start refined patch by patch while the user works (see
        ``refinement_model.start.StartPredictor.patch_changes``): each patch's change is
        blended as the whole-view stitching would (``stitch_region_logits(..., missing=0)``)
        and added to :attr:`base_logits`, rounded to float16 as the project stores them and
        clipped to the start's logit range. Pixels of the patches a stroke, a refinement or a
        propagation has touched (read or changed) keep their start, so that every patch change
        stays relative to the start it was computed from, and replaying the journal from the
        stored start gives this session again. Not a journal event.

        Parameters
        ----------
        changes : mapping of int to (net_size, net_size) float ndarray
            Per patch, its refined (no strokes) minus base logits.

        Returns
        -------
        list of Change
            One per patch whose start changed (listeners get each), in patch order, with event
            ``{"type": "start", "patches": [patch]}`` (not in the journal) and the patch's box.
        """
        grid, start = self.grid, self.base_logits
        indices = sorted(check_patch_index(grid, index) for index in changes)
        frozen = [grid.region(p) for p in sorted(self._start_frozen)]
        done = []
        for index in indices:
            if index in self._start_frozen:
                continue
            box = grid.region(index)
            change = stitch_region_logits(grid, {index: changes[index]}, box, missing=0.0)
            for other in frozen:
                top, left = max(box[0], other[0]), max(box[1], other[1])
                bottom, right = min(box[2], other[2]), min(box[3], other[3])
                if top < bottom and left < right:
                    change[top - box[0] : bottom - box[0], left - box[1] : right - box[1]] = 0
            window = start[box[0] : box[2], box[1] : box[3]]
            change += window
            np.clip(change, -_LOGIT_BOUND, _LOGIT_BOUND, out=change)
            window[...] = change.astype(np.float16)
            # patch by patch: a batch's patches may lie far apart
            self._corrections.reblend(box)
            done.append(Change({"type": "start", "patches": [index]}, self._refresh(box, None)))
        if done:
            self._scores = None
        self._start_updates += 1
        for change in done:
            for callback in list(self._listeners):
                callback(change)
        return done

    # ----------------------------------------------------------------- history
    def undo(self) -> Change:
        """Undo the latest committed step (``ValueError`` when there is none)."""
        self._check_idle()
        if not self._history.can_undo:
            raise ValueError("nothing to undo")
        return self._commit({"type": "undo"})

    def redo(self) -> Change:
        """Redo the latest undone step (``ValueError`` when there is none)."""
        self._check_idle()
        if not self._history.can_redo:
            raise ValueError("nothing to redo")
        return self._commit({"type": "redo"})

    can_undo = property(lambda self: self._history.can_undo)
    can_redo = property(lambda self: self._history.can_redo)

    # ----------------------------------------------------------------- patches
    def visit(self, index: int) -> Change:
        """Record that patch ``index`` was shown (not undoable)."""
        return self._commit({"type": "visit", "patch": check_patch_index(self.grid, index)})

    def skip(self, index: int) -> Change:
        """Put patch ``index`` at the back of the queue (not undoable)."""
        return self._commit({"type": "skip", "patch": check_patch_index(self.grid, index)})

    def mark_done(self, index: int, done: bool = True) -> Change:
        """Mark patch ``index`` done (or reopen it with ``done=False``); undoable."""
        self._check_idle()
        return self._commit(
            {"type": "done", "patch": check_patch_index(self.grid, index), "done": bool(done)}
        )

    def next_patch(self) -> int | None:
        """Visit and return the worst patch not seen yet (``None`` when all were seen)."""
        index = self.queue.next()
        if index is not None:
            self.visit(index)
        return index

    def revisit_patch(self) -> int | None:
        """Visit and return the worst patch seen but not done (``None`` if there is none)."""
        index = self.queue.revisit()
        if index is not None:
            self.visit(index)
        return index

    def coverage(self, *, done_only: bool = False) -> float:
        """Share of the mirror area inside patches seen (or done)."""
        return self.queue.coverage(done_only=done_only)

    # ----------------------------------------------------------------- figures
    def effort(self, *, idle_cap_s: float = 60.0) -> dict:
        """Effort so far: ``strokes`` in effect, ``annotated_pixels`` (pixels the user's strokes
        cover), ``time_s`` (time between events, each gap capped at ``idle_cap_s``), and the
        counts of ``accepted`` and ``rejected`` refinements among the strokes."""
        times = np.array([e["t"] for e in self._journal if "t" in e], dtype=np.float64)
        accepted = sum(bool(self._journal[r.seq]["accepted"]) for r in self._strokes)
        return {
            "strokes": len(self._strokes),
            "annotated_pixels": self._corrections.annotated_pixels,
            "time_s": (float(np.minimum(np.diff(times), idle_cap_s).sum()) if len(times) else 0.0),
            "accepted": accepted,
            "rejected": len(self._strokes) - accepted,
        }

    def scores(self) -> dict | None:
        """``score_masks`` of the current mask inside the mirror area, or None without ground
        truth (pfm, fm, iou, precision, recall, dice). Cached until the mask changes (a
        full-size view takes a fraction of a second; the skeleton of the ground truth is
        computed once)."""
        gt = self.view.ground_truth
        if gt is None:
            return None
        if self._gt_skeleton is None:
            self._gt_skeleton = thin(gt)
        if self._scores is None:
            self._scores = score_masks(
                self._mask, gt, mask=self.view.mirror_mask, gt_skeleton=self._gt_skeleton
            )
        return dict(self._scores)

    def memory_bytes(self) -> dict:
        """Bytes beyond the view-sized arrays: ``refined_patches`` (the changes shown, at most
        ``N * net_size ** 2 * 2``) and ``cache`` (changes of versions not shown, at most
        ``cache_bytes``)."""
        return {
            "refined_patches": sum(d.nbytes for d in self._corrections.deltas.values()),
            "cache": self._cache.nbytes,
        }

    def patch_deltas(self) -> dict:
        """``{patch: (version, delta)}`` of every refined patch: delta (n, n) float16 (shared,
        do not modify). Store it to make :meth:`replay` call no refiner."""
        return {p: (self._versions[p], delta) for p, delta in self._corrections.deltas.items()}

    @classmethod
    def replay(
        cls,
        view,
        base_logits,
        refine,
        events,
        *,
        patch_deltas: Mapping | None = None,
        progress=None,
        cancel=None,
        **options,
    ) -> AnnotationSession:
        """Rebuild a session from its journal.

        Parameters
        ----------
        view, base_logits, refine
            As for the constructor (``refine`` may be None only if no event needs it or
            ``patch_deltas`` holds every refined patch).
        events : sequence of dict
            A journal, as :attr:`journal` gave it.
        patch_deltas : mapping, optional
            :meth:`patch_deltas` of the session that wrote the journal.
        progress, cancel : optional
            As in :meth:`propose_stroke`, over the patches that need the refiner.
        **options
            Other constructor options (grid, image, inputs, history_limit, cache_bytes, clock).

        Raises
        ------
        ValueError
            ``"events[i]: ..."`` for an event that is malformed or impossible at its place.
        """
        return cls(
            view,
            base_logits,
            refine,
            **options,
            _events=(events, patch_deltas or {}, progress, cancel),
        )

    # ----------------------------------------------------------------- internals
    def _check_idle(self) -> None:
        if self._pending is not None:
            raise RuntimeError("a refinement proposal is pending: accept() or reject() it first")

    def _take_pending(self) -> Proposal:
        if self._pending is None:
            raise RuntimeError("no refinement proposal is pending")
        proposal, self._pending = self._pending, None
        return proposal

    def _commit(self, event: dict, deltas=None) -> Change:
        event["t"] = float(self._clock())
        change = self._apply(event, deltas)
        if change.region is not None:
            self._scores = None
        for callback in list(self._listeners):
            callback(change)
        return change

    def prepare_refinement(self) -> None:
        """Build the refiner's whole-view input now (about a second on a full-size view), so
        that the first stroke does not pay for it; the app calls it off the GUI thread."""
        if self._refine is not None and self._image is None:
            self._image = network_input(self.view, self._inputs)

    def release_view_maps(self) -> None:
        """Let go of the view's float maps (1.2 GB on a full-size view) once the refiner's
        input is built (:meth:`prepare_refinement`, called here) and the display holds its own
        8-bit copies: :attr:`view` becomes a :class:`StoredView` with what the session still
        reads (id, mirror area, scale, ground truth, files)."""
        self.prepare_refinement()
        view = self.view
        self.view = StoredView(
            view.view_id,
            view.mirror_mask,
            float(view.px_per_mm),
            view.ground_truth,
            getattr(view, "files", None),
        )

    def _new_stroke_job(self, record) -> tuple:
        """The patches a new stroke touches and the strokes they are refined with: every
        earlier stroke on any of them too."""
        return self._job([*self._strokes, record], record.patches)

    def _refine_patches(self, job, refine=None) -> dict:
        return self._refinement_job(job, refine)()

    def _refinement_job(self, job, refine=None) -> Callable[[], dict]:
        """Refining ``job`` (patches, strokes) as a function of nothing, bound to arrays the
        session never changes, so that it may run on another thread."""
        if self._refine is None:
            raise ValueError("this session has no refiner, but a refined patch must be computed")
        self.prepare_refinement()
        return partial(
            regions.refine_patches,
            self.grid,
            refine or self._refine,
            self._image,
            self.base_logits,
            job,
        )
