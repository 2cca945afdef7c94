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

from dataclasses import asdict, dataclass

import segmentation_models_pytorch as smp
import torch

from refinement_model import views

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

ARCHITECTURES = {
    "unet": smp.Unet,
    "unetplusplus": smp.UnetPlusPlus,
    "fpn": smp.FPN,
    "linknet": smp.Linknet,
    "deeplabv3plus": smp.DeepLabV3Plus,
}
# Channel count of each input name (``views.network_input`` stacks them in the given order).
INPUT_CHANNELS = {name: len(channels) for name, channels in views.INPUT_CHANNELS.items()}
KINDS = ("base", "refiner")
# Base logits are divided by this and clipped to [-1, 1] before they enter the refiner.
LOGIT_SCALE = 10.0

DEFAULT_ENCODER = "tu-mobilenetv3_small_100"
DEFAULT_DECODER_CHANNELS = (64, 32, 24, 16, 8)
# Architectures whose constructor takes ``decoder_channels`` as a per-stage sequence.
_SEQUENCE_DECODERS = ("unet", "unetplusplus")


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a network (stored in every checkpoint).

    Parameters
    ----------
    kind : {"base", "refiner"}
    arch : str
        A key of :data:`ARCHITECTURES`.
    encoder : str
        A segmentation-models-pytorch encoder name (``"tu-..."`` for timm encoders).
    inputs : tuple of str
        Image channels, keys of :data:`INPUT_CHANNELS`, in order.
    decoder_channels : tuple of int
        Decoder widths per stage (U-Net family); length equals ``encoder_depth``.
    encoder_depth : int
    """

    kind: str = "base"
    arch: str = "unet"
    encoder: str = DEFAULT_ENCODER
    inputs: tuple[str, ...] = ("depth",)
    decoder_channels: tuple[int, ...] = DEFAULT_DECODER_CHANNELS
    encoder_depth: int = 5

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)}, got {self.arch!r}")
        inputs = tuple(self.inputs)
        if (
            not inputs
            or len(set(inputs)) != len(inputs)
            or any(name not in INPUT_CHANNELS for name in inputs)
        ):
            raise ValueError(
                f"inputs must be distinct names among {sorted(INPUT_CHANNELS)}, got {self.inputs!r}"
            )
        object.__setattr__(self, "inputs", inputs)
        decoder = tuple(int(c) for c in self.decoder_channels)
        if len(decoder) != self.encoder_depth or min(decoder) < 1:
            raise ValueError(
                f"decoder_channels must be {self.encoder_depth} positive widths "
                f"(one per encoder stage), got {self.decoder_channels!r}"
            )
        object.__setattr__(self, "decoder_channels", decoder)

    @property
    def image_channels(self) -> int:
        """Number of image channels (before the refiner's two extra channels)."""
        return sum(INPUT_CHANNELS[name] for name in self.inputs)

    @property
    def in_channels(self) -> int:
        """Number of channels the network takes."""
        return self.image_channels + (2 if self.kind == "refiner" else 0)

    def to_dict(self) -> dict:
        """JSON-friendly form; :meth:`from_dict` inverts it."""
        out = asdict(self)
        out["inputs"] = list(self.inputs)
        out["decoder_channels"] = list(self.decoder_channels)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ModelSpec:
        """Rebuild from :meth:`to_dict` output; unknown or missing keys raise ``ValueError``."""
        names = set(cls.__dataclass_fields__)
        if set(data) != names:
            raise ValueError(
                f"a model spec needs exactly the keys {sorted(names)}, got {sorted(data)}"
            )
        return cls(
            **{
                **data,
                "inputs": tuple(data["inputs"]),
                "decoder_channels": tuple(data["decoder_channels"]),
            }
        )


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
