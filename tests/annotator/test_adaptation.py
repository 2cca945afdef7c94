"""Online adaptation in the session (annotator.core.adaptation) on a tiny refiner."""

import dataclasses

import numpy as np
import pytest
import torch

from annotator.cli import main
from annotator.core.adaptation import (
    PropagationJob,
    SessionAdaptation,
    UpdateJob,
    export_adapted_refiner,
    prepare_adapter,
    state_key,
    state_writer,
    stored_adapted_refiner,
    stored_states,
)
from annotator.core.project import create_project, file_record, open_project
from annotator.core.project_store import ProjectStore
from annotator.core.regions import propagated_patches
from annotator.core.session import AnnotationSession
from refinement_model.adaptation import AdaptationOptions, OnlineAdapter
from refinement_model.checkpoints import load_checkpoint, read_metadata, save_checkpoint
from refinement_model.errors import Cancelled, InputError
from refinement_model.nets import create_model
from refinement_model.patch_refiner import PatchRefiner
from refinement_model.patches import PatchGrid
from refinement_model.strokes import Stroke
from tests.annotator.session_fixtures import small_base, small_view
from tests.refinement_model.conftest import one_torch_thread  # noqa: F401 (a fixture)

FAST = AdaptationOptions(steps=4, crop=32, batch_size=4, variants=0, max_examples=8)
# nine 32-px patches, so that strokes leave some untouched
GRID = PatchGrid(96, 96, patch_size=32, stride=32, net_size=32)
# on the right half of the lines, which the base logits miss, and an erasure: patches 1, 3-5
STROKES = [
    Stroke("add", [(52.0, 31.0), (60.0, 31.0)], 1.0),
    Stroke("add", [(70.0, 61.0), (86.0, 61.0)], 1.0),
    Stroke("erase", [(20.0, 45.0), (26.0, 45.0)], 1.0),
]


@pytest.fixture(scope="module")
def refiner_path(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("refiner", decoder_channels=(8, 8, 8, 8, 8))
    path = tmp_path_factory.mktemp("adapt_app") / "refiner.safetensors"
    save_checkpoint(path, model, metadata={"patch_size": 64, "stride": 32, "net_size": 32})
    return path


@pytest.fixture
def refiner(refiner_path, one_torch_thread):
    return PatchRefiner(refiner_path, backend="eager")


def _view():
    return dataclasses.replace(small_view(), files=None)


def _session(refiner, **options):
    view = _view()
    return AnnotationSession(view, small_base(view), refiner, grid=GRID, **options)


def _adaptation(session, **options):
    return SessionAdaptation(
        session, OnlineAdapter(session.refiner, FAST), every=3, chunk=4, **options
    )


def _draw(session):
    for stroke in STROKES:
        session.apply_stroke(stroke)


def _accepted(outcome):
    """The outcome as if validation had improved (the tiny refiner's figures are noise)."""
    job, result, refiner = outcome
    if result.accepted:
        return outcome
    return (
        job,
        dataclasses.replace(result, accepted=True),
        job.adaptation.adapter.refiner(result.state),
    )


def _update(adaptation):
    job = adaptation.next_job()
    assert isinstance(job, UpdateJob)
    return adaptation.apply(_accepted(job.run()))


def _propagate_all(adaptation):
    while isinstance(job := adaptation.next_job(), PropagationJob):
        adaptation.apply(job.run())


def _propagated(session):
    journal = session.journal
    return {p for p, (v, _) in session.patch_deltas().items() if journal[v]["type"] == "propagate"}


def test_snapshot_holds_the_corrected_patches_at_network_size(refiner):
    session = _session(refiner)
    adaptation = _adaptation(session)
    session.apply_stroke(STROKES[0])
    assert adaptation.next_job() is None  # not due before `every` strokes
    _draw(session)
    job = adaptation.next_job()
    assert isinstance(job, UpdateJob) and job.top == session.stroke_events[-1]
    assert job.position == len(session.journal) and job.base is None
    touched = set()
    for stroke in session.strokes:
        touched |= set(session.grid.patches_touching(*map(int, stroke.bounds())).tolist())
    assert len(job.patches) == min(len(touched), FAST.max_examples)
    for patch in job.patches:
        assert patch.image.shape == (1, 32, 32) and patch.user.any()
        assert (patch.target[patch.user > 0]).all() and not patch.target[patch.user < 0].any()


def test_an_update_applies_only_while_its_strokes_are_in_effect(refiner):
    session = _session(refiner)
    adaptation = _adaptation(session)
    _draw(session)
    outcome = _accepted(adaptation.next_job().run())
    session.undo()  # the snapshot's latest stroke is gone: the result is outdated
    before = session.journal
    assert adaptation.apply(outcome) == [] and adaptation.outdated == 1
    assert session.journal == before and session.adapted_update is None


def test_a_rejected_update_changes_nothing(refiner):
    session = _session(refiner)
    adaptation = _adaptation(session)
    _draw(session)
    job, result, _ = adaptation.next_job().run()
    mask, journal = session.mask.copy(), session.journal
    rejected = dataclasses.replace(result, accepted=False)
    assert adaptation.apply((job, rejected, None)) == [] and adaptation.rejected == 1
    assert session.journal == journal and np.array_equal(session.mask, mask)
    assert session.adapted_update is None and adaptation.states == {}


def test_an_accepted_update_propagates_to_untouched_patches_worst_first(refiner):
    session = _session(refiner)
    stored = {}
    adaptation = _adaptation(session, store_state=stored.__setitem__)
    _draw(session)
    scores = session.queue.scores.copy()
    [change] = _update(adaptation)
    update = len(session.journal) - 1
    assert change.event["type"] == "adapt" and session.adapted_update == update
    assert set(stored) == {update} and adaptation.examples == change.event["examples"]
    job = adaptation.next_job()
    assert isinstance(job, PropagationJob) and len(job.patches) == 4
    assert list(scores[list(job.patches)]) == sorted(scores[list(job.patches)], reverse=True)
    seen = []
    session.add_listener(seen.append)
    _propagate_all(adaptation)
    queue = session.queue
    expected = set(np.flatnonzero(queue.eligible & (queue.stroke_counts == 0)).tolist())
    assert _propagated(session) == expected and seen and seen[0].region is not None
    # a stroke now records the adapted refiner that refined it
    session.apply_stroke(Stroke("add", [(10.0, 80.0), (20.0, 80.0)], 2.0))
    assert session.journal[-1]["adapted"] == update
    # replaying without stored changes recomputes every version with its own refiner
    again = AnnotationSession.replay(
        session.view,
        session.base_logits,
        refiner,
        session.journal,
        grid=GRID,
        adapted_refiners=lambda u: adaptation.adapter.refiner(adaptation.states[u]),
    )
    assert np.array_equal(again.mask, session.mask)
    # one patch at a time instead of in batches: a network's last bits may differ
    np.testing.assert_allclose(again.probabilities, session.probabilities, atol=1e-3)


def test_propagation_is_dropped_when_outdated_and_skips_patches_stroked_meanwhile(refiner):
    session = _session(refiner)
    adaptation = _adaptation(session)
    _draw(session)
    _update(adaptation)
    job = adaptation.next_job()
    first = job.patches[0]
    y0, x0, y1, x1 = session.grid.region(first)
    outcome = job.run()
    session.apply_stroke(Stroke("add", [(x0 + 4.0, y0 + 4.0), (x0 + 8.0, y0 + 4.0)], 1.0))
    [change] = adaptation.apply(outcome)
    assert first not in change.patches and set(change.patches) < set(job.patches)
    # undoing past the update makes its propagation outdated
    outcome = adaptation.next_job().run()
    while session.stroke_events and session.journal[-1]["type"] != "adapt":
        session.undo()
        if adaptation.valid_update() is None:
            break
    adaptation.sync()
    assert adaptation.apply(outcome) == [] and adaptation.outdated == 1


def test_undo_past_an_update_reverts_to_the_earlier_weights_and_redo_restores_them(refiner):
    session = _session(refiner)
    adaptation = _adaptation(session)
    _draw(session)
    before = session.mask.copy()
    _update(adaptation)
    update = session.adapted_update
    _propagate_all(adaptation)
    assert _propagated(session)
    session.undo()
    adaptation.sync()
    assert session.adapted_update is None and adaptation.valid_update() is None
    assert not _propagated(session)
    session.redo()
    assert np.array_equal(session.mask, before)  # propagated patches back to the base
    adaptation.sync()
    assert session.adapted_update == update
    _propagate_all(adaptation)
    assert _propagated(session)


def _adapted_project(refiner, refiner_path, folder):
    """A project ``folder/p.etmira`` whose strokes made an update that propagated, its states
    stored; returns it, its adaptation, its view and its path."""
    view, path = _view(), folder / "p.etmira"
    models = {"refiner": {**file_record(refiner_path), "metadata": read_metadata(refiner_path)}}
    project = create_project(path, view, small_base(view), refine=refiner, grid=GRID, models=models)
    adaptation = _adaptation(project.session, store_state=state_writer(project))
    _draw(project.session)
    _update(adaptation)
    _propagate_all(adaptation)
    return project, adaptation, view, path


def test_reopening_gives_the_same_masks_and_weights_and_exports_the_refiner(
    refiner, refiner_path, tmp_path
):
    project, adaptation, view, path = _adapted_project(refiner, refiner_path, tmp_path)
    session = project.session
    mask, update = session.mask.copy(), session.adapted_update
    weights = adaptation.states[update].tensors
    project.close()

    with open_project(path, view=view, refine=PatchRefiner(refiner_path, backend="eager")) as again:
        states = stored_states(again.store)
        reopened = _adaptation(again.session, states=states)
        assert np.array_equal(again.session.mask, mask)
        assert again.session.adapted_update == update
        for name, tensor in weights.items():
            np.testing.assert_array_equal(states[update].tensors[name], tensor)
        assert reopened.next_job() is None  # everything propagated already

    out = tmp_path / "adapted.safetensors"
    assert main(["project", "export", str(path), "--refiner", str(out)]) == 0
    model, metadata = load_checkpoint(out, kind="refiner")
    PatchRefiner(out, backend="eager")  # as etmira annotate and predict load a refiner
    assert metadata["adaptation"]["journal_position"] == update
    assert metadata["adaptation"]["examples"] == reopened.examples > 0
    parameters = dict(model.named_parameters())
    for name, tensor in weights.items():
        np.testing.assert_array_equal(parameters[name].detach().numpy(), tensor)


def test_a_reopened_project_recomputes_changes_it_lacks_with_the_stored_adapted_weights(
    refiner, refiner_path, tmp_path
):
    project, adaptation, view, path = _adapted_project(refiner, refiner_path, tmp_path)
    session = project.session
    # a stroke refined by the adapted refiner, whose change is then lost with the others
    session.apply_stroke(Stroke("add", [(10.0, 80.0), (20.0, 80.0)], 2.0))
    assert session.journal[-1]["adapted"] == session.adapted_update
    mask, probabilities = session.mask.copy(), session.probabilities.copy()
    project.close()
    with ProjectStore.open(path) as store:
        store.commit(blobs=dict.fromkeys(store.blobs("delta/"), None))

    with open_project(path, view=view, refine=PatchRefiner(refiner_path, backend="eager")) as again:
        assert np.array_equal(again.session.mask, mask)
        np.testing.assert_allclose(again.session.probabilities, probabilities, atol=1e-3)
    with (
        pytest.raises(ValueError, match="holds no adapted weights"),
        ProjectStore.open(path) as store,
    ):
        stored_adapted_refiner(store, refiner, 1)


def test_export_refuses_a_state_of_another_refiner(refiner, refiner_path, tmp_path):
    session = _session(refiner)
    adaptation = _adaptation(session)
    _draw(session)
    _update(adaptation)
    other = tmp_path / "other.safetensors"
    torch.manual_seed(1)
    save_checkpoint(other, create_model("refiner", decoder_channels=(8, 8, 8, 8, 8)))
    with pytest.raises(InputError, match="made for the refiner"):
        export_adapted_refiner(
            tmp_path / "x.safetensors",
            other,
            adaptation.states[session.adapted_update],
            position=0,
            examples=1,
        )


def test_a_result_arriving_during_a_proposal_waits_for_it(refiner):
    session = _session(refiner)
    adaptation = _adaptation(session)
    _draw(session)
    outcome = _accepted(adaptation.next_job().run())
    session.propose_stroke(Stroke("add", [(10.0, 80.0), (20.0, 80.0)], 1.0))
    assert adaptation.apply(outcome) == [] and adaptation.next_job() is None
    session.accept()
    [change] = adaptation.resume()
    assert change.event["type"] == "adapt" and session.adapted_update is not None


def test_propagating_unchanged_weights_changes_no_patch(refiner):
    session = _session(refiner)
    adaptation = _adaptation(session)
    _draw(session)
    state = adaptation.next_job().run()[1].state
    shipped = dict(refiner.net.model.named_parameters())
    unchanged = dataclasses.replace(
        state, tensors={name: shipped[name].detach().numpy().copy() for name in state.tensors}
    )
    deltas = session.propagation_job([0, 2, 6], adaptation.adapter.refiner(unchanged))()
    assert sorted(deltas) == [0, 2, 6] and not any(d.any() for d in deltas.values())


def test_an_undo_while_a_propagation_runs_drops_it_and_new_strokes_use_the_shipped_refiner(
    refiner,
):
    session = _session(refiner)
    adaptation = _adaptation(session)
    _draw(session)
    _update(adaptation)
    job = adaptation.next_job()
    assert isinstance(job, PropagationJob)
    session.undo()  # while the job runs on the worker
    adaptation.sync()  # what the app does then, while the job still runs
    assert session.adapted_update is None
    session.apply_stroke(Stroke("add", [(10.0, 80.0), (20.0, 80.0)], 1.0))
    assert session.journal[-1].get("adapted") is None
    before = len(session.journal)
    assert adaptation.apply(job.run()) == [] and adaptation.outdated == 1
    assert len(session.journal) == before


def test_a_state_stored_without_its_event_is_left_out_on_reopening_and_export(
    refiner, refiner_path, tmp_path
):
    project, adaptation, view, path = _adapted_project(refiner, refiner_path, tmp_path)
    session = project.session
    update = session.adapted_update
    # a crash between writing an update's state and journalling its event
    orphan = len(session.journal)
    project.store.commit(blobs={state_key(orphan): adaptation.states[update].to_bytes()})
    project.close()
    with open_project(path, view=view, refine=PatchRefiner(refiner_path, backend="eager")) as again:
        reopened = _adaptation(again.session, states=stored_states(again.store))
        assert set(reopened.states) == {update} and reopened.valid_update() == update
        again.session.apply_stroke(Stroke("add", [(10.0, 80.0), (20.0, 80.0)], 1.0))
        assert again.session.journal[orphan]["type"] == "stroke"
        assert reopened.valid_update() == update
    out = tmp_path / "adapted.safetensors"
    assert main(["project", "export", str(path), "--refiner", str(out)]) == 0
    assert read_metadata(out)["adaptation"]["journal_position"] == update


def test_preparing_builds_the_refiner_of_the_update_in_effect(
    refiner, refiner_path, tmp_path, monkeypatch
):
    project, adaptation, view, path = _adapted_project(refiner, refiner_path, tmp_path)
    session = project.session
    update = session.adapted_update
    newer = len(session.journal)  # a state without its event, as after a crash
    state = adaptation.states[update]
    blobs = {state_key(update): state.to_bytes(), state_key(newer): state.to_bytes()}
    adapter, states = prepare_adapter(
        PatchRefiner(refiner_path, backend="eager"),
        blobs,
        source=path,
        journal=session.journal,
        stroke_events=session.stroke_events,
    )
    builds = []
    monkeypatch.setattr(adapter, "_adapted_refiner", lambda *args: builds.append(args))
    adapter.refiner(states[update])
    assert builds == []  # built on the worker already
    project.close()


def test_a_state_of_another_refiner_names_the_project_file(refiner):
    session = _session(refiner)
    adaptation = _adaptation(session)
    _draw(session)
    _update(adaptation)
    state = adaptation.states[session.adapted_update]
    foreign = dataclasses.replace(state, base_sha256="0" * 64)
    with pytest.raises(InputError, match="made for the refiner") as info:
        prepare_adapter(refiner, {state_key(7): foreign.to_bytes()}, source="/x/p.etmira")
    assert info.value.path == "/x/p.etmira"


def test_a_propagation_runs_in_batches_and_is_cancelled_between_them():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(1, 96, 96)).astype(np.float32)
    base = rng.normal(size=(96, 96)).astype(np.float32)
    calls = []

    def frozen(images, bases, channels):
        calls.append(len(images))
        return bases

    def adapted(images, bases, channels):
        return bases - images[:, 0]  # decides otherwise at some pixels

    whole = propagated_patches(GRID, adapted, frozen, image, base, range(9), batch=9)
    assert calls == [9] and sorted(whole) == list(range(9))
    assert any(delta.any() for delta in whole.values())
    calls.clear()
    batched = propagated_patches(GRID, adapted, frozen, image, base, range(9), batch=4)
    assert calls == [4, 4, 1]
    for index, delta in whole.items():
        np.testing.assert_array_equal(batched[index], delta)
    calls.clear()
    checks = iter([False, True])
    with pytest.raises(Cancelled):
        propagated_patches(
            GRID, adapted, frozen, image, base, range(9), batch=4, cancel=lambda: next(checks)
        )
    assert calls == [4]  # the second batch never ran
