"""Training losses: Dice with an optional Focal term (docs/method.md, "Initial segmentation"), and
the same plus a distillation term towards a teacher's probabilities."""

from __future__ import annotations

import torch
from segmentation_models_pytorch.losses import DiceLoss, FocalLoss

__all__ = ["DistillationLoss", "SegmentationLoss"]


class SegmentationLoss(torch.nn.Module):
    """Binary Dice loss over the batch plus ``focal_weight`` times the Focal loss.

    Parameters
    ----------
    focal_weight : float, optional
        0 gives plain Dice (the paper); a related study of thin cracks found Dice + Focal
        better on the thin class.

    Call with logits (B, 1, S, S) or (B, S, S) and targets of the same shape (0/1 floats).
    """

    def __init__(self, *, focal_weight: float = 0.0):
        super().__init__()
        if not focal_weight >= 0:
            raise ValueError(f"focal_weight must be >= 0, got {focal_weight!r}")
        self.focal_weight = float(focal_weight)
        self.dice = DiceLoss("binary", from_logits=True)
        self.focal = FocalLoss("binary")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.reshape(logits.shape[0], 1, *logits.shape[-2:])
        target = target.reshape(logits.shape).to(logits.dtype)
        loss = self.dice(logits, target)
        if self.focal_weight:
            loss = loss + self.focal_weight * self.focal(logits, target)
        return loss


class DistillationLoss(torch.nn.Module):
    """:class:`SegmentationLoss` against the ground truth plus ``distill_weight`` times the
    binary cross-entropy against a teacher's probabilities (Hinton et al. 2015, temperature 1).

    Distilling a network's test-time ensemble (orientations averaged, refined again) into one
    pass of the same network keeps most of the ensemble's gain at the cost of one pass.

    Parameters
    ----------
    distill_weight : float
        > 0.
    focal_weight : float, optional
        As in :class:`SegmentationLoss`.

    Call with logits (B, S, S) or (B, 1, S, S) and targets (B, 2, S, S): the ground truth
    (0/1 floats), then the teacher's probabilities.
    """

    def __init__(self, *, distill_weight: float, focal_weight: float = 0.0):
        super().__init__()
        if not distill_weight > 0:
            raise ValueError(f"distill_weight must be > 0, got {distill_weight!r}")
        self.distill_weight = float(distill_weight)
        self.segmentation = SegmentationLoss(focal_weight=focal_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.ndim != 4 or target.shape[1] != 2:
            raise ValueError(
                f"target must have shape (B, 2, S, S) (truth, teacher), got {tuple(target.shape)}"
            )
        logits = logits.reshape(target[:, 0].shape)
        teacher = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, target[:, 1].to(logits.dtype)
        )
        return self.segmentation(logits, target[:, 0]) + self.distill_weight * teacher
