"""Tversky loss: the convention (alpha on false negatives, beta on false positives) on hand-computed cases."""

from __future__ import annotations

import pytest
import torch
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss

from panorama_pdac.labels import LESION, PARENCHYMA
from panorama_pdac.losses import TverskyLoss, cell_lesion_loss


def _two_class(fg_probability, fg_truth):
    """Probabilities (1, 2, 1, 1, n) for background / foreground and the label map (1, 1, 1, 1, n)."""
    fg = torch.tensor(fg_probability, dtype=torch.float32).view(1, 1, 1, 1, -1)
    truth = torch.tensor(fg_truth, dtype=torch.float32).view(1, 1, 1, 1, -1)
    return torch.cat([1 - fg, fg], 1), truth


def test_perfect_prediction_costs_nothing():
    truth = torch.randint(0, 7, (2, 1, 4, 5, 6))
    onehot = torch.zeros(2, 7, 4, 5, 6).scatter_(1, truth, 1)
    for do_bg in (True, False):
        for batch_dice in (True, False):
            loss = TverskyLoss(do_bg=do_bg, batch_dice=batch_dice, smooth=1e-5, ddp=False)
            assert loss(onehot, truth).item() == pytest.approx(0.0, abs=1e-6)


def test_hand_computed_value_and_false_positive_weighting():
    loss = TverskyLoss(do_bg=False, smooth=0.0, ddp=False, alpha=0.3, beta=0.7)
    # TP = 1, FN = 1, FP = 2:  TI = 1 / (1 + 0.3 * 1 + 0.7 * 2)
    assert loss(*_two_class([1, 0, 1, 1], [1, 1, 0, 0])).item() == pytest.approx(1 - 1 / 2.7)
    # one found voxel plus one error: a false positive costs more than a false negative
    false_negative = loss(*_two_class([1, 0, 0, 0], [1, 1, 0, 0])).item()
    false_positive = loss(*_two_class([1, 1, 0, 0], [1, 0, 0, 0])).item()
    assert false_negative == pytest.approx(1 - 1 / 1.3)
    assert false_positive == pytest.approx(1 - 1 / 1.7)
    assert false_positive > false_negative
    swapped = TverskyLoss(do_bg=False, smooth=0.0, ddp=False, alpha=0.7, beta=0.3)
    assert swapped(*_two_class([1, 0, 1, 1], [1, 1, 0, 0])).item() == pytest.approx(1 - 1 / (1 + 0.7 + 0.6))


def test_loss_mask_excludes_voxels():
    loss = TverskyLoss(do_bg=False, smooth=0.0, ddp=False)
    x, y = _two_class([1, 1, 1, 0], [1, 1, 0, 0])  # the false positive sits at voxel 2
    mask = torch.tensor([1, 1, 0, 1], dtype=torch.float32).view(1, 1, 1, 1, -1)
    assert loss(x, y, loss_mask=mask).item() == pytest.approx(0.0, abs=1e-7)


def test_slots_into_nnunets_compound_loss_and_trains():
    compound = DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False,
                               "alpha": 0.3, "beta": 0.7}, {}, weight_ce=0, weight_dice=1, dice_class=TverskyLoss)
    truth = torch.randint(0, 3, (2, 1, 4, 4, 4))
    confident = torch.zeros(2, 3, 4, 4, 4).scatter_(1, truth, 50.0)
    assert compound(confident, truth).item() == pytest.approx(0.0, abs=1e-5)
    logits = torch.zeros(2, 3, 4, 4, 4, requires_grad=True)
    value = compound(logits, truth)
    value.backward()
    assert 0 < value.item() < 1 and logits.grad.abs().sum() > 0


def test_cell_lesion_loss_tells_each_cell_whether_its_part_of_the_patch_holds_lesion():
    target = torch.full((1, 1, 4, 4, 4), PARENCHYMA)
    target[0, 0, 0, 0, 0] = LESION  # one voxel in the first cell of a 2x2x2 grid
    cells = torch.zeros(1, 2, 2, 2)
    cells[0, 0, 0, 0] = 1
    margins = torch.randn(1, 2, 2, 2)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(margins, cells)
    assert cell_lesion_loss(margins, target).item() == pytest.approx(expected.item())
    right = 10 * (2 * cells - 1)
    assert cell_lesion_loss(right, target) < 1e-3 < cell_lesion_loss(-right, target)
