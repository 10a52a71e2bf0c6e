"""Losses of our own: the Tversky loss for nnU-Net's compound loss (`DC_and_CE_loss(..., dice_class=TverskyLoss)`)
and the per-cell lesion loss of the classification head (`cell_lesion_loss`).

Convention used throughout this project:

    TI = TP / (TP + alpha * FN + beta * FP)

alpha weighs false negatives, beta false positives. METHOD.md's alpha = 0.3, beta = 0.7 therefore penalise
false positives more than missed lesion voxels. (Salehi et al. write alpha on FP and beta on FN; under that
wording the same numbers would favour recall. Swap the two config values to get that behaviour.)
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from nnunetv2.utilities.ddp_allgather import AllGatherGrad
from torch import nn

from .labels import LESION


class TverskyLoss(nn.Module):
    """1 - mean Tversky index over classes (0 for a perfect prediction).

    Constructor and `forward(x, y, loss_mask)` follow nnU-Net's MemoryEfficientSoftDiceLoss, plus `alpha`
    (false-negative weight) and `beta` (false-positive weight); soft TP/FP/FN come from the same sums.
    """

    def __init__(self, apply_nonlin: Callable | None = None, batch_dice: bool = False, do_bg: bool = True,
                 smooth: float = 1.0, ddp: bool = True, alpha: float = 0.3, beta: float = 0.7):
        super().__init__()
        self.apply_nonlin = apply_nonlin
        self.batch_dice = batch_dice
        self.do_bg = do_bg
        self.smooth = smooth
        self.ddp = ddp
        self.alpha = alpha
        self.beta = beta

    def forward(self, x: torch.Tensor, y: torch.Tensor, loss_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.apply_nonlin is not None:
            x = self.apply_nonlin(x)
        axes = tuple(range(2, x.ndim))
        with torch.no_grad():
            if x.ndim != y.ndim:
                y = y.view((y.shape[0], 1, *y.shape[1:]))
            if x.shape == y.shape:  # already one-hot
                y_onehot = y.to(torch.float32)
            else:
                y_onehot = torch.zeros(x.shape, device=x.device, dtype=torch.float32)
                y_onehot.scatter_(1, y.long(), 1)
            if loss_mask is not None:
                y_onehot = y_onehot * loss_mask
            sum_gt = y_onehot.sum(axes, dtype=torch.float32)
        if loss_mask is not None:
            x = x * loss_mask
        tp = (x * y_onehot).sum(axes, dtype=torch.float32)
        sum_pred = x.sum(axes, dtype=torch.float32)

        if self.batch_dice:
            if self.ddp:
                tp, sum_pred, sum_gt = (AllGatherGrad.apply(t).sum(0, dtype=torch.float32)
                                        for t in (tp, sum_pred, sum_gt))
            tp, sum_pred, sum_gt = tp.sum(0), sum_pred.sum(0), sum_gt.sum(0)
        fn = sum_gt - tp
        fp = sum_pred - tp
        tversky = (tp + self.smooth) / (tp + self.alpha * fn + self.beta * fp + self.smooth).clamp_min(1e-8)
        if not self.do_bg:
            tversky = tversky[1:] if self.batch_dice else tversky[:, 1:]
        return 1 - tversky.mean()


def cell_lesion_loss(margins: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the head's per-cell PDAC margins (batch, *cell grid) against whether each cell's
    part of the patch holds lesion voxels; `target` is the patch's label map (batch, 1, *patch), of which the
    cell grid is a whole-number reduction (the encoder's strides)."""
    cells = F.adaptive_max_pool3d((target == LESION).float(), margins.shape[1:])[:, 0]
    return F.binary_cross_entropy_with_logits(margins.float(), cells)
