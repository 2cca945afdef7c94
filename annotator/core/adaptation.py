"""Online adaptation of a session's refiner to the mirror being traced (Qt-free).

:class:`SessionAdaptation` ties a :class:`~refinement_model.adaptation.OnlineAdapter` to an
:class:`~annotator.core.session.AnnotationSession`; the app runs its jobs off the GUI thread::

    adaptation = SessionAdaptation(session, OnlineAdapter(refiner), every=3)
    job = adaptation.next_job()        # GUI thread: an immutable snapshot, or None
    outcome = job.run(cancel)          # worker thread (one job at a time)
    changes = adaptation.apply(outcome)   # GUI thread: [] when outdated, rejected or pending

What the jobs do
----------------
* **Update** (after every ``every`` committed strokes, with at least two corrected patches):
  the snapshot holds, per patch that strokes in effect touch (the latest ``max_examples``), a
  :class:`~refinement_model.adaptation.CorrectedPatch` at network size: the refiner's image
  channels, the start (the base logits, as the session refines from them), the current mask
  as target and the user's strokes as ``user`` (rasterised as the refiner sees them). It is
  stamped with the journal position and the latest stroke event in effect (``top``). An
  accepted result is applied only while ``top`` is still in effect and no other update was
  applied since the snapshot; it is journalled as an ``adapt`` event (its index names the
  update), its weights are handed to ``store_state`` (the project file), and new strokes are
  refined with the adapted refiner. A rejected update (validation got worse) changes nothing.
* **Propagation** (after an update is applied): the patches the queue offers, without strokes
  in effect and not marked done, that do not show this update's prediction yet, worst first by
  the GT-free score, in chunks of ``chunk``: each is re-predicted by the adapted refiner with no
  strokes, and where that prediction decides otherwise than the session's own refiner's
  no-stroke one, the patch takes it (:func:`~refinement_model.corrections.propagated_change`:
  an update that changed nothing changes no patch, as the evaluation's ``adaptive`` setting
  measures), through a ``propagate`` event (the mask, the queue
  and the listeners update as for any change). A chunk is dropped if the update is no longer
  the valid one, and patches that got strokes or were marked done meanwhile are left out.
  Patches already refined by strokes keep their refinement (made by the refiner valid when each
  stroke was drawn); a propagated patch that gets a stroke is refined from the base logits like
  any other.

Undo and reopening
------------------
The valid update is the latest ``adapt`` event whose ``top`` stroke is still in effect: the
stroke stack below a stroke cannot change while it is in effect, so that update's examples
are all still there. Undoing past it (:meth:`sync`, called after undo / redo) makes the
previous valid update (or the base refiner) refine new strokes again, puts the patches its
propagation showed back to the base logits (none valid) or re-propagates them with the valid
update's refiner; redo brings the update back. The project file keeps each accepted state as
the blob ``adapted/<event index>`` (:func:`stored_states`), so reopening restores the same
current weights, and the masks come from the stored patch changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from annotator.core.project import ADAPTED_STATE_PREFIX, DeferredRefiner
from refinement_model.adaptation import (
    AdaptationOptions,
    AdaptationResult,
    AdaptedState,
    CorrectedPatch,
    OnlineAdapter,
)
from refinement_model.checkpoints import read_tensors, write_tensors
from refinement_model.errors import InputError
from refinement_model.imageio import file_sha256
from refinement_model.patch_refiner import PatchRefiner
from refinement_model.patches import clip_box
from refinement_model.refiner_options import ADAPTATION_PERIOD
from refinement_model.strokes import stroke_channel

__all__ = [
    "STATE_PREFIX",
    "PropagationJob",
    "SessionAdaptation",
    "UpdateJob",
    "export_adapted_refiner",
    "journalled_states",
    "latest_in_effect",
    "prepare_adapter",
    "state_key",
    "state_writer",
    "stored_adapted_refiner",
    "states_from_blobs",
    "stored_states",
    "valid_update",
]

#: Prefix of the project-file blobs holding the adapted states.
STATE_PREFIX = ADAPTED_STATE_PREFIX


def state_key(update: int) -> str:
    """The project-file blob key of the state of the ``adapt`` event ``update``."""
    return f"{STATE_PREFIX}{int(update):09d}"


@dataclass(frozen=True, eq=False)
class UpdateJob:
    """An update's immutable snapshot (see the module docstring); :meth:`run` it off the GUI
    thread. ``position`` is the journal length and ``top`` the latest stroke event in effect
    when it was taken; ``base`` the update it continues from (None: the base refiner)."""

    adaptation: SessionAdaptation
    position: int
    top: int
    base: int | None
    patches: tuple[CorrectedPatch, ...]

    def run(self, cancel: Callable[[], bool] | None = None) -> tuple:
        """Train (seconds); returns ``(job, AdaptationResult, adapted refiner or None)``."""
        adapter = self.adaptation.adapter
        adapter.load_state(self.adaptation.states.get(self.base))
        result = adapter.update(self.patches, cancel=cancel)
        # exporting the adapted network takes a moment: here, not on the GUI thread
        refiner = adapter.refiner(result.state) if result.accepted else None
        return self, result, refiner


@dataclass(frozen=True, eq=False)
class PropagationJob:
    """One chunk of propagation: the change the adapted refiner of the ``adapt`` event
    ``update`` makes to ``patches`` (``compute``: the session's ``propagation_job``)."""

    adaptation: SessionAdaptation
    update: int
    patches: tuple[int, ...]
    compute: Callable[..., dict]

    def run(self, cancel: Callable[[], bool] | None = None) -> tuple:
        """Returns ``(job, {patch: (n, n) float16 delta})``; ``cancel`` is checked between
        the chunk's batches."""
        return self, self.compute(cancel=cancel)


class SessionAdaptation:
    """Online adaptation of one session's refiner (see the module docstring).

    Parameters
    ----------
    session : AnnotationSession
        With a refiner; the adapter's base refiner must be the session's.
    adapter : OnlineAdapter
    every : int, optional
        Committed strokes between updates (default ``refiner_options.ADAPTATION_PERIOD``, as
        the evaluation's ``adaptive`` setting).
    chunk : int, optional
        Patches per propagation job.
    states : mapping of int to AdaptedState, optional
        The accepted states by ``adapt`` event index (:func:`stored_states` of a reopened
        project); one without its ``adapt`` event (a crash between writing a state and its
        event) is left out.
    store_state : callable(int, AdaptedState), optional
        Called with an accepted update's event index and state just before its event is
        journalled (the project writes it; see :func:`state_writer`).

    Attributes
    ----------
    states : dict of int to AdaptedState
    rejected : int
        Updates that validated worse and were rolled back.
    outdated : int
        Results dropped because the session moved on.
    """

    def __init__(
        self,
        session,
        adapter: OnlineAdapter,
        *,
        every: int = ADAPTATION_PERIOD,
        chunk: int = 16,
        states: Mapping[int, AdaptedState] | None = None,
        store_state: Callable[[int, AdaptedState], None] | None = None,
    ):
        for name, value in (("every", every), ("chunk", chunk)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.session, self.adapter = session, adapter
        self.every, self.chunk = every, chunk
        self.store_state = store_state
        self.states = journalled_states(session.journal, states or {})
        for state in self.states.values():
            adapter.check_state(state)
        self._refiners: dict[int, object] = {}
        self._held: tuple | None = None  # an outcome that arrived while a proposal was pending
        self._since = 0  # strokes committed since the last update snapshot
        self.rejected = self.outdated = 0
        session.add_listener(self._on_change)
        self.sync()

    # ----------------------------------------------------------------- reading
    @property
    def examples(self) -> int:
        """Corrected patches the valid update learnt from (0 without one)."""
        update = self.valid_update()
        return 0 if update is None else int(self.session.journal[update]["examples"])

    def valid_update(self) -> int | None:
        """The latest ``adapt`` event whose ``top`` stroke is in effect, or None."""
        return valid_update(self.session, self.states)

    def corrected_patches(self, limit: int | None = None) -> list[CorrectedPatch]:
        """The patches strokes in effect touch, as the adapter learns them, the ones stroked
        last at the end (at most ``limit``, default the adapter's ``max_examples``)."""
        session, grid = self.session, self.session.grid
        limit = self.adapter.options.max_examples if limit is None else limit
        touching: dict[int, list] = {}
        for stroke in session.strokes:
            box = clip_box(stroke.bounds(), grid.shape)
            for index in grid.patches_touching(*box).tolist():
                touching.setdefault(index, []).append(stroke)
                touching[index] = touching.pop(index)  # most recently stroked last
        if not touching:
            return []
        image, n = session.network_image, grid.net_size
        out = []
        for index in list(touching)[-limit:]:
            user = stroke_channel(
                touching[index], (n, n), origin=grid.network_origin(index), scale=grid.scale
            ).astype(np.int8)
            target = grid.extract(session.mask, index)
            target[user != 0] = user[user != 0] > 0
            out.append(
                CorrectedPatch(
                    image=grid.extract(image, index).astype(np.float32),
                    start=grid.extract(session.base_logits, index).astype(np.float32),
                    target=target,
                    user=user,
                )
            )
        return out

    # ----------------------------------------------------------------- jobs
    def next_job(self) -> UpdateJob | PropagationJob | None:
        """The work to do now (GUI thread): an update when due, else the next chunk of
        propagation, else None (also while a result is held: see :meth:`apply`). Call
        :meth:`sync` after undo / redo first."""
        session = self.session
        if self._held is not None:
            return None
        if self._since >= self.every and session.stroke_events:
            self._since = 0
            patches = self.corrected_patches()
            if len(patches) >= 2:
                return UpdateJob(
                    self,
                    len(session.journal),
                    session.stroke_events[-1],
                    session.adapted_update,
                    tuple(patches),
                )
        update = session.adapted_update
        if update is None:
            return None
        targets = self._targets(update)
        if not targets:
            return None
        chunk = tuple(targets[: self.chunk])
        return PropagationJob(
            self, update, chunk, session.propagation_job(chunk, self._refiner(update))
        )

    def apply(self, outcome: tuple) -> list:
        """Apply what a job returned, if still current (GUI thread); returns the session's
        :class:`~annotator.core.events.Change` list (empty when nothing changed).

        A result arriving while a proposal is pending is held and applied by :meth:`resume`.
        """
        if self.session.pending is not None:
            self._held = outcome
            return []
        job = outcome[0]
        if isinstance(job, UpdateJob):
            return self._apply_update(job, outcome[1], outcome[2])
        return self._apply_propagation(job, outcome[1])

    def resume(self) -> list:
        """Apply a held result once no proposal is pending (see :meth:`apply`)."""
        if self._held is None or self.session.pending is not None:
            return []
        outcome, self._held = self._held, None
        return self.apply(outcome)

    def sync(self) -> list:
        """After undo / redo: refine with the valid update's refiner and, when no update is
        valid any more, put propagated patches back to the base logits. Returns the
        changes. Safe while a job runs on another thread (the adapter builds refiners from
        weights its training never touches)."""
        session = self.session
        update = self.valid_update()
        if update == session.adapted_update or session.pending is not None:
            return []
        session.use_adapted_refiner(
            update, None if update is None else self._refiner(update), source=self._refiner
        )
        if update is not None:
            return []  # the next jobs re-propagate with its refiner
        shown = self._propagated()
        return [session.propagate(None, dict.fromkeys(shown))] if shown else []

    def close(self) -> None:
        """Stop following the session (it keeps its adapted refiner and events)."""
        self.session.remove_listener(self._on_change)

    # ----------------------------------------------------------------- internals
    def _on_change(self, change) -> None:
        if change.event["type"] == "stroke":
            self._since += 1

    def _refiner(self, update: int):
        """The adapted refiner of update ``update`` (built once, on first use)."""
        if update not in self._refiners:
            self._refiners[update] = self.adapter.refiner(self.states[update])
        return self._refiners[update]

    def _propagated(self, update: int | None = None) -> list[int]:
        """Patches without strokes that show a propagation (of ``update``, if given)."""
        journal = self.session.journal
        counts = self.session.queue.stroke_counts
        return sorted(
            p
            for p, (version, _) in self.session.patch_deltas().items()
            if counts[p] == 0
            and journal[version]["type"] == "propagate"
            and (update is None or journal[version]["update"] == update)
        )

    def _targets(self, update: int) -> list[int]:
        """Patches still to propagate for ``update``, worst first."""
        queue = self.session.queue
        candidates = queue.eligible & (queue.stroke_counts == 0) & ~queue.done
        candidates[self._propagated(update)] = False
        indices = np.flatnonzero(candidates)
        return indices[np.argsort(-queue.scores[indices], kind="stable")].tolist()

    def _apply_update(self, job: UpdateJob, result: AdaptationResult, refiner) -> list:
        session = self.session
        if not result.accepted:
            self.rejected += 1
            return []
        if job.top not in session.stroke_events or self.valid_update() != job.base:
            self.outdated += 1
            return []
        update = len(session.journal)
        if self.store_state is not None:
            self.store_state(update, result.state)  # before the event: never an event without
        change = session.record_adaptation(job.top, len(job.patches))
        self.states[update] = result.state
        self._refiners[update] = refiner
        session.use_adapted_refiner(update, refiner, source=self._refiner)
        return [change]

    def _apply_propagation(self, job: PropagationJob, deltas: dict) -> list:
        session, queue = self.session, self.session.queue
        # the valid update too: an undo while the job ran may not be synced yet
        if session.adapted_update != job.update or self.valid_update() != job.update:
            self.outdated += 1
            return []
        kept = {
            p: d for p, d in deltas.items() if queue.stroke_counts[p] == 0 and not queue.done[p]
        }
        return [session.propagate(job.update, kept)] if kept else []


def journalled_states(journal: Sequence[dict], states: Mapping[int, AdaptedState]) -> dict:
    """The ``states`` (by journal index) that have their ``adapt`` event in ``journal`` (a
    session's): a state is written before its event, so a crash between the two leaves one
    without."""
    return {
        update: state
        for update, state in states.items()
        if 0 <= update < len(journal) and journal[update]["type"] == "adapt"
    }


def latest_in_effect(journal: Sequence[dict], stroke_events, updates) -> int | None:
    """The latest of ``updates`` (journal indices) that is an ``adapt`` event of ``journal``
    whose ``top`` stroke is one of ``stroke_events`` (those in effect), or None."""
    in_effect = set(stroke_events)
    return next(
        (
            seq
            for seq in sorted(journalled_states(journal, dict.fromkeys(updates)), reverse=True)
            if journal[seq]["top"] in in_effect
        ),
        None,
    )


def valid_update(session, updates) -> int | None:
    """The latest of ``updates`` (journal indices) that is an ``adapt`` event of ``session``
    whose ``top`` stroke is in effect, or None (see the module docstring)."""
    return latest_in_effect(session.journal, session.stroke_events, updates)


def stored_states(store) -> dict[int, AdaptedState]:
    """The adapted states a project file holds, by ``adapt`` event index.

    Raises
    ------
    InputError
        A damaged state (naming the project file).
    """
    return states_from_blobs(store.blobs(STATE_PREFIX), source=store.path)


def states_from_blobs(blobs: Mapping[str, bytes], *, source) -> dict[int, AdaptedState]:
    """The adapted states of a project file's blobs under :data:`STATE_PREFIX` (by key), by
    ``adapt`` event index; ``source`` names the file in errors (see :func:`stored_states`)."""
    out = {}
    for key, data in blobs.items():
        index = key.removeprefix(STATE_PREFIX)
        if not index.isdigit():
            raise InputError(source, f"damaged adapted state key {key!r}")
        out[int(index)] = AdaptedState.from_bytes(data, source=source)
    return out


def prepare_adapter(
    refiner,
    state_blobs: Mapping[str, bytes],
    *,
    source,
    journal: Sequence[dict] = (),
    stroke_events: Sequence[int] = (),
) -> tuple[OnlineAdapter, dict[int, AdaptedState]]:
    """What starting a session's adaptation takes seconds for, to run off the GUI thread: the
    adapter of the session's refiner (a deferred one is built), the stored states, and the
    adapted refiner of the update in effect (kept by the adapter, so that
    :class:`SessionAdaptation` finds it built).

    Parameters
    ----------
    refiner : PatchRefiner or DeferredRefiner
        The session's refiner.
    state_blobs : mapping of str to bytes
        The project file's blobs under :data:`STATE_PREFIX` (read on the thread that owns the
        project).
    source : str or os.PathLike
        The project file, named in errors.
    journal, stroke_events : sequences
        The session's ``journal`` and ``stroke_events`` (taken on that thread too), to find
        the update in effect (:func:`latest_in_effect`).

    Raises
    ------
    ValueError
        No refiner, or one that cannot adapt (not a U-Net).
    InputError
        A damaged state, or one made for another refiner.
    """
    if isinstance(refiner, DeferredRefiner):
        refiner = refiner.build()
    if not isinstance(refiner, PatchRefiner):
        raise ValueError("the session has no refiner checkpoint to adapt")
    adapter = OnlineAdapter(refiner)
    states = states_from_blobs(state_blobs, source=source)
    for state in states.values():
        adapter.check_state(state, source=source)
    update = latest_in_effect(journal, stroke_events, states)
    if update is not None:
        adapter.refiner(states[update])
    return adapter, states


def stored_adapted_refiner(store, refiner, update: int):
    """The adapted refiner of the ``adapt`` event at journal index ``update``: ``refiner`` (the
    project's :class:`~refinement_model.patch_refiner.PatchRefiner`) with the weights the
    project file stores for that event.

    Raises
    ------
    ValueError
        The file holds no state for that event, or ``refiner`` is not a PatchRefiner.
    InputError
        The state is damaged or was made for another refiner checkpoint.
    """
    states = stored_states(store)
    if update not in states:
        raise ValueError(f"{store.path} holds no adapted weights for the adapt event {update}")
    if not isinstance(refiner, PatchRefiner):
        raise ValueError(f"the adapt event {update} needs the project's refiner checkpoint")
    state = states[update]
    return OnlineAdapter(refiner, AdaptationOptions(**state.options)).refiner(state)


def state_writer(project) -> Callable[[int, AdaptedState], None]:
    """``store_state`` for :class:`SessionAdaptation`: writes each state into ``project``'s
    file (in its own transaction, before the event that names it)."""

    def write(update: int, state: AdaptedState) -> None:
        if not project.store.readonly:
            project.store.commit(blobs={state_key(update): state.to_bytes()})

    return write


def export_adapted_refiner(
    path, base_checkpoint, state: AdaptedState, *, position: int, examples: int
) -> None:
    """Write a refiner checkpoint: ``base_checkpoint`` with the adapted tensors of ``state``.

    The metadata is the base's plus ``adaptation``: ``base_sha256``, ``journal_position``
    (the ``adapt`` event's index), ``examples`` (corrected patches it learnt from),
    ``updates`` and ``options``; ``etmira predict --refiner`` and ``etmira annotate`` load it
    like any refiner.

    Raises
    ------
    InputError
        ``state`` was made for another checkpoint, or names tensors the base lacks.
    """
    if file_sha256(base_checkpoint) != state.base_sha256:
        raise InputError(
            base_checkpoint,
            f"the adapted state was made for the refiner {state.base_sha256[:12]}, not this one",
        )
    tensors, metadata = read_tensors(base_checkpoint)
    missing = sorted(set(state.tensors) - set(tensors))
    if missing:
        raise InputError(base_checkpoint, f"the refiner lacks the adapted tensors {missing}")
    for name, value in state.tensors.items():
        tensors[name] = torch.from_numpy(np.ascontiguousarray(value)).to(tensors[name].dtype)
    metadata["adaptation"] = {
        "base_sha256": state.base_sha256,
        "journal_position": int(position),
        "examples": int(examples),
        "updates": state.updates,
        "options": state.options,
    }
    write_tensors(path, tensors, metadata)
