"""Ingestion of the 67 real label files of ../shared with the real 2238-row clinical sheet.

Real CT is not public, so each image is a symlink to its label (identical geometry): what is exercised is
the label side of real data (float64 and uint16 labels, flipped and oblique directions, 1024x1024
slices, a sheet whose rows mostly have no file). No false alarm may come out of it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from panorama_pdac.cases import index_cases
from panorama_pdac.clinical import read_clinical
from panorama_pdac.splits import make_folds

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "panorama_labels_sample"
SHEET = SAMPLE / "clinical_information.xlsx"

pytestmark = [
    pytest.mark.real_sample,
    pytest.mark.skipif(not SAMPLE.is_dir(), reason=f"real label sample not found at {SAMPLE}"),
]


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    images = tmp_path_factory.mktemp("real") / "images"
    images.mkdir()
    for label in SAMPLE.glob("*_labels/*.nii.gz"):
        (images / label.name.replace(".nii.gz", "_0000.nii.gz")).symlink_to(label)
    return index_cases([str(images)], SAMPLE, SHEET, on_invalid="fail", threads=2)


def test_real_sheet():
    sheet = read_clinical(SHEET)
    assert len(sheet) == 2238
    assert sheet["pdac_sheet"].sum() == 676
    assert sheet["patient_id"].nunique() == 2224
    assert sheet["age"].notna().sum() == 1964  # "068Y" parsed; empty for public sources


def test_no_false_alarm_on_real_labels(index):
    assert index.problems == []
    assert len(index.cases) == 67
    assert index.summary["label_source"] == {"manual": 27, "automatic": 40}
    assert index.summary["sheet_rows_without_image"] == 2238 - 67
    assert index.summary["not_in_sheet"] == [] and index.summary["labels_without_image"] == []
    # The quirks this test is for were really present.
    assert "1024x1024x163" in set(index.cases["size"])
    assert index.cases["size"].str.endswith("x663").any()


def test_voxel_truth_equals_sheet_on_real_labels(index):
    cases = index.cases
    assert (cases["pdac_voxels"] == cases["pdac_sheet"]).all()
    assert cases["pdac_voxels"].sum() == 32
    # The sample's three manual labels that the sheet calls non-PDAC: no lesion voxel either.
    assert index.summary["manual_labels_sheet_non_pdac"] == {
        "100598_00001": False, "100667_00001": False, "101632_00001": False}


def test_real_multi_study_patients_stay_in_one_fold(index):
    cases = index.cases
    splits = make_folds(cases, n_folds=5)
    fold_of = {c: k for k, s in enumerate(splits) for c in s["val"]}
    for _, studies in cases.groupby("patient_id")["case_id"]:
        assert len({fold_of[c] for c in studies}) == 1
