"""Stage 2 data: full-resolution pancreas-region crops with all seven labels, and case-level PDAC labels."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import SimpleITK as sitk

from . import labels
from .geometry import Roi, crop_to_roi, pancreas_mask, roi_from_mask
from .io import read_json, read_label, read_region, write_image, write_json
from .nnunet.datasets import FILE_ENDING, finish_raw_dataset, image_file, label_file, raw_dataset_dir
from .per_case import CaseJob, run_per_case

DATASET_ID = 502
DATASET_NAME = f"Dataset{DATASET_ID}_PanoramaStage2"
CASE_LABELS = "case_labels.json"


def training_roi(label: sitk.Image, job: CaseJob) -> Roi:
    """The published way: ground-truth pancreas plus margins; or the stage-1 cross-validated ROI."""
    if job.args["source"] == "truth":
        return roi_from_mask(pancreas_mask(label, job.args["pancreas_labels"]), label, job.args["margin_mm_xyz"])
    return Roi.from_json(read_json(job.inputs["roi"]))


def _crop_case(job: CaseJob) -> dict:
    label = read_label(job.inputs["label"], job.case_id)
    roi = training_roi(label, job)
    write_image(read_region(job.inputs["image"], roi.index_start_xyz, roi.index_size_xyz, job.case_id),
                job.outputs["image"])
    write_image(crop_to_roi(label, roi), job.outputs["label"])
    write_json(roi.to_json(), job.outputs["roi"])
    return {"crop_size": "x".join(map(str, roi.index_size_xyz)), "roi_fallback": roi.fallback}


def build_stage2_dataset(cases: pd.DataFrame, nnunet_root, source: str, margin_mm_xyz, pancreas_labels,
                         rois: pd.DataFrame | None = None, threads: int = 1) -> Path:
    """Crop image and 7-class label identically for every case into nnU-Net's raw layout; the case-level
    PDAC labels (by lesion voxels, as the evaluator defines them) go beside it. `rois`: stage 1's ROI table,
    for `source` cv. Returns dataset.json."""
    out = raw_dataset_dir(nnunet_root, DATASET_NAME)
    for sub in ("imagesTr", "labelsTr", "rois"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    roi_files = rois.set_index("case_id")["roi"] if source == "cv" else None
    jobs = []
    for r in cases.itertuples():
        inputs = {"image": r.image, "label": r.label} | ({"roi": roi_files[r.case_id]} if source == "cv" else {})
        outputs = {"image": str(image_file(out, r.case_id)), "label": str(label_file(out, r.case_id)),
                   "roi": str(out / "rois" / f"{r.case_id}.json")}
        jobs.append(CaseJob(r.case_id, inputs, outputs, {"source": source, "margin_mm_xyz": list(margin_mm_xyz),
                                                         "pancreas_labels": list(pancreas_labels)}))
    run_per_case(jobs, _crop_case, out / "crops.tsv", threads=threads, label="stage-2 crops")
    write_json({r.case_id: int(r.pdac_voxels) for r in cases.itertuples()}, out / CASE_LABELS)
    return finish_raw_dataset(out, [j.case_id for j in jobs], labels.NAMES,
                              "PANORAMA stage 2: pancreas-region crops, all labels")


def crop_for_inference(image_path: str, roi_json: str, case_id: str) -> tuple[sitk.Image, Roi]:
    """The full-resolution image cut to a (stage-1) ROI: what stage 2 sees at inference."""
    roi = Roi.from_json(read_json(roi_json))
    return read_region(image_path, roi.index_start_xyz, roi.index_size_xyz, case_id), roi


def predict_crop(predictor, crop: sitk.Image) -> tuple[sitk.Image, float]:
    """Lesion probability map on the crop's grid (float32, the crop's geometry) and the PDAC probability."""
    from .nnunet.multitask_inference import predict_case

    spacing_zyx = list(crop.GetSpacing())[::-1]
    props = {"spacing": spacing_zyx,
             "sitk_stuff": {"spacing": crop.GetSpacing(), "origin": crop.GetOrigin(), "direction": crop.GetDirection()}}
    array = sitk.GetArrayFromImage(crop).astype("float32")[None]
    lesion, cls_prob = predict_case(predictor, image=array, properties=props)
    lesion_image = sitk.GetImageFromArray(lesion)
    lesion_image.CopyInformation(crop)
    return lesion_image, cls_prob


def predict_cv_fold(predictor, cases: pd.DataFrame, rois: pd.DataFrame, out_dir, fold: int) -> pd.DataFrame:
    """Every validation case of a fold, on its stage-1 cross-validated ROI (the honest path; `rois`: stage 1's
    ROI table). Per case, the seconds from reading the image to writing the map and those of nnU-Net's sliding
    window within them (`predictor` clocked by `inference.clock_sliding_window`): our overhead is their ratio."""
    out_dir = Path(out_dir)
    roi_files = rois.set_index("case_id")["roi"]
    rows = []
    for r in cases.itertuples():
        start, window_start = time.perf_counter(), predictor.sliding_window_seconds
        roi_json = roi_files[r.case_id]
        crop, roi = crop_for_inference(r.image, roi_json, r.case_id)
        lesion, cls_prob = predict_crop(predictor, crop)
        lesion_path = out_dir / f"{r.case_id}_lesion{FILE_ENDING}"
        write_image(lesion, lesion_path)
        seconds, window = time.perf_counter() - start, predictor.sliding_window_seconds - window_start
        rows.append({"case_id": r.case_id, "fold": fold, "cls_prob": cls_prob, "lesion_prob": str(lesion_path),
                     "roi": roi_json, "roi_fallback": roi.fallback, "seconds": seconds,
                     "sliding_window_seconds": window})
        print(f"{r.case_id}: PDAC probability {cls_prob:.3f}; {seconds:.1f} s, sliding window {window:.1f} s",
              flush=True)
    table = pd.DataFrame(rows)
    if len(table):
        print(f"fold {fold}: {len(table)} cases in {table.seconds.sum():.1f} s, "
              f"{table.seconds.sum() / table.sliding_window_seconds.sum():.2f}x the sliding window", flush=True)
    return table
