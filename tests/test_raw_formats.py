"""Raw images and labels in every format ingestion accepts (.nii.gz, .nii, .mha) reach the per-case work that
reads them: stage-1 conversion and stage-2 cropping read whatever file the case table names, and write nnU-Net's
own .nii.gz files by case id."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from fixtures_data import GOOD_CASES, make_dataset, write_case, write_sheet

from panorama_pdac.cases import index_cases
from panorama_pdac import stage1, stage2
from panorama_pdac.nnunet.datasets import image_file, label_file, raw_dataset_dir


@pytest.mark.parametrize("image_suffix, label_suffix", [(".nii", ".nii"), (".mha", ".mha")])
def test_every_accepted_format_is_converted_and_cropped(tmp_path, image_suffix, label_suffix):
    args = make_dataset(tmp_path / "raw")
    case = "100040_00001"
    image, _ = write_case(tmp_path / "raw", case, pdac=True, image_suffix=image_suffix, label_suffix=label_suffix)
    write_sheet(tmp_path / "raw" / "labels" / "clinical_information.xlsx",
                {**{c: s["pdac"] for c, s in GOOD_CASES.items()}, case: True})
    cases = index_cases(**args).cases
    assert cases.set_index("case_id").at[case, "image"] == str(image)

    root = tmp_path / "nnunet"
    stage1.build_stage1_dataset(cases, root, (1.6, 1.6, 5.0), (1, 4, 5))
    low = sitk.ReadImage(str(image_file(raw_dataset_dir(root, stage1.DATASET_NAME), case)))
    assert low.GetSpacing() == pytest.approx((1.6, 1.6, 5.0))
    stage2.build_stage2_dataset(cases, root, "truth", (2, 2, 2), (1, 4, 5))
    crop = sitk.GetArrayFromImage(sitk.ReadImage(str(label_file(raw_dataset_dir(root, stage2.DATASET_NAME), case))))
    assert (crop == 1).sum() == 2 * 2 * 2 and np.isin(crop, [0, 1, 4, 5]).all()
