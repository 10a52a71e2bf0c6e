"""Stage 1: the low-resolution pancreas dataset, cross-validated localisation and the pancreas ROIs."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from .geometry import (
    Roi,
    main_components,
    pancreas_mask,
    resample_image_in_slabs,
    resample_to_spacing,
    roi_from_mask,
)
from .io import read_image, read_image_header, read_label, write_image, write_json
from .localisation_qa import case_qa_row
from .nnunet.datasets import FILE_ENDING, finish_raw_dataset, image_file, label_file, raw_dataset_dir
from .per_case import CaseJob, run_per_case

DATASET_ID = 501
DATASET_NAME = f"Dataset{DATASET_ID}_PanoramaStage1"
ROIS_COLUMNS = ["case_id", "roi_fallback", "roi", "pancreas"]  # rois.tsv: what stage 1 hands downstream


def low_resolution_image(image: sitk.Image | sitk.ImageFileReader, spacing_xyz) -> sitk.Image:
    """What the stage-1 network sees, in training and in prediction: the CT (in memory, or its file's header,
    read a slab at a time) resampled to `spacing_xyz` (B-spline, padded with air) and stored as int16 HU."""
    return sitk.Cast(resample_image_in_slabs(image, spacing_xyz), sitk.sitkInt16)


def _convert_case(job: CaseJob) -> dict:
    spacing = job.args["spacing_xyz"]
    low_image = low_resolution_image(read_image_header(job.inputs["image"], job.case_id), spacing)
    target = pancreas_mask(read_label(job.inputs["label"], job.case_id), job.args["pancreas_labels"])
    low_target = resample_to_spacing(target, spacing, is_label=True)
    write_image(low_image, job.outputs["image"])
    write_image(sitk.Cast(low_target, sitk.sitkUInt8), job.outputs["label"])
    return {"low_res_size": "x".join(map(str, low_image.GetSize()))}


def build_stage1_dataset(cases: pd.DataFrame, nnunet_root, spacing_xyz, pancreas_labels, threads: int = 1) -> Path:
    """Resample every case (image B-spline, padded with air; label nearest) and write nnU-Net's raw layout
    with the binary pancreas target. Returns dataset.json, written last."""
    out = raw_dataset_dir(nnunet_root, DATASET_NAME)
    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(parents=True, exist_ok=True)
    jobs = [
        CaseJob(r.case_id, {"image": r.image, "label": r.label},
                {"image": str(image_file(out, r.case_id)), "label": str(label_file(out, r.case_id))},
                {"spacing_xyz": list(spacing_xyz), "pancreas_labels": list(pancreas_labels)})
        for r in cases.itertuples()
    ]
    run_per_case(jobs, _convert_case, out / "conversion.tsv", threads=threads, label="stage-1 conversion")
    return finish_raw_dataset(out, [j.case_id for j in jobs], {"background": 0, "pancreas": 1},
                              "PANORAMA stage 1: pancreas (labels 1, 4, 5) at low resolution")


def predict_validation_cases(predictor, case_ids: list[str], dataset_dir: Path, out_dir: Path) -> list[Path]:
    """Segment the given cases of the raw stage-1 dataset with a fold's predictor. nnU-Net writes into a
    temporary folder; finished files are then moved into place, so no half-written mask is ever visible."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        inputs = [[str(image_file(dataset_dir, c))] for c in case_ids]
        predictor.predict_from_files_sequential(inputs, [str(Path(tmp) / c) for c in case_ids],
                                                save_probabilities=False, overwrite=True,
                                                folder_with_segs_from_prev_stage=None)
        for c in case_ids:
            os.replace(Path(tmp) / f"{c}{FILE_ENDING}", out_dir / f"{c}{FILE_ENDING}")
    return [out_dir / f"{c}{FILE_ENDING}" for c in case_ids]


@dataclass(frozen=True)
class Localisation:
    """Stage 1's answer for one scan: the ROI stage 2 sees, and the pancreas mask it was boxed around (on the
    stage-1 grid), which also masks the detection map."""

    roi: Roi
    pancreas: sitk.Image


def localise(stage1_mask: sitk.Image, image: sitk.Image, margin_mm_xyz, min_component_fraction: float) -> Localisation:
    """The one way from a stage-1 segmentation to the ROI, for the cross-validated cases and for new scans.

    `min_component_fraction` > 0 (stage1.roi_min_component_fraction) keeps only connected components at least
    that fraction of the largest: a weak stage-1 network scatters false-positive specks, and one far speck
    would stretch the box over it and admit detection candidates there. METHOD.md boxes them all (0).
    """
    pancreas = sitk.Cast(main_components(stage1_mask, min_component_fraction), sitk.sitkUInt8)
    return Localisation(roi_from_mask(pancreas, image, margin_mm_xyz), pancreas)


def _localise_case(job: CaseJob) -> dict:
    prediction = read_image(job.inputs["prediction"], job.case_id)
    localisation = localise(prediction, read_image(job.inputs["image"], job.case_id), job.args["margin_mm_xyz"],
                            job.args["min_component_fraction"])
    write_json(localisation.roi.to_json(), job.outputs["roi"])
    write_image(localisation.pancreas, job.outputs["pancreas"])
    row = case_qa_row(job.case_id, read_image(job.inputs["truth"], job.case_id), prediction,
                      read_label(job.inputs["label"], job.case_id), localisation.roi)
    return {k: v for k, v in row.items() if k != "case_id"}


def localise_cases(cases: pd.DataFrame, predictions: dict[str, str], dataset_dir: Path, out_dir: Path, *, margin_mm_xyz,
                   min_component_fraction: float, threads: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`localise` every case from its cross-validated stage-1 mask (`predictions`: case id -> file). Writes
    `out_dir`/{case}.json (the ROI) and {case}_pancreas.nii.gz; returns the ROI table (ROIS_COLUMNS, what
    every later step reads) and the localisation QA table."""
    jobs = [
        CaseJob(r.case_id,
                {"prediction": predictions[r.case_id], "truth": str(label_file(dataset_dir, r.case_id)),
                 "image": r.image, "label": r.label},
                {"roi": str(out_dir / f"{r.case_id}.json"),
                 "pancreas": str(out_dir / f"{r.case_id}_pancreas{FILE_ENDING}")},
                {"margin_mm_xyz": list(margin_mm_xyz), "min_component_fraction": float(min_component_fraction)})
        for r in cases.itertuples()
    ]
    qa = run_per_case(jobs, _localise_case, out_dir / "manifest.tsv", threads=threads,
                      label="stage-1 localisation").drop(columns=["signature"])
    outputs = {j.case_id: j.outputs for j in jobs}
    rois = qa[["case_id", "roi_fallback"]].assign(roi=[outputs[c]["roi"] for c in qa.case_id],
                                                  pancreas=[outputs[c]["pancreas"] for c in qa.case_id])
    return rois[ROIS_COLUMNS], qa


def qa_summary(qa: pd.DataFrame) -> dict:
    """What the report says about localisation: how often the ROI holds the whole lesion."""
    recall = qa["roi_lesion_recall"].dropna()
    return {
        "cases": int(len(qa)),
        "fallbacks": int(qa["roi_fallback"].astype(bool).sum()),
        "pancreas_dice_median": float(np.median(qa["dice_lowres"])),
        "roi_lesion_recall_mean": float(recall.mean()) if len(recall) else None,
        "lesions_fully_inside": int((recall >= 1.0).sum()),
        "pdac_cases": int(len(recall)),
    }
