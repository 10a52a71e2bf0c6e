"""Predict on new scans: input checks (a bad file fails alone), the output format (the input's geometry, a
detection map picai_eval accepts, the fused likelihood), and the `predict` target with trained models."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch
from picai_eval.analysis_utils import parse_detection_map
from picai_eval.image_utils import read_prediction
from workflow_runner import e2e_config, snakemake

from panorama_pdac.errors import DataError, PanoramaError
from panorama_pdac.geometry import Roi
from panorama_pdac.io import write_image
from panorama_pdac.nnunet.inference import clock_sliding_window
from panorama_pdac.predict import (
    DETECTION_MAP,
    LIKELIHOOD,
    PREDICTION_COLUMNS,
    PredictSettings,
    TwoStageEnsemble,
    case_id_of,
    input_files,
    predict_case,
    predict_files,
    predictions_table,
)
from panorama_pdac.scores import fuse
from panorama_pdac.settings import predict_settings
from panorama_pdac.synthetic import generate_dataset

POSTPROCESS = {"threshold": "dynamic-fast", "dynamic_threshold_factor": 2.5, "min_voxels_detection": 10,
               "mask_to_pancreas": False, "pancreas_dilation_mm": 10}
SETTINGS = PredictSettings(spacing_xyz=(4.5, 4.5, 9.0), margin_mm_xyz=(10.0, 10.0, 10.0), postprocess=POSTPROCESS)
OBLIQUE = (1.0, 0.0, 0.0, 0.0, np.cos(0.01), -np.sin(0.01), 0.0, np.sin(0.01), np.cos(0.01))


class FakeModels:
    """Stand-ins for the two fold ensembles: a pancreas block in the middle of the low-resolution image (or
    none), and a lesion blob in the middle of the crop with a fixed PDAC probability."""

    def __init__(self, find_pancreas: bool = True, cls_prob: float = 0.7, fail_for: int | None = None):
        self.find_pancreas, self.cls_prob, self.fail_for = find_pancreas, cls_prob, fail_for
        self.crops: list[sitk.Image] = []

    def segment_pancreas(self, low_image: sitk.Image) -> sitk.Image:
        mask = np.zeros(sitk.GetArrayViewFromImage(low_image).shape, dtype=np.uint8)
        if self.find_pancreas:
            z, y, x = (s // 2 for s in mask.shape)
            mask[z, y - 1:y + 1, x - 1:x + 1] = 1
        out = sitk.GetImageFromArray(mask)
        out.CopyInformation(low_image)
        return out

    def predict_crop(self, crop: sitk.Image) -> tuple[sitk.Image, float]:
        if self.fail_for is not None and crop.GetSize()[0] == self.fail_for:
            raise RuntimeError("simulated failure inside the network")
        self.crops.append(crop)
        prob = np.full(sitk.GetArrayViewFromImage(crop).shape, 0.01, dtype=np.float32)
        z, y, x = (s // 2 for s in prob.shape)
        prob[max(0, z - 1):z + 2, y - 2:y + 2, x - 2:x + 2] = 0.9
        lesion = sitk.GetImageFromArray(prob)
        lesion.CopyInformation(crop)
        return lesion, self.cls_prob


def ct(size_xyz=(40, 36, 12), spacing=(1.5, 1.5, 3.0), direction=OBLIQUE) -> sitk.Image:
    rng = np.random.default_rng(0)
    image = sitk.GetImageFromArray(rng.integers(-1000, 200, size_xyz[::-1]).astype(np.int16))
    image.SetSpacing(spacing)
    image.SetOrigin((-30.5, 12.25, -400.0))
    image.SetDirection(direction)
    return image


def assert_same_geometry(a, b) -> None:
    assert a.GetSize() == b.GetSize()
    assert a.GetSpacing() == b.GetSpacing()
    assert a.GetOrigin() == b.GetOrigin()
    assert a.GetDirection() == b.GetDirection()


@pytest.mark.parametrize("name, case_id", [("100001_00001_0000.nii.gz", "100001_00001"), ("scan.nii", "scan"),
                                           ("a_0000_0000.mha", "a_0000"), ("x.mha", "x")])
def test_case_id_is_the_name_without_suffix_and_channel_tag(name, case_id):
    assert case_id_of(f"/in/{name}") == case_id


@pytest.mark.parametrize("name, problem", [("notes.txt", "expected .nii.gz, .nii, .mha"),
                                           ("scan.dcm", "expected .nii.gz"), ("_0000.nii.gz", "empty case id")])
def test_other_file_names_are_refused_naming_the_file(name, problem):
    with pytest.raises(DataError, match=problem) as e:
        case_id_of(f"/in/{name}")
    assert name in str(e.value)


@pytest.mark.parametrize("mask_to_pancreas", [False, True])
def test_outputs_have_the_input_geometry_and_the_fused_likelihood(tmp_path, mask_to_pancreas):
    image = ct()
    write_image(image, tmp_path / "in" / "case1_0000.nii.gz")
    settings = dataclasses.replace(SETTINGS, postprocess={**POSTPROCESS, "mask_to_pancreas": mask_to_pancreas})
    done, failures = predict_files(input_files(tmp_path / "in"), tmp_path / "out", FakeModels(), settings)
    assert failures.empty
    [result] = done
    reference = sitk.ReadImage(str(tmp_path / "in" / "case1_0000.nii.gz"))
    det = sitk.ReadImage(str(tmp_path / "out" / "case1" / DETECTION_MAP))
    assert det.GetPixelID() == sitk.sitkFloat32
    assert_same_geometry(det, reference)
    confidences, _ = parse_detection_map(sitk.GetArrayFromImage(det))  # raises unless constant-valued blobs
    assert list(confidences.values()) == pytest.approx([0.9])
    assert not result.roi_fallback
    assert result.det_max == pytest.approx(0.9)
    likelihood = json.loads((tmp_path / "out" / "case1" / LIKELIHOOD).read_text())
    assert isinstance(likelihood, float)
    assert likelihood == result.likelihood == fuse(0.7, result.det_max, "mean")
    assert predictions_table(done).columns.tolist() == PREDICTION_COLUMNS


def test_no_pancreas_falls_back_to_the_whole_image(tmp_path):
    image = ct(direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    write_image(image, tmp_path / "in" / "case1.mha")
    models = FakeModels(find_pancreas=False)
    [result], failures = predict_files(input_files(tmp_path / "in"), tmp_path / "out", models, SETTINGS)
    assert failures.empty and result.roi_fallback
    assert models.crops[0].GetSize() == image.GetSize()


def _vector_image() -> sitk.Image:
    return sitk.GetImageFromArray(np.zeros((8, 20, 20, 3), np.uint8), isVector=True)


BAD_INPUTS = {
    "corrupt_0000.nii.gz": (lambda p: p.write_bytes(b"\x1f\x8b not really a NIfTI"), "unreadable or corrupt"),
    "flat.nii.gz": (lambda p: write_image(sitk.Image([20, 20], sitk.sitkInt16), p), "got a 2D image"),
    "one_slice.mha": (lambda p: write_image(ct(size_xyz=(20, 20, 1)), p), "single slice"),
    "rgb.mha": (lambda p: write_image(_vector_image(), p), "3 components per voxel"),
    "metres.nii.gz": (lambda p: write_image(ct(spacing=(0.0008, 0.0008, 0.003)), p), "implausible voxel spacing"),
    "notes.txt": (lambda p: p.write_text("hello"), "not a CT file"),
}


def test_each_bad_input_fails_alone_with_a_message(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name, (make, _) in BAD_INPUTS.items():
        make(inputs / name)
    write_image(ct(), inputs / "good_0000.nii.gz")
    (inputs / ".DS_Store").write_text("")  # hidden: not an input at all
    done, failures = predict_files(input_files(inputs), tmp_path / "out", FakeModels(), SETTINGS)
    assert [r.case_id for r in done] == ["good"]
    assert (tmp_path / "out" / "good" / DETECTION_MAP).is_file()
    by_file = failures.set_index(failures.file.map(lambda f: f.rsplit("/", 1)[-1]))
    assert sorted(by_file.index) == sorted(BAD_INPUTS)
    for name, (_, problem) in BAD_INPUTS.items():
        assert problem in by_file.at[name, "message"], name
    assert by_file.at["corrupt_0000.nii.gz", "case_id"] == "corrupt"
    assert not (tmp_path / "out" / "corrupt").exists()


def test_a_failed_case_loses_its_earlier_outputs(tmp_path):
    stale = tmp_path / "out" / "case1"
    stale.mkdir(parents=True)
    (stale / DETECTION_MAP).write_text("from an earlier run")
    (stale / LIKELIHOOD).write_text("0.5\n")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "case1_0000.nii.gz").write_bytes(b"truncated")
    write_image(ct(), tmp_path / "in" / "case2_0000.nii.gz")
    done, failures = predict_files(input_files(tmp_path / "in"), tmp_path / "out", FakeModels(), SETTINGS)
    assert failures.case_id.tolist() == ["case1"] and len(done) == 1
    assert not stale.exists()


def test_one_case_id_from_two_files_fails_both(tmp_path):
    write_image(ct(), tmp_path / "in" / "case1_0000.nii.gz")
    write_image(ct(), tmp_path / "in" / "case1.mha")
    write_image(ct(), tmp_path / "in" / "case2.mha")
    done, failures = predict_files(input_files(tmp_path / "in"), tmp_path / "out", FakeModels(), SETTINGS)
    assert [r.case_id for r in done] == ["case2"]
    assert failures.case_id.tolist() == ["case1", "case1"]
    for name in ("case1_0000.nii.gz", "case1.mha"):
        assert failures.message.str.contains(name, regex=False).all()


def test_unexpected_errors_are_recorded_unless_no_case_succeeds(tmp_path):
    write_image(ct(size_xyz=(40, 36, 12)), tmp_path / "in" / "big.mha")
    write_image(ct(size_xyz=(24, 36, 12)), tmp_path / "in" / "small.mha")
    # The whole image is the crop (no pancreas): the crop's width says which case it is.
    models = FakeModels(find_pancreas=False, fail_for=24)
    done, failures = predict_files(input_files(tmp_path / "in"), tmp_path / "out", models, SETTINGS)
    assert [r.case_id for r in done] == ["big"]
    assert failures.case_id.tolist() == ["small"]
    assert "RuntimeError: simulated failure" in failures.message[0]
    with pytest.raises(PanoramaError, match="no case could be predicted"):
        predict_files([tmp_path / "in" / "small.mha"], tmp_path / "out", models, SETTINGS)


def test_a_missing_input_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="input folder does not exist") as e:
        input_files(tmp_path / "nowhere")
    assert "nowhere" in str(e.value)


def test_the_sliding_window_clock_sums_every_call_and_changes_no_output():
    class Predictor:  # nnU-Net's predictor as far as the clock sees it
        device = torch.device("cpu")

        def predict_sliding_window_return_logits(self, data):
            time.sleep(0.05)
            return data * 2

    predictor = Predictor()
    clock_sliding_window(predictor)
    assert predictor.sliding_window_seconds == 0
    data = torch.arange(3.0)
    for _ in range(3):
        assert torch.equal(predictor.predict_sliding_window_return_logits(data), data * 2)
    assert 0.15 <= predictor.sliding_window_seconds < 3


@pytest.mark.e2e
def test_predict_target_on_held_out_scans(workflow_run, tmp_path):
    held_out = generate_dataset(tmp_path / "synthetic", n_patients=2, seed=2024, min_pdac_patients=1)
    scans = tmp_path / "scans"
    scans.mkdir()
    for i, case in enumerate(held_out["cases"]):
        source = tmp_path / "synthetic" / "images" / case["batch"] / f"{case['case_id']}_0000.nii.gz"
        if i == 0:  # the challenge's own format
            image = sitk.ReadImage(str(source))
            for key in image.GetMetaDataKeys():  # NIfTI header fields that MetaImage cannot hold
                image.EraseMetaData(key)
            sitk.WriteImage(image, str(scans / f"{case['case_id']}.mha"))
        else:
            shutil.copy(source, scans)
    (scans / "999999_00001_0000.nii.gz").write_bytes(b"\x1f\x8b\x08 a truncated download")

    snakemake(workflow_run, "--cores", "2", "predict", "--config", f"predict_input={scans}")

    out = workflow_run / "results" / "predict"
    predictions = pd.read_csv(out / "predictions.csv", dtype={"case_id": str})
    failures = pd.read_csv(out / "failures.tsv", sep="\t", dtype={"case_id": str})
    assert failures.case_id.tolist() == ["999999_00001"]
    assert "unreadable or corrupt" in failures.message[0]
    assert sorted(predictions.case_id) == sorted(c["case_id"] for c in held_out["cases"])
    fusion = e2e_config()["evaluation"]["fusion"]
    for row in predictions.itertuples():
        [scan] = [p for p in scans.iterdir() if case_id_of(p) == row.case_id]
        det_path = out / row.case_id / DETECTION_MAP
        det = sitk.ReadImage(str(det_path))
        assert det.GetPixelID() == sitk.sitkFloat32
        assert_same_geometry(det, sitk.ReadImage(str(scan)))
        y_det = read_prediction(det_path)  # how picai_eval reads a detection map
        parse_detection_map(y_det)  # raises for maps that are not constant-valued blobs
        assert y_det.min() >= 0
        likelihood = json.loads((out / row.case_id / LIKELIHOOD).read_text())
        assert likelihood == pytest.approx(fuse(row.cls_prob, float(y_det.max()), fusion), abs=1e-12)
        assert likelihood == pytest.approx(row.likelihood, abs=1e-12)


@pytest.mark.e2e
def test_cv_path_and_predict_agree_on_roi_probability_and_detection_map(workflow_run, tmp_path):
    """Fold 0's held-out cases, predicted by `predict_case` with fold 0's models of both stages, get what the
    cross-validated path gave them: the same ROI, PDAC probability and full-size detection map."""
    results = workflow_run / "results"
    config, variant = e2e_config(), "ce"
    stage2 = results / "stage2" / variant
    models = TwoStageEnsemble.load(results / "stage1", [results / "stage1/fold_0/checkpoint_final.pth"],
                                   stage2, [stage2 / "fold_0/step3/checkpoint_final.pth"], torch.device("cpu"),
                                   mirroring=False)
    settings = PredictSettings(**predict_settings(config))
    cases = pd.read_csv(results / "dataset/cases.tsv", sep="\t", dtype=str).set_index("case_id")
    rois = pd.read_csv(results / "stage1/rois.tsv", sep="\t", dtype=str).set_index("case_id")
    scores = pd.read_csv(results / f"evaluation/{variant}/case_scores.tsv", sep="\t", dtype={"case_id": str})
    scores = scores.set_index("case_id")
    held_out = json.loads((results / "dataset/splits_final.json").read_text())[0]["val"]
    pdac_seen = False
    for case_id in held_out:
        image = workflow_run / cases.at[case_id, "image"]
        result = predict_case(models, image, case_id, tmp_path / case_id, settings)
        assert result.roi == Roi.from_json(json.loads((workflow_run / rois.at[case_id, "roi"]).read_text()))
        assert result.cls_prob == pytest.approx(scores.at[case_id, "cls_prob"], abs=1e-6)
        cv_map = sitk.GetArrayFromImage(sitk.ReadImage(str(workflow_run / scores.at[case_id, "detection_map"])))
        new_map = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / case_id / DETECTION_MAP)))
        np.testing.assert_allclose(new_map, cv_map, atol=1e-6)
        pdac_seen |= bool(cv_map.any())
    assert pdac_seen, "no held-out case has a detection: the comparison of maps would be empty"
