"""Cross-validated evaluation glue: detection maps in the full image, case scores, QA montage panels."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from .detection import detect_lesions, full_size_detection_map
from .figures import montage_panel
from .geometry import Roi, crop_to_roi
from .io import read_image, read_image_header, read_json, write_image
from .per_case import CaseJob, run_per_case
from .scores import case_scores_table


def _detect_case(job: CaseJob) -> dict:
    lesion_path, roi_json, image_path = job.inputs[:3]
    lesion = read_image(lesion_path, job.case_id)
    pancreas = read_image(job.inputs[3], job.case_id) if job.args["postprocess"]["mask_to_pancreas"] else None
    det = detect_lesions(lesion, job.args["postprocess"], pancreas, job.args["min_component_fraction"])
    roi = Roi.from_json(read_json(roi_json))
    write_image(full_size_detection_map(det, roi.index_start_xyz, roi.index_size_xyz,
                                        read_image_header(image_path, job.case_id)), job.outputs[0])
    return {"det_max": float(det.max()) if det.size else 0.0}


def build_detection_maps(cv: pd.DataFrame, cases: pd.DataFrame, out_dir: str | os.PathLike, settings: dict,
                         stage1_cv_dir: str | os.PathLike, threads: int = 1, fusion: str = "mean",
                         min_component_fraction: float = 0.0) -> pd.DataFrame:
    """A full-size detection map per case (`out_dir/{case}.nii.gz`) and the case scores table:
    classification probability, detection-map maximum and their fusion. `settings`: evaluation.postprocess;
    `min_component_fraction`: stage1.roi_min_component_fraction (see `detect_lesions`)."""
    out_dir = Path(out_dir)
    images = cases.set_index("case_id")["image"]
    args = {"postprocess": dict(settings), "min_component_fraction": min_component_fraction}
    jobs = [CaseJob(r.case_id, [r.lesion_prob, r.roi, images[r.case_id], str(Path(stage1_cv_dir) / f"{r.case_id}.nii.gz")],
                    [str(out_dir / f"{r.case_id}.nii.gz")], args)
            for r in cv.itertuples()]
    done = run_per_case(jobs, _detect_case, out_dir / "manifest.tsv", settings={}, threads=threads,
                        label="detection maps").set_index("case_id")
    cv = cv.set_index("case_id")
    table = case_scores_table(cv["cls_prob"].to_dict(), done["det_max"].to_dict(), cv["fold"].to_dict(), fusion)
    table["detection_map"] = [str(out_dir / f"{c}.nii.gz") for c in table.case_id]
    table["roi"] = [cv.at[c, "roi"] for c in table.case_id]
    return table


def qa_panels(scores: pd.DataFrame, cases: pd.DataFrame, threshold: float, per_kind: int = 2) -> list:
    """Montage panels of true positives, false positives and misses by the fused score at `threshold`,
    each the axial slice with the most lesion inside the stage-1 ROI."""
    truth = cases.set_index("case_id")
    scored = scores.assign(pdac=[bool(truth.at[c, "pdac_voxels"]) for c in scores.case_id])
    kinds = {
        "true positive": scored[(scored.pdac) & (scored.fused >= threshold)].sort_values("fused", ascending=False),
        "false positive": scored[(~scored.pdac) & (scored.fused >= threshold)].sort_values("fused", ascending=False),
        "missed": scored[(scored.pdac) & (scored.fused < threshold)].sort_values("fused"),
    }
    panels = []
    for kind, rows in kinds.items():
        for r in rows.head(per_kind).itertuples():
            roi = Roi.from_json(read_json(r.roi))
            ct = sitk.GetArrayFromImage(crop_to_roi(read_image(truth.at[r.case_id, "image"], r.case_id), roi))
            label = sitk.GetArrayFromImage(crop_to_roi(read_image(truth.at[r.case_id, "label"], r.case_id), roi))
            det = sitk.GetArrayFromImage(crop_to_roi(read_image(r.detection_map, r.case_id), roi))
            panels.append(montage_panel(f"{kind}: {r.case_id} (score {r.fused:.2f})", ct, (label == 1).astype(np.uint8),
                                        (det > 0).astype(np.uint8)))
    return panels
