"""How well stage 1 localised the pancreas, per case: the numbers the report's QA table shows.

The measure that matters for stage 2 is ROI lesion recall: a lesion voxel outside the crop can never be
detected, whatever stage 2 does. Low-resolution Dice and the ROI size explain a low recall.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .geometry import Roi, crop_to_roi
from .labels import LESION


def _foreground(mask: sitk.Image | np.ndarray) -> np.ndarray:
    arr = sitk.GetArrayViewFromImage(mask) if isinstance(mask, sitk.Image) else np.asarray(mask)
    return arr != 0


def dice(a: sitk.Image | np.ndarray, b: sitk.Image | np.ndarray) -> float:
    """Dice of the foreground (non-zero) of two masks on the same grid; 1.0 when both are empty."""
    a, b = _foreground(a), _foreground(b)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape (z, y, x): {a.shape} vs {b.shape}")
    total = int(a.sum()) + int(b.sum())
    # Two empty masks agree perfectly (no pancreas in view); 0/0 must not turn into NaN in the table.
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def roi_lesion_recall(label_fullres: sitk.Image, roi: Roi) -> float | None:
    """Fraction of lesion voxels (label 1) inside the ROI; None when the case has no lesion."""
    n_lesion = int((sitk.GetArrayViewFromImage(label_fullres) == LESION).sum())
    if n_lesion == 0:
        return None
    n_inside = int((sitk.GetArrayFromImage(crop_to_roi(label_fullres, roi)) == LESION).sum())
    return n_inside / n_lesion


def roi_size_mm(roi: Roi) -> tuple[float, float, float]:
    """World-axis extent (x, y, z) of the ROI in mm, from its voxel-edge corners."""
    return tuple(float(hi - lo) for lo, hi in zip(roi.physical_min_xyz, roi.physical_max_xyz))


def case_qa_row(
    case_id: str, truth_lowres: sitk.Image, pred_lowres: sitk.Image, label_fullres: sitk.Image, roi: Roi
) -> dict:
    """One row of the localisation QA table.

    `truth_lowres` / `pred_lowres` are the binary pancreas target and the stage-1 prediction on the
    stage-1 grid; `label_fullres` is the full-resolution label map that `roi` indexes.
    """
    size_x, size_y, size_z = roi_size_mm(roi)
    return {
        "case_id": case_id,
        "dice_lowres": dice(truth_lowres, pred_lowres),
        "roi_lesion_recall": roi_lesion_recall(label_fullres, roi),
        "roi_size_x_mm": size_x,
        "roi_size_y_mm": size_y,
        "roi_size_z_mm": size_z,
        # Share of the scan stage 2 must process: the speed-up the crop buys.
        "roi_fraction_of_image": float(np.prod(roi.index_size_xyz) / np.prod(label_fullres.GetSize())),
        "roi_fallback": roi.fallback,
        "roi_fallback_reason": roi.fallback_reason,
    }
