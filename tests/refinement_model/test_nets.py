"""The network factory: both kinds run forward and backward on a tiny input."""

import numpy as np
import pytest
import torch

from refinement_model.model_spec import ARCHITECTURE_NAMES, stack_refiner_input
from refinement_model.nets import (
    ARCHITECTURES,
    LOGIT_SCALE,
    ModelSpec,
    create_model,
    refiner_input,
    scale_base_logits,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"decoder_channels": (8, 8, 8, 8, 8)}


@pytest.mark.parametrize(
    "kind, inputs, channels",
    [("base", ("depth",), 1), ("refiner", ("depth",), 3), ("base", ("depth", "normals"), 4)],
)
def test_forward_backward(kind, inputs, channels):
    torch.manual_seed(0)
    model = create_model(kind, inputs=inputs, **TINY)
    assert model.spec.in_channels == channels
    x = torch.randn(2, channels, 64, 64, requires_grad=True)
    out = model(x)
    assert out.shape == (2, 1, 64, 64) and out.dtype == torch.float32
    out.mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)
    assert float(x.grad.abs().sum()) > 0


def test_unknown_names_list_valid_ones():
    with pytest.raises(ValueError, match="unet"):
        create_model(arch="transformer9000")
    with pytest.raises(ValueError, match="depth"):
        create_model(inputs=("colour",))
    with pytest.raises(ValueError, match="kind"):
        create_model("critic")
    with pytest.raises(ValueError, match="encoder"):
        create_model(encoder="no-such-encoder", **TINY)
    with pytest.raises(ValueError, match="decoder_channels"):
        create_model(decoder_channels=(8, 8))


def test_spec_round_trip():
    spec = ModelSpec(kind="refiner", inputs=("albedo", "depth"), decoder_channels=(9, 8, 7, 6, 5))
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="keys"):
        ModelSpec.from_dict({**spec.to_dict(), "extra": 1})


def test_refiner_input_scales_and_clips_logits():
    image = torch.zeros(1, 1, 2, 2)
    logits = torch.tensor([[[-100.0, -5.0], [0.0, 50.0]]])
    strokes = torch.tensor([[[1.0, 0.0], [-1.0, 0.0]]])
    stacked = refiner_input(image, logits, strokes)
    assert stacked.shape == (1, 3, 2, 2)
    assert stacked[0, 1].tolist() == [[-1.0, -5.0 / LOGIT_SCALE], [0.0, 1.0]]
    assert torch.equal(stacked[0, 2], strokes[0])
    assert torch.equal(scale_base_logits(logits), stacked[:, 1])
    with pytest.raises(ValueError, match="strokes"):
        refiner_input(image, logits, torch.zeros(1, 3, 3))


def test_the_numpy_refiner_input_equals_the_torch_one():
    rng = np.random.default_rng(1)
    image = rng.normal(size=(3, 2, 8, 8)).astype(np.float32)
    logits = (20 * rng.normal(size=(3, 8, 8))).astype(np.float32)
    strokes = rng.choice([-1.0, 0.0, 1.0], size=(3, 8, 8)).astype(np.float32)
    expected = refiner_input(*map(torch.from_numpy, (image, logits, strokes))).numpy()
    stacked = stack_refiner_input(image, logits, strokes)
    assert stacked.dtype == np.float32 and np.array_equal(stacked, expected)
    with pytest.raises(ValueError, match="strokes"):
        stack_refiner_input(image, logits, strokes[:, :4])
    assert tuple(ARCHITECTURES) == ARCHITECTURE_NAMES


def test_untrained_refiner_reproduces_clipped_base_logits():
    torch.manual_seed(0)
    refiner = create_model("refiner", **TINY).eval()
    image = torch.randn(1, 1, 64, 64)
    logits = 20 * torch.randn(1, 64, 64)
    strokes = torch.zeros(1, 64, 64)
    strokes[:, 10:20, 10:20] = 1
    with torch.no_grad():
        out = refiner(refiner_input(image, logits, strokes))[:, 0]
    assert torch.allclose(out, logits.clamp(-LOGIT_SCALE, LOGIT_SCALE), atol=1e-5)
