"""The two networks: the base segmenter and the refinement network.

Both are segmentation-models-pytorch models built by :func:`create_model` from a small,
JSON-friendly :class:`ModelSpec`, so that a checkpoint can rebuild exactly the network it was
saved from. Encoders never download pretrained weights (``encoder_weights=None``): the project
trains from scratch (docs/method.md) and must run without a network connection.

The refiner sees the base model's image channels, then the base logits scaled by
:data:`LOGIT_SCALE` and clipped to [-1, 1] (raw logits span tens of units and would dominate
the normalised image channels), then the stroke channel in {-1, 0, +1}. It is residual
(:class:`ResidualRefiner`): its output is a correction added to those base logits (clipped to
+-LOGIT_SCALE), starting at zero, so an untrained refiner reproduces the base prediction and
training only has to learn what a stroke changes (not in the paper: with the CPU budget of the
shipped weights, a plain refiner was still below the human-only pFM after 300 steps).
"""

from __future__ import annotations

import segmentation_models_pytorch as smp
import torch

from refinement_model.model_spec import (
    ARCHITECTURE_NAMES,
    DEFAULT_DECODER_CHANNELS,
    DEFAULT_ENCODER,
    INPUT_CHANNELS,
    KINDS,
    LOGIT_SCALE,
    ModelSpec,
)

__all__ = [
    "ARCHITECTURES",
    "INPUT_CHANNELS",
    "KINDS",
    "LOGIT_SCALE",
    "ModelSpec",
    "ResidualRefiner",
    "create_model",
    "refiner_input",
    "scale_base_logits",
]

ARCHITECTURES = dict(
    zip(
        ARCHITECTURE_NAMES,
        (smp.Unet, smp.UnetPlusPlus, smp.FPN, smp.Linknet, smp.DeepLabV3Plus),
        strict=True,
    )
)
# Architectures whose constructor takes ``decoder_channels`` as a per-stage sequence.
_SEQUENCE_DECODERS = ("unet", "unetplusplus")


def create_model(
    kind: str = "base",
    *,
    arch: str = "unet",
    encoder: str = DEFAULT_ENCODER,
    inputs=("depth",),
    decoder_channels=DEFAULT_DECODER_CHANNELS,
    encoder_depth: int = 5,
    spec: ModelSpec | None = None,
) -> torch.nn.Module:
    """Build a base or refinement network with random weights.

    Parameters
    ----------
    kind : {"base", "refiner"}
        The refiner takes two extra input channels (scaled base logits, strokes).
    arch, encoder, inputs, decoder_channels, encoder_depth
        See :class:`ModelSpec`.
    spec : ModelSpec, optional
        Use this spec instead of the other arguments.

    Returns
    -------
    model : torch.nn.Module
        Maps (B, in_channels, S, S) float32 to (B, 1, S, S) logits, S a multiple of
        ``2 ** encoder_depth``. Its spec is in ``model.spec``.

    Examples
    --------
    >>> net = create_model("refiner", decoder_channels=(16, 8, 8, 8, 8))
    >>> net.spec.in_channels
    3
    """
    if spec is None:
        spec = ModelSpec(
            kind=kind,
            arch=arch,
            encoder=encoder,
            inputs=tuple(inputs),
            decoder_channels=tuple(decoder_channels),
            encoder_depth=encoder_depth,
        )
    options = {}
    if spec.arch in _SEQUENCE_DECODERS:
        options["decoder_channels"] = spec.decoder_channels
    try:
        model = ARCHITECTURES[spec.arch](
            encoder_name=spec.encoder,
            encoder_weights=None,
            encoder_depth=spec.encoder_depth,
            in_channels=spec.in_channels,
            classes=1,
            **options,
        )
    except (KeyError, RuntimeError) as error:
        raise ValueError(f"encoder {spec.encoder!r} is not available: {error}") from None
    if spec.kind == "refiner":
        model = ResidualRefiner(model, spec.image_channels)
    model.spec = spec
    return model


class ResidualRefiner(torch.nn.Module):
    """A refiner that adds its output to the (clipped) base logits among its inputs.

    Parameters
    ----------
    net : torch.nn.Module
        A segmentation-models-pytorch network; its segmentation head is zeroed, so the
        refiner starts as the identity on the base logits.
    image_channels : int
        Index of the scaled base-logit channel in the input.
    """

    def __init__(self, net: torch.nn.Module, image_channels: int):
        super().__init__()
        self.net = net
        self.image_channels = image_channels
        for parameter in net.segmentation_head.parameters():
            torch.nn.init.zeros_(parameter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.image_channels
        return self.net(x) + LOGIT_SCALE * x[:, c : c + 1]


def scale_base_logits(logits: torch.Tensor) -> torch.Tensor:
    """Base logits as the refiner sees them: divided by :data:`LOGIT_SCALE`, clipped to [-1, 1]."""
    return torch.clamp(logits / LOGIT_SCALE, -1.0, 1.0)


def refiner_input(
    image: torch.Tensor, base_logits: torch.Tensor, strokes: torch.Tensor
) -> torch.Tensor:
    """Stack the refiner's input channels.

    Parameters
    ----------
    image : (B, C, S, S) float32 tensor
        Normalised image channels.
    base_logits : (B, S, S) or (B, 1, S, S) float32 tensor
        Raw logits of the frozen base model.
    strokes : (B, S, S) or (B, 1, S, S) float32 tensor
        Stroke channel in {-1, 0, +1}.

    Returns
    -------
    (B, C + 2, S, S) float32 tensor
    """
    if image.ndim != 4:
        raise ValueError(f"image must have shape (B, C, S, S), got {tuple(image.shape)}")
    planes = []
    for name, plane in (("base_logits", base_logits), ("strokes", strokes)):
        plane = plane.unsqueeze(1) if plane.ndim == 3 else plane
        if plane.shape != (image.shape[0], 1) + tuple(image.shape[2:]):
            raise ValueError(
                f"{name} must match the image's batch and spatial size "
                f"{(image.shape[0],) + tuple(image.shape[2:])}, "
                f"got {tuple(plane.shape)}"
            )
        planes.append(plane)
    return torch.cat([image, scale_base_logits(planes[0]), planes[1]], dim=1)
