"""Online adaptation of the refiner (refinement_model.adaptation) on a tiny refiner."""

import dataclasses
import gc
import weakref

import numpy as np
import pytest
import torch

from refinement_model import adaptation, backends, onnx_export
from refinement_model.adaptation import (
    AdaptationOptions,
    AdaptedState,
    CorrectedPatch,
    OnlineAdapter,
)
from refinement_model.backends import EQUALITY_TOLERANCE
from refinement_model.checkpoints import save_checkpoint
from refinement_model.errors import Cancelled, InputError
from refinement_model.nets import create_model
from refinement_model.patch_refiner import PatchRefiner
from refinement_model.refiner_options import RefinerOptions

N = 64
FOUR_TURNS = RefinerOptions(orientations=4, iterations=2)
FAST = dict(steps=60, learning_rate=2e-2, crop=N, batch_size=4, variants=1)


def _save_refiner(path, seed):
    torch.manual_seed(seed)
    model = create_model("refiner", decoder_channels=(8, 8, 8, 8, 8))
    save_checkpoint(path, model, metadata={"patch_size": 128, "stride": 64, "net_size": N})
    return path


@pytest.fixture(scope="module")
def refiner_path(tmp_path_factory):
    return _save_refiner(tmp_path_factory.mktemp("adapt") / "refiner.safetensors", 0)


@pytest.fixture
def refiner(refiner_path, one_torch_thread):
    return PatchRefiner(refiner_path, backend="eager")


def _line_patch(row: int, user_from: int = 10, user_to: int = 30) -> CorrectedPatch:
    """A bright line the start misses; the user drew part of it, the target is all of it."""
    image = np.zeros((1, N, N), np.float32)
    image[0, row : row + 3] = 3.0
    target = np.zeros((N, N), bool)
    target[row : row + 3] = True
    user = np.zeros((N, N), np.int8)
    user[row : row + 3, user_from:user_to] = 1
    return CorrectedPatch(
        image=image, start=np.full((N, N), -4.0, np.float32), target=target, user=user
    )


PATCHES = [_line_patch(row) for row in (8, 20, 32, 44)]


@pytest.mark.parametrize(
    "trained", [{}, dict(trainable="decoder", loss="dice", learning_rate=3e-3)]
)
def test_update_learns_the_corrections_and_propagates_them(refiner, trained):
    adapter = OnlineAdapter(refiner, AdaptationOptions(**{**FAST, **trained}))
    result = adapter.update(PATCHES)
    assert result.accepted and result.loss_after < 0.5 * result.loss_before
    assert adapter.state is result.state and result.state.updates == 1
    unseen = _line_patch(26)
    no_strokes = np.zeros((N, N), np.float32)
    before = refiner.refine(unseen.image, unseen.start, no_strokes) > 0
    after = adapter.refiner().refine(unseen.image, unseen.start, no_strokes) > 0
    # the adapted refiner finds the line on a patch it never saw, with no stroke on it
    assert not before[unseen.target].any()
    assert after[unseen.target].mean() > 0.5 and after[~unseen.target].mean() < 0.1


def test_the_update_counts_the_pixels_the_propagated_mask_gets_wrong(refiner):
    result = OnlineAdapter(refiner, AdaptationOptions(**FAST)).update(PATCHES)
    # one patch of four is held out; the start misses its whole line (3 rows of N pixels),
    # and the trained refiner finds most of it with no stroke
    assert result.errors_before == 3 * N
    assert result.accepted and result.errors_after < 0.5 * result.errors_before


def test_an_update_that_gets_more_pixels_wrong_is_rolled_back(refiner, monkeypatch):
    errors = iter([10.0, 11.0])
    monkeypatch.setattr(adaptation, "_propagated_errors", lambda *args: next(errors))
    adapter = OnlineAdapter(refiner, AdaptationOptions(**FAST))
    result = adapter.update(PATCHES)
    assert result.loss_after < result.loss_before and not result.accepted
    assert adapter.state is None and adapter.refiner() is refiner


def test_a_worse_update_is_rolled_back(refiner):
    adapter = OnlineAdapter(refiner, AdaptationOptions(**{**FAST, "learning_rate": 1e3}))
    result = adapter.update(PATCHES)
    assert not result.accepted and result.loss_after > result.loss_before
    assert adapter.state is None and adapter.refiner() is refiner


def test_the_base_refiner_is_never_modified(refiner):
    weights = {k: v.clone() for k, v in refiner.net.model.state_dict().items()}
    patch = PATCHES[0]
    refined = refiner.refine(patch.image, patch.start, patch.user.astype(np.float32))
    adapter = OnlineAdapter(refiner, AdaptationOptions(**FAST))
    assert adapter.update(PATCHES).accepted
    adapter.refiner()
    for name, value in refiner.net.model.state_dict().items():
        assert torch.equal(value, weights[name]), name
    assert np.array_equal(
        refiner.refine(patch.image, patch.start, patch.user.astype(np.float32)), refined
    )


def test_the_frozen_and_trained_parts_make_the_network(refiner):
    for trainable in ("last_block", "head", "decoder"):
        adapter = OnlineAdapter(refiner, AdaptationOptions(**{**FAST, "trainable": trainable}))
        model = adapter._model  # the adapter's copy; its head starts at zero, as trained
        torch.manual_seed(0)
        for parameter in model.net.segmentation_head.parameters():
            torch.nn.init.normal_(parameter)
        x = torch.randn(2, 3, N, N)
        with torch.no_grad():
            logits = adapter._trained_logits(adapter._part(x), (N, N)) + 10 * x[:, 1]
            assert torch.allclose(logits, model(x)[:, 0], atol=1e-4)


def test_a_training_window_with_context_sees_what_the_whole_patch_does(refiner):
    """A trained decoder on a window alone sees zeros past its edges; decoded with context
    around it, the window's logits are the whole patch's."""
    x = torch.randn(2, 3, N, N)
    window = (N // 2, 0, N // 2)  # y, x, side: the lower left quarter
    logits = {}
    for context in (0, N // 2):
        options = AdaptationOptions(**{**FAST, "trainable": "decoder", "context": context})
        adapter = OnlineAdapter(refiner, options)
        torch.manual_seed(0)
        for parameter in adapter._model.net.segmentation_head.parameters():
            torch.nn.init.normal_(parameter)
        with torch.no_grad():
            examples = {
                "features": adapter._part(x),
                "targets": torch.zeros(2, N, N),
                "residual": torch.zeros(2, N, N),
            }
            whole = adapter._trained_logits(examples["features"], (N, N))
            logits[context] = adapter._window_logits(examples, torch.arange(2), window)
    inside = whole[:, N // 2 :, : N // 2]
    assert torch.allclose(logits[N // 2], inside, atol=1e-5)
    assert not torch.allclose(logits[0], inside, atol=1e-2)


@pytest.mark.parametrize("trainable", ["last_block", "head", "decoder"])
def test_an_onnx_refiner_adapts_without_exporting_again_and_equals_its_eager_network(
    refiner, refiner_path, trainable, monkeypatch
):
    options = AdaptationOptions(**{**FAST, "trainable": trainable})
    adapter = OnlineAdapter(PatchRefiner(refiner_path, options=FOUR_TURNS), options)
    assert adapter.base.net.backend == "onnx"
    adapter.update(PATCHES[:3])
    adapter.refiner()  # the adapter exports its network once
    state = adapter.update(PATCHES).state
    # a later adapted refiner is that export with the trained weights put in
    for module in (onnx_export, backends, adaptation):
        monkeypatch.setattr(module, "export_onnx", _no_export)
    adapted = adapter.refiner()
    assert adapted.net.backend == "onnx" and adapted.options == FOUR_TURNS
    eager = OnlineAdapter(refiner, options)
    eager.load_state(state)
    reference = PatchRefiner(eager.refiner().net.model, options=FOUR_TURNS, optimise=False)
    patch = _line_patch(26)
    images = np.stack([patch.image, PATCHES[0].image])
    starts = np.stack([patch.start, PATCHES[0].start])
    strokes = np.stack([np.zeros((N, N), np.float32), PATCHES[0].user.astype(np.float32)])
    np.testing.assert_allclose(
        adapted.refine_batch(images, starts, strokes),
        reference.refine_batch(images, starts, strokes),
        atol=EQUALITY_TOLERANCE,
    )
    with pytest.raises(ValueError, match="no weight named"):
        onnx_export.with_weights(adapter._export, {"no.such.weight": np.zeros(1)})


def _no_export(*args, **kwargs):
    raise AssertionError("exported")


def test_same_patches_give_the_same_state_and_a_state_round_trips(refiner, refiner_path):
    adapter = OnlineAdapter(refiner, AdaptationOptions(**FAST))
    state = adapter.update(PATCHES).state
    again = (
        OnlineAdapter(PatchRefiner(refiner_path, backend="eager"), AdaptationOptions(**FAST))
        .update(PATCHES)
        .state
    )
    assert all(np.array_equal(state.tensors[k], again.tensors[k]) for k in state.tensors)
    data = state.to_bytes()
    assert len(data) < 20_000  # only the trained layers
    loaded = AdaptedState.from_bytes(data)
    assert loaded.base_sha256 == state.base_sha256 and loaded.updates == 1
    assert loaded.options == state.options
    fresh = OnlineAdapter(PatchRefiner(refiner_path, backend="eager"), AdaptationOptions(**FAST))
    fresh.load_state(loaded)
    patch = PATCHES[1]
    args = (patch.image, patch.start, np.zeros((N, N), np.float32))
    assert np.array_equal(fresh.refiner().refine(*args), adapter.refiner().refine(*args))


def test_a_state_of_another_refiner_is_rejected(refiner, tmp_path):
    state = OnlineAdapter(refiner, AdaptationOptions(**FAST)).update(PATCHES).state
    other = OnlineAdapter(
        PatchRefiner(_save_refiner(tmp_path / "other.safetensors", 1), backend="eager"),
        AdaptationOptions(**FAST),
    )
    with pytest.raises(InputError, match="made for the refiner"):
        other.load_state(state)
    with pytest.raises(InputError, match="made for the refiner"):
        other.refiner(state)
    with pytest.raises(InputError, match="bad.state: not an adapted refiner state"):
        AdaptedState.from_bytes(b"garbage", source="bad.state")


def test_cancel_raises_and_leaves_the_adapter_as_it_was(refiner):
    adapter = OnlineAdapter(refiner, AdaptationOptions(**FAST))
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 5

    with pytest.raises(Cancelled):
        adapter.update(PATCHES, cancel=cancel)
    assert adapter.state is None and adapter.refiner() is refiner


@pytest.mark.parametrize(
    "bad",
    [
        dict(trainable="encoder"),
        dict(steps=0),
        dict(crop=50),
        dict(context=16),
        dict(context=-32),
        dict(network_weight=1.5),
        dict(validation_fraction=1.0),
        dict(learning_rate=0),
        dict(variants=-1),
        dict(loss="focal"),
        dict(loss="dice", network_weight=0.5),
    ],
)
def test_bad_options_are_refused(bad):
    with pytest.raises(ValueError):
        AdaptationOptions(**bad)


def test_bad_patches_are_refused(refiner):
    patch = PATCHES[0]
    with pytest.raises(ValueError, match="target must agree with user"):
        CorrectedPatch(patch.image, patch.start, np.zeros((N, N), bool), patch.user)
    with pytest.raises(ValueError, match="start must be"):
        CorrectedPatch(patch.image, patch.start[:10], patch.target, patch.user)
    with pytest.raises(ValueError, match="at least two"):
        OnlineAdapter(refiner, AdaptationOptions(**FAST)).update(PATCHES[:1])


@pytest.mark.parametrize("meta", ['{"format": 1}', "[1]", '{"format": 1, "base_sha256": "a"}'])
def test_a_state_with_damaged_metadata_names_its_file(meta):
    from safetensors.numpy import save

    data = save({"w": np.zeros(2, np.float32)}, metadata={adaptation._METADATA_KEY: meta})
    with pytest.raises(InputError, match="adapted state") as info:
        AdaptedState.from_bytes(data, source="p.etmira")
    assert info.value.path == "p.etmira"


def test_the_adapted_refiner_is_the_one_of_the_state_asked_for(refiner):
    adapter = OnlineAdapter(refiner, AdaptationOptions(**FAST))
    state = adapter.update(PATCHES).state
    adapter.load_state(None)
    first = adapter.refiner(state)
    assert adapter.refiner(state) is first  # built once
    other = dataclasses.replace(state, tensors={k: v + 1 for k, v in state.tensors.items()})
    parameters = dict(adapter.refiner(other).net.model.named_parameters())
    for name, tensor in other.tensors.items():
        np.testing.assert_array_equal(parameters[name].detach().numpy(), tensor)
    # the built refiner's state stays alive with it: a freed state's id may name a new one
    kept = weakref.ref(other)
    del other
    gc.collect()
    assert kept() is not None


def test_a_refiner_built_while_an_update_trains_has_the_states_weights_and_no_gradients(
    refiner,
):
    adapter = OnlineAdapter(refiner, AdaptationOptions(**FAST))
    state = adapter.update(PATCHES).state
    # the adapter's own network as training leaves it between two steps
    for name, parameter in adapter._model.named_parameters():
        if name in state.tensors:
            parameter.data.fill_(7.0)
            parameter.requires_grad_(True)
    built = dict(adapter.refiner(state).net.model.named_parameters())
    base = dict(refiner.net.model.named_parameters())
    for name, parameter in built.items():
        expected = state.tensors[name] if name in state.tensors else base[name].detach().numpy()
        np.testing.assert_array_equal(parameter.detach().numpy(), expected)
        assert not parameter.requires_grad
