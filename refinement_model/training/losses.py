"""Segmentation loss: Dice with an optional Focal term (docs/method.md, "Initial segmentation")."""

from __future__ import annotations

import torch
from segmentation_models_pytorch.losses import DiceLoss, FocalLoss

__all__ = ["SegmentationLoss"]


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
