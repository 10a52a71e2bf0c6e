"""Stage-2 training crops: image and 7-class label cut identically around the ground-truth pancreas, case
labels beside them, and no file of a case that left the case table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import SimpleITK as sitk

from panorama_pdac.io import read_json, write_image
from panorama_pdac.nnunet.datasets import raw_dataset_dir
from panorama_pdac.stage2 import CASE_LABELS, DATASET_NAME, build_stage2_dataset


def _case(tmp, case_id, lesion: bool):
    label = np.zeros((20, 60, 60), np.uint8)  # (z, y, x)
    label[8:12, 25:35, 20:40] = 4
    label[5:15, 5:10, 5:10] = 3  # an artery far from the pancreas
    if lesion:
        label[9:11, 28:32, 24:28] = 1
    image = sitk.GetImageFromArray((label * 20).astype(np.int16))
    image.SetSpacing((1.5, 1.5, 3.0))
    image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    lab = sitk.GetImageFromArray(label)
    lab.CopyInformation(image)
    write_image(image, tmp / f"{case_id}_0000.nii.gz")
    write_image(lab, tmp / f"{case_id}.nii.gz")
    return {"case_id": case_id, "image": str(tmp / f"{case_id}_0000.nii.gz"), "label": str(tmp / f"{case_id}.nii.gz"),
            "pdac_voxels": lesion}


def test_crops_keep_the_lesion_and_drop_cases_no_longer_listed(tmp_path):
    cases = pd.DataFrame([_case(tmp_path, "100001_00001", True), _case(tmp_path, "100002_00001", False)])
    root = tmp_path / "nnunet"
    build_stage2_dataset(cases, root, "truth", (6, 6, 3), (1, 4, 5))
    raw = raw_dataset_dir(root, DATASET_NAME)
    crop = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "labelsTr" / "100001_00001.nii.gz")))
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "imagesTr" / "100001_00001_0000.nii.gz")))
    assert (crop == 1).sum() == 2 * 4 * 4 and image.shape == crop.shape
    assert not (crop == 3).any()  # the distant artery is outside pancreas box + margins
    assert np.array_equal(image, crop.astype(np.int16) * 20)  # cut identically
    assert read_json(raw / CASE_LABELS) == {"100001_00001": 1, "100002_00001": 0}

    build_stage2_dataset(cases.iloc[:1], root, "truth", (6, 6, 3), (1, 4, 5))
    assert sorted(p.name for p in (raw / "labelsTr").iterdir()) == ["100001_00001.nii.gz"]
    assert read_json(raw / "dataset.json")["numTraining"] == 1
