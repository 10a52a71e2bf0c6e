"""Stage 1: the low-resolution pancreas dataset, cross-validated localisation and the pancreas ROIs."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from .geometry import pancreas_mask, resample_to_spacing, roi_from_mask
from .io import read_image, write_image, write_json
from .localisation_qa import case_qa_row
from .per_case import CaseJob, run_per_case

DATASET_ID = 501
DATASET_NAME = f"Dataset{DATASET_ID}_PanoramaStage1"
FILE_ENDING = ".nii.gz"


def raw_dataset_dir(nnunet_root: str | os.PathLike) -> Path:
    return Path(nnunet_root) / "raw" / DATASET_NAME


def roi_dir_of(rois_tsv: str | os.PathLike) -> Path:
    """Per-case ROI JSONs live in `roi/` beside the ROI table."""
    return Path(rois_tsv).parent / "roi"


def write_dataset_json(dataset_dir: Path, labels: dict[str, int], num_cases: int, description: str) -> None:
    """nnU-Net's own dataset.json writer, into a temporary folder first so the file appears whole."""
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    with tempfile.TemporaryDirectory(dir=dataset_dir) as tmp:
        generate_dataset_json(tmp, {0: "CT"}, labels, num_cases, FILE_ENDING, description=description,
                              license="see the PANORAMA data licence")
        os.replace(Path(tmp) / "dataset.json", dataset_dir / "dataset.json")


def finish_raw_dataset(out: Path, case_ids: list[str], labels: dict[str, int], description: str) -> Path:
    """Remove the files of cases no longer in the case table (they must not reach nnU-Net's planner), then
    write dataset.json, last, as the mark of a complete raw dataset."""
    keep = {f"{c}_0000{FILE_ENDING}" for c in case_ids} | {f"{c}{FILE_ENDING}" for c in case_ids}
    for stale in [*(out / "imagesTr").iterdir(), *(out / "labelsTr").iterdir()]:
        if stale.name not in keep:
            stale.unlink()
    write_dataset_json(out, labels, len(case_ids), description)
    return out / "dataset.json"


def low_resolution_image(image: sitk.Image, spacing_xyz) -> sitk.Image:
    """What the stage-1 network sees, in training and in prediction: the CT resampled to `spacing_xyz`
    (B-spline, padded with air) and stored as int16 HU."""
    return sitk.Cast(resample_to_spacing(image, spacing_xyz, is_label=False), sitk.sitkInt16)


def _convert_case(job: CaseJob) -> dict:
    image = read_image(job.inputs[0], job.case_id)
    label = read_image(job.inputs[1], job.case_id)
    spacing = job.args["spacing_xyz"]
    low_image = low_resolution_image(image, spacing)
    target = pancreas_mask(label, job.args["pancreas_labels"])
    low_target = resample_to_spacing(target, spacing, is_label=True)
    write_image(low_image, job.outputs[0])
    write_image(sitk.Cast(low_target, sitk.sitkUInt8), job.outputs[1])
    return {"low_res_size": "x".join(map(str, low_image.GetSize()))}


def build_stage1_dataset(cases: pd.DataFrame, nnunet_root, spacing_xyz, pancreas_labels, threads: int = 1) -> Path:
    """Resample every case (image B-spline, padded with air; label nearest) and write nnU-Net's raw layout
    with the binary pancreas target. Returns dataset.json, written last."""
    out = raw_dataset_dir(nnunet_root)
    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(parents=True, exist_ok=True)
    jobs = [
        CaseJob(r.case_id, [r.image, r.label],
                [str(out / "imagesTr" / f"{r.case_id}_0000{FILE_ENDING}"), str(out / "labelsTr" / f"{r.case_id}{FILE_ENDING}")],
                {"spacing_xyz": list(spacing_xyz), "pancreas_labels": list(pancreas_labels)})
        for r in cases.itertuples()
    ]
    run_per_case(jobs, _convert_case, out / "conversion.tsv", settings={}, threads=threads, label="stage-1 conversion")
    return finish_raw_dataset(out, [j.case_id for j in jobs], {"background": 0, "pancreas": 1},
                              "PANORAMA stage 1: pancreas (labels 1, 4, 5) at low resolution")


def predict_validation_cases(predictor, case_ids: list[str], dataset_dir: Path, out_dir: Path) -> list[Path]:
    """Segment the given cases of the raw stage-1 dataset with a fold's predictor. nnU-Net writes into a
    temporary folder; finished files are then moved into place, so no half-written mask is ever visible."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        inputs = [[str(dataset_dir / "imagesTr" / f"{c}_0000{FILE_ENDING}")] for c in case_ids]
        predictor.predict_from_files_sequential(inputs, [str(Path(tmp) / c) for c in case_ids],
                                                save_probabilities=False, overwrite=True,
                                                folder_with_segs_from_prev_stage=None)
        for c in case_ids:
            os.replace(Path(tmp) / f"{c}{FILE_ENDING}", out_dir / f"{c}{FILE_ENDING}")
    return [out_dir / f"{c}{FILE_ENDING}" for c in case_ids]


def _localise_case(job: CaseJob) -> dict:
    prediction, truth, image_path, label_path = job.inputs
    pred = read_image(prediction, job.case_id)
    reference = read_image(image_path, job.case_id)
    roi = roi_from_mask(pred, reference, job.args["margin_mm_xyz"], job.args["min_component_fraction"])
    write_json(roi.to_json(), job.outputs[0])
    row = case_qa_row(job.case_id, read_image(truth, job.case_id), pred, read_image(label_path, job.case_id), roi)
    return {k: v for k, v in row.items() if k != "case_id"}


def localise_cases(cases: pd.DataFrame, cv_dir: Path, dataset_dir: Path, roi_dir: Path, margin_mm_xyz,
                   min_component_fraction: float = 0.0, threads: int = 1) -> pd.DataFrame:
    """ROI (per-case JSON) and localisation QA from the cross-validated stage-1 masks (`roi_from_mask`)."""
    jobs = [
        CaseJob(r.case_id,
                [str(cv_dir / f"{r.case_id}{FILE_ENDING}"), str(dataset_dir / "labelsTr" / f"{r.case_id}{FILE_ENDING}"),
                 r.image, r.label],
                [str(roi_dir / f"{r.case_id}.json")],
                {"margin_mm_xyz": list(margin_mm_xyz), "min_component_fraction": float(min_component_fraction)})
        for r in cases.itertuples()
    ]
    table = run_per_case(jobs, _localise_case, roi_dir / "manifest.tsv", settings={}, threads=threads,
                         label="stage-1 localisation")
    return table.drop(columns=["signature"])


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


def copy_model_files(preprocessed_plans: Path, dataset_json: Path, model_dir: Path) -> None:
    """The model folder is a standard nnU-Net model folder: plans.json and dataset.json beside fold_k/."""
    model_dir.mkdir(parents=True, exist_ok=True)
    for src, name in ((preprocessed_plans, "plans.json"), (dataset_json, "dataset.json")):
        tmp = model_dir / f".{name}.tmp"
        shutil.copyfile(src, tmp)
        os.replace(tmp, model_dir / name)
