"""What a network is, without PyTorch: the :class:`ModelSpec` a checkpoint stores, the channel
layout of the networks' inputs, and the refiner's input stacked in NumPy.

Torch-free, so that the app can run cached ONNX exports of the networks without importing
PyTorch (:mod:`refinement_model.nets` builds the networks themselves).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from refinement_model import views

__all__ = [
    "ARCHITECTURE_NAMES",
    "DEFAULT_DECODER_CHANNELS",
    "DEFAULT_ENCODER",
    "INPUT_CHANNELS",
    "KINDS",
    "LOGIT_SCALE",
    "ModelSpec",
    "stack_refiner_input",
]

# The segmentation-models-pytorch architectures a spec may name (``nets.ARCHITECTURES`` maps
# them to their classes).
ARCHITECTURE_NAMES = ("unet", "unetplusplus", "fpn", "linknet", "deeplabv3plus")

# Channel count of each input name (``views.network_input`` stacks them in the given order).
INPUT_CHANNELS = {name: len(channels) for name, channels in views.INPUT_CHANNELS.items()}
KINDS = ("base", "refiner")
# Base logits are divided by this and clipped to [-1, 1] before they enter the refiner.
LOGIT_SCALE = 10.0

DEFAULT_ENCODER = "tu-mobilenetv3_small_100"
DEFAULT_DECODER_CHANNELS = (64, 32, 24, 16, 8)


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a network (stored in every checkpoint).

    Parameters
    ----------
    kind : {"base", "refiner"}
    arch : str
        One of :data:`ARCHITECTURE_NAMES`.
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
        if self.arch not in ARCHITECTURE_NAMES:
            raise ValueError(f"arch must be one of {sorted(ARCHITECTURE_NAMES)}, got {self.arch!r}")
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


def stack_refiner_input(
    images: np.ndarray, base_logits: np.ndarray, strokes: np.ndarray
) -> np.ndarray:
    """The refiner's input channels stacked in NumPy, equal to
    :func:`refinement_model.nets.refiner_input` of the same arrays.

    Parameters
    ----------
    images : (B, C, S, S) float32 ndarray
        Normalised image channels.
    base_logits : (B, S, S) float32 ndarray
        Raw logits of the frozen base model (divided by :data:`LOGIT_SCALE` and clipped to
        [-1, 1] here).
    strokes : (B, S, S) float32 ndarray
        Stroke channel in {-1, 0, +1}.

    Returns
    -------
    (B, C + 2, S, S) float32 ndarray
        A new array.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"images must have shape (B, C, S, S), got {images.shape}")
    size = (images.shape[0], *images.shape[2:])
    planes = {"base_logits": base_logits, "strokes": strokes}
    for name, plane in planes.items():
        if np.shape(plane) != size:
            raise ValueError(f"{name} must have shape {size}, got {np.shape(plane)}")
    stacked = np.empty((size[0], images.shape[1] + 2, *size[1:]), np.float32)
    stacked[:, :-2] = images
    np.clip(
        np.asarray(base_logits, np.float32) / np.float32(LOGIT_SCALE), -1.0, 1.0, out=stacked[:, -2]
    )
    stacked[:, -1] = strokes
    return stacked
