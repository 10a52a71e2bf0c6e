"""Localisation QA numbers on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from panorama_pdac.geometry import Roi, roi_from_mask, whole_image_roi
from panorama_pdac.localisation_qa import (
    case_qa_row,
    dice,
    roi_lesion_recall,
    roi_size_mm,
)


def _label(arr_zyx: np.ndarray, spacing_xyz=(1.0, 1.0, 2.0)) -> sitk.Image:
    img = sitk.GetImageFromArray(arr_zyx)
    img.SetSpacing(spacing_xyz)
    return img


def _roi(start_xyz, size_xyz) -> Roi:
    return Roi(tuple(start_xyz), tuple(size_xyz), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))


def test_dice_hand_computed():
    a = np.zeros((2, 3, 4), dtype=np.uint8)
    b = np.zeros_like(a)
    a[0, 0, :4] = 1  # 4 voxels
    b[0, 0, 2:4] = 1  # 2 voxels, both shared
    assert dice(a, b) == pytest.approx(2 * 2 / 6)
    b[1, 2, 3] = 5  # any non-zero value counts as foreground: 3 voxels, 2 shared
    assert dice(a, b) == pytest.approx(4 / 7)
    assert dice(_label(a), _label(b)) == pytest.approx(4 / 7)
    assert dice(np.zeros_like(a), np.zeros_like(a)) == 1.0
    assert dice(a, np.zeros_like(a)) == 0.0
    with pytest.raises(ValueError, match="shape"):
        dice(a, a[0])


def test_roi_lesion_recall_counts_lesion_voxels_inside_the_box():
    arr = np.zeros((4, 6, 10), dtype=np.float64)  # float64, as most real PANORAMA labels are
    arr[1, 2, 0:10] = 1  # 10 lesion voxels along x
    arr[2, 2, 0:10] = 4  # parenchyma does not count
    label = _label(arr)
    assert roi_lesion_recall(label, _roi((0, 0, 0), (4, 6, 4))) == pytest.approx(0.4)
    assert roi_lesion_recall(label, _roi((3, 0, 2), (7, 6, 2))) == 0.0  # right x, wrong slices
    assert roi_lesion_recall(label, whole_image_roi(label, "test")) == 1.0
    arr[arr == 1] = 4
    assert roi_lesion_recall(_label(arr), _roi((0, 0, 0), (4, 6, 4))) is None


def test_roi_size_mm_uses_voxel_edges():
    label = _label(np.zeros((4, 6, 10), dtype=np.uint8), spacing_xyz=(0.5, 1.0, 2.0))
    assert roi_size_mm(whole_image_roi(label, "test")) == pytest.approx((5.0, 6.0, 8.0))


def test_case_qa_row():
    arr = np.zeros((4, 6, 10), dtype=np.uint8)
    arr[1:3, 1:4, 2:6] = 4
    arr[1, 2, 2:4] = 1
    arr[1, 2, 8:10] = 1  # outside the pancreas and outside a tight ROI: recall 0.5
    label = _label(arr)
    truth = _label((np.isin(arr, (1, 4))).astype(np.uint8))
    pred = _label((arr == 4).astype(np.uint8))
    roi = roi_from_mask(pred, label, margin_mm_xyz=(0, 0, 0))
    row = case_qa_row("100433_00001", truth, pred, label, roi)
    n_truth, n_pred = int((sitk.GetArrayViewFromImage(truth)).sum()), int(sitk.GetArrayViewFromImage(pred).sum())
    assert row == {
        "case_id": "100433_00001",
        "dice_lowres": pytest.approx(2 * n_pred / (n_truth + n_pred)),
        "roi_lesion_recall": 0.5,
        "roi_size_x_mm": pytest.approx(4.0),
        "roi_size_y_mm": pytest.approx(3.0),
        "roi_size_z_mm": pytest.approx(4.0),
        "roi_fraction_of_image": pytest.approx(4 * 3 * 2 / (10 * 6 * 4)),
        "roi_fallback": False,
        "roi_fallback_reason": None,
    }
