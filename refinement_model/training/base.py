"""Training of the base segmenter (docs/method.md, "Initial segmentation").

Random augmented patches at network resolution; validation predicts every validation view
whole (patches, stitching, threshold 0.5) and scores it within the mirror area, so the selected
model is the one that is best at what ``etmira predict`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from refinement_model.blocks import NET_MULTIPLE
from refinement_model.checkpoints import load_checkpoint, save_checkpoint
from refinement_model.errors import CheckpointError
from refinement_model.fast_net import FastNet
from refinement_model.metrics import score_masks
from refinement_model.nets import ModelSpec, create_model
from refinement_model.patches import PatchGrid
from refinement_model.prediction import predict_image
from refinement_model.training.data import load_training_views, sample_patches
from refinement_model.training.distributed import DistContext
from refinement_model.training.loop import TrainConfig, resume_path, train_loop
from refinement_model.views import CHANNEL_STATS, INPUT_CHANNELS

__all__ = [
    "GridOptions",
    "check_crop",
    "checkpoint_metadata",
    "initial_model",
    "train_base",
    "validate_views",
]


@dataclass(frozen=True)
class GridOptions:
    """Patch geometry (docs/method.md, "Patches"); stored in every checkpoint."""

    patch_size: int = 512
    stride: int = 256
    net_size: int = 256

    @property
    def factor(self) -> float:
        return self.net_size / self.patch_size

    @classmethod
    def of_checkpoint(cls, metadata: dict) -> GridOptions:
        """The geometry a checkpoint's metadata records (defaults where it records none)."""
        return cls(
            **{name: int(metadata.get(name, default)) for name, default in cls().__dict__.items()}
        )

    def grid(self, height: int, width: int) -> PatchGrid:
        return PatchGrid(
            height, width, patch_size=self.patch_size, stride=self.stride, net_size=self.net_size
        )


def check_crop(crop, geometry: GridOptions) -> int:
    if crop is None:
        return geometry.net_size
    if (
        isinstance(crop, bool)
        or not isinstance(crop, int)
        or not NET_MULTIPLE <= crop <= geometry.net_size
        or crop % NET_MULTIPLE
    ):
        raise ValueError(
            f"crop must be a multiple of {NET_MULTIPLE} in [{NET_MULTIPLE}, "
            f"{geometry.net_size}], got {crop!r}"
        )
    return crop


def initial_model(spec: ModelSpec, init=None) -> tuple:
    """The network to train: random weights, or those of checkpoint ``init`` (fine-tuning).

    A refiner may also start from the base network it refines (the same architecture, encoder
    and decoder): it takes the base's encoder and decoder weights, the two extra input
    channels (base logits, strokes) start at zero weight and the output head stays zero, so it
    starts as the identity on the base logits with features that already know the lines.

    Parameters
    ----------
    spec : ModelSpec
    init : path, optional
        A checkpoint of exactly this network, or, for a refiner, of the matching base network.

    Returns
    -------
    model : torch.nn.Module
        Trainable (gradients enabled).
    facts : dict or None
        What the checkpoint metadata records of ``init`` (path, kind, step, command, and the
        same facts of its own init, so that a chain of runs stays on record), None without it.

    Raises
    ------
    CheckpointError
        ``init`` is unreadable or holds another network.
    """
    model = create_model(spec=spec)
    if init is None:
        return model, None
    source, metadata = load_checkpoint(init)
    if source.spec == spec:
        model.load_state_dict(source.state_dict())
    elif spec.kind == "refiner" and source.spec == replace(spec, kind="base"):
        _warm_start_from_base(model.net, source)
    else:
        raise CheckpointError(
            init, f"it holds another network ({source.spec}) than the one to train ({spec})"
        )
    return model, {
        "path": str(init),
        "kind": source.spec.kind,
        "step": metadata.get("validation", {}).get("step"),
        "command": metadata.get("training", {}).get("command"),
        "init": metadata.get("training", {}).get("init"),
    }


def _warm_start_from_base(refiner_net, base) -> None:
    """Copy a base network's encoder and decoder into a refiner's inner network, in place."""
    target = refiner_net.state_dict()
    with torch.no_grad():
        for name, tensor in base.state_dict().items():
            if name.startswith("segmentation_head."):
                continue  # kept at zero: the refiner starts as the identity on the base logits
            weights = target[name]
            if weights.shape == tensor.shape:
                weights.copy_(tensor)
            else:  # the first convolution: the base's image channels, zeros for the extra two
                weights.zero_()
                weights[:, : tensor.shape[1]].copy_(tensor)


def checkpoint_metadata(
    spec: ModelSpec,
    geometry: GridOptions,
    *,
    config: TrainConfig,
    data: dict,
    validation: dict,
    command: str | None,
) -> dict:
    """The facts every trained checkpoint records besides its spec."""
    channels = [c for name in spec.inputs for c in INPUT_CHANNELS[name]]
    return {
        "patch_size": geometry.patch_size,
        "stride": geometry.stride,
        "net_size": geometry.net_size,
        "channel_stats": {c: list(CHANNEL_STATS[c]) for c in channels},
        "training": {"config": config.to_dict(), "command": command, **data},
        "validation": validation,
    }


def validate_views(model, views, geometry: GridOptions, *, batch_size: int = 8) -> dict:
    """Mean scores of whole-view predictions (threshold 0.5) within the mirror areas.

    Parameters
    ----------
    model : torch.nn.Module or FastNet
        A base network.
    views : sequence of TrainingView
        At full resolution.

    Returns
    -------
    dict
        ``pfm``, ``iou``, ``precision``, ``recall``: means over the views; ``per_view``.
    """
    net = model if isinstance(model, FastNet) else FastNet(model, optimise=False)
    per_view, scores = {}, []
    for view in views:
        grid = geometry.grid(*view.ground_truth.shape)
        probs = predict_image(net, view.image, grid=grid, batch_size=batch_size)
        scores.append(score_masks(probs > 0.5, view.ground_truth, mask=view.mirror_mask))
        per_view[view.view_id] = {k: round(scores[-1][k], 4) for k in ("pfm", "iou")}
    means = {
        k: float(np.mean([s[k] for s in scores])) for k in ("pfm", "iou", "precision", "recall")
    }
    return {**means, "per_view": per_view}


def train_base(
    *,
    data,
    val,
    out,
    spec: ModelSpec,
    config: TrainConfig,
    geometry: GridOptions = GridOptions(),
    crop: int | None = None,
    data_seed: int | None = None,
    line_fraction: float = 0.8,
    command: str | None = None,
    resume: bool = False,
    init=None,
    ctx: DistContext | None = None,
) -> dict:
    """Train a base network and save the best one (by validation pFM) to ``out``.

    Parameters
    ----------
    data, val : sequence of paths
        Folders of annotated views for training and validation.
    out : path
        Checkpoint to write (``<out>.resume.safetensors`` holds the resumable state).
    spec : ModelSpec
        Of kind "base".
    config : TrainConfig
    geometry : GridOptions, optional
    crop : int, optional
        Side of the training crops in network pixels (default ``net_size``). The networks are
        fully convolutional: 128 px crops train about 10 times faster per step than 256 px on
        a CPU and still serve 256 px patches.
    data_seed : int, optional
        Seed the data were generated with (recorded only).
    line_fraction : float, optional
        Share of training patches centred on a line.
    command : str, optional
        The command line (recorded only).
    resume : bool, optional
    init : path, optional
        Start from this checkpoint's weights (see :func:`initial_model`).
    ctx : DistContext, optional

    Returns
    -------
    dict
        The best validation metrics.
    """
    if spec.kind != "base":
        raise ValueError(f"spec must be of kind 'base', got {spec.kind!r}")
    ctx = ctx or DistContext()
    crop = check_crop(crop, geometry)
    torch.manual_seed(config.seed)
    model, init_facts = initial_model(spec, init)
    train_views = load_training_views(data, inputs=spec.inputs, factor=geometry.factor)
    val_views = load_training_views(val, inputs=spec.inputs, factor=1) if ctx.is_main else []
    facts = {
        "data_seed": data_seed,
        "data": [str(p) for p in data],
        "val": [str(p) for p in val],
        "init": init_facts,
        "train_views": [v.view_id for v in train_views],
        "crop": crop,
    }

    def next_batch(rng):
        return sample_patches(
            train_views, config.batch_size, size=crop, rng=rng, line_fraction=line_fraction
        )

    def validate(net):
        metrics = validate_views(net, val_views, geometry)
        return metrics["pfm"], metrics

    def save_best(net, metrics):
        save_checkpoint(
            out,
            net,
            metadata=checkpoint_metadata(
                spec, geometry, config=config, data=facts, validation=metrics, command=command
            ),
        )

    return train_loop(
        model,
        next_batch=next_batch,
        validate=validate,
        save_best=save_best,
        config=config,
        ctx=ctx,
        resume_file=resume_path(out),
        resume=resume,
        desc="train base",
    )
