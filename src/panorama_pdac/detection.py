"""From a lesion-probability map to the detection map the challenge evaluates (METHOD.md §4).

A detection map holds one constant value per lesion candidate (its confidence) and zero elsewhere.
Candidates come from report_guided_annotation, as in the PANORAMA baseline; the map is computed on the
stage-2 crop and pasted back, voxel for voxel, into a full-size map with the CT's geometry. The case score
fuses it with the classification probability (`scores`). Predict and the cross-validated evaluation share all
of it; nothing here plots.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import SimpleITK as sitk
from report_guided_annotation import extract_lesion_candidates
from scipy import ndimage

from .geometry import Roi, paste_box, resample_to_reference
from .io import read_image, read_image_header, read_json, write_image
from .per_case import CaseJob, run_per_case
from .scores import case_scores_table


def restrict_to_pancreas(
    lesion_prob_zyx: np.ndarray,
    pancreas_mask_zyx: np.ndarray,
    dilate_mm: float | None = None,
    spacing_zyx: Sequence[float] | None = None,
) -> np.ndarray:
    """Zero the probability outside the predicted pancreas grown by `dilate_mm` (Euclidean, in mm).

    An empty pancreas mask leaves the map unchanged: masking would silently delete every candidate,
    and a lesion prediction without any pancreas is better seen (as a false positive) than hidden.
    """
    mask = np.asarray(pancreas_mask_zyx) != 0
    if mask.shape != lesion_prob_zyx.shape:
        raise ValueError(f"pancreas mask shape (z, y, x) {mask.shape} differs from the map's {lesion_prob_zyx.shape}")
    if not mask.any():
        return lesion_prob_zyx
    if dilate_mm:
        if spacing_zyx is None:
            raise ValueError("dilate_mm needs spacing_zyx")
        # Distance in mm to the nearest pancreas voxel: exact dilation on anisotropic CT grids.
        mask = ndimage.distance_transform_edt(~mask, sampling=spacing_zyx) <= dilate_mm
    return np.where(mask, lesion_prob_zyx, 0)


def detection_map(
    lesion_prob_zyx: np.ndarray,
    threshold: str | float = "dynamic-fast",
    dynamic_threshold_factor: float = 2.5,
    min_voxels_detection: int = 10,
    pancreas_mask_zyx: np.ndarray | None = None,
    dilate_mm: float | None = None,
    spacing_zyx: Sequence[float] | None = None,
) -> np.ndarray:
    """Detection map (float32, constant-valued blobs) from a lesion-probability map.

    With a pancreas mask, probability outside the (dilated) mask is removed *before* extraction, so
    that the dynamic threshold (a fraction of the maximum) is set by the pancreas, and no candidate is
    cut in two by the mask.
    """
    prob = np.asarray(lesion_prob_zyx, dtype=np.float32)
    if prob.ndim != 3:
        raise ValueError(f"expected a 3D (z, y, x) probability map, got shape {prob.shape}")
    if pancreas_mask_zyx is not None:
        prob = restrict_to_pancreas(prob, pancreas_mask_zyx, dilate_mm, spacing_zyx)
    blobs, _, _ = extract_lesion_candidates(
        prob,
        threshold=threshold,
        dynamic_threshold_factor=dynamic_threshold_factor,
        min_voxels_detection=min_voxels_detection,
    )
    return blobs.astype(np.float32)


def full_size_detection_map(det_crop_zyx: np.ndarray, roi: Roi,
                            reference: sitk.Image | sitk.ImageFileReader) -> sitk.Image:
    """Paste a crop's detection map at its ROI into a zero map with `reference`'s exact geometry (float32).

    `reference` may be the CT or just its header (`io.read_image_header`): only size, spacing, origin
    and direction are used. Never resampled: interpolation would break the constant-valued blobs.
    """
    return paste_box(reference, np.asarray(det_crop_zyx, dtype=np.float32), roi.index_start_xyz, roi.index_size_xyz)


def detect_lesions(lesion: sitk.Image, settings: dict, pancreas: sitk.Image | None = None) -> np.ndarray:
    """Detection map (z, y, x) on the lesion-probability map's grid, with the `evaluation.postprocess`
    settings. `pancreas` (stage 1's mask, `stage1.Localisation.pancreas`, on its own low-resolution grid) is
    used only when the settings ask for masking."""
    s = settings
    # The low-resolution mask brought onto the crop's grid.
    mask = None
    if s["mask_to_pancreas"]:
        mask = sitk.GetArrayFromImage(resample_to_reference(pancreas, lesion, is_label=True))
    return detection_map(sitk.GetArrayFromImage(lesion), threshold=s["threshold"],
                         dynamic_threshold_factor=s["dynamic_threshold_factor"],
                         min_voxels_detection=s["min_voxels_detection"], pancreas_mask_zyx=mask,
                         dilate_mm=s["pancreas_dilation_mm"], spacing_zyx=lesion.GetSpacing()[::-1])


def _detect_case(job: CaseJob) -> dict:
    lesion = read_image(job.inputs["lesion_prob"], job.case_id)
    settings = job.args["postprocess"]
    pancreas = read_image(job.inputs["pancreas"], job.case_id) if settings["mask_to_pancreas"] else None
    det = detect_lesions(lesion, settings, pancreas)
    roi = Roi.from_json(read_json(job.inputs["roi"]))
    write_image(full_size_detection_map(det, roi, read_image_header(job.inputs["image"], job.case_id)),
                job.outputs["detection_map"])
    return {"det_max": float(det.max()) if det.size else 0.0}


def build_detection_maps(cv: pd.DataFrame, cases: pd.DataFrame, rois: pd.DataFrame, out_dir: str | os.PathLike,
                         settings: dict, threads: int = 1) -> pd.DataFrame:
    """A full-size detection map per case (`out_dir/{case}.nii.gz`) and the table of the two case scores,
    classification probability and detection-map maximum, with each case's map and ROI; their fusion is
    the evaluation's (`scores.with_fused`). `rois`: stage 1's ROI table (the pancreas mask each ROI was
    boxed around masks the map); `settings`: evaluation.postprocess."""
    out_dir = Path(out_dir)
    images = cases.set_index("case_id")["image"]
    stage1 = rois.set_index("case_id")
    jobs = [CaseJob(r.case_id, {"lesion_prob": r.lesion_prob, "image": images[r.case_id],
                                "roi": stage1.at[r.case_id, "roi"], "pancreas": stage1.at[r.case_id, "pancreas"]},
                    {"detection_map": str(out_dir / f"{r.case_id}.nii.gz")}, {"postprocess": dict(settings)})
            for r in cv.itertuples()]
    done = run_per_case(jobs, _detect_case, out_dir / "manifest.tsv", threads=threads,
                        label="detection maps").set_index("case_id")
    cv = cv.set_index("case_id")
    table = case_scores_table(cv["cls_prob"].to_dict(), done["det_max"].to_dict(), cv["fold"].to_dict())
    table["detection_map"] = [str(out_dir / f"{c}.nii.gz") for c in table.case_id]
    table["roi"] = [stage1.at[c, "roi"] for c in table.case_id]
    return table
