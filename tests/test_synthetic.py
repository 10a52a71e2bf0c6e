"""The synthetic demo data set: the raw PANORAMA layout of DATA.md, with the traits of real downloads."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage

from panorama_pdac.ct_painting import VENOUS_PHASE
from panorama_pdac.errors import ConfigError
from panorama_pdac.geometry import resample_to_spacing
from panorama_pdac.layout import LABEL_FOLDERS
from panorama_pdac.synthetic import SHEET_COLUMNS, generate_dataset, main

# Half the painted parenchyma-lesion contrast: what partial volume leaves of it in a small lesion.
HYPO_ATTENUATION = (VENOUS_PHASE.pancreas - VENOUS_PHASE.lesion) / 2

# Coarse grids keep the tests fast; the anatomy and every trait are the same as in the demo.
FAST = {"inplane_voxels": (60, 80), "inplane_spacing_mm": (2.5, 3.0), "slices": (20, 30),
        "slice_spacing_mm": (4.0, 5.0)}
GEOMETRY = ("GetSize", "GetSpacing", "GetOrigin", "GetDirection")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synthetic")
    return out, generate_dataset(out, n_patients=8, seed=3, min_pdac_patients=2, **FAST)


def _pairs(out: Path) -> dict[str, tuple[Path, Path]]:
    images = {p.name[: -len("_0000.nii.gz")]: p for p in out.glob("images/*/*.nii.gz")}
    labels = {p.name[: -len(".nii.gz")]: p for p in out.glob("labels/*/*.nii.gz")}
    assert images.keys() == labels.keys()
    return {c: (images[c], labels[c]) for c in images}


def _arrays(out: Path) -> dict[str, np.ndarray]:
    return {p.relative_to(out).as_posix(): sitk.GetArrayFromImage(sitk.ReadImage(str(p)))
            for p in sorted(out.rglob("*.nii.gz"))}


def test_layout_and_names_as_in_data_md(dataset):
    out, summary = dataset
    assert sorted(p.name for p in (out / "images").iterdir()) == ["batch1", "batch2"]
    assert sorted(p.name for p in (out / "labels").iterdir()) == [
        "automatic_labels", "clinical_information.xlsx", "manual_labels"]
    for batch in (out / "images").iterdir():
        names = [p.name for p in batch.iterdir()]
        assert names and all(re.fullmatch(r"\d{6}_\d{5}_0000\.nii\.gz", n) for n in names)
    manual, automatic = ({p.name for p in (out / "labels" / f).iterdir()} for f in LABEL_FOLDERS.values())
    assert manual and automatic and not manual & automatic
    assert all(re.fullmatch(r"\d{6}_\d{5}\.nii\.gz", n) for n in manual | automatic)
    assert len(_pairs(out)) == summary["n_cases"] > summary["n_patients"] == 8


def test_clinical_sheet_formats(dataset):
    out, summary = dataset
    sheet = pd.read_excel(out / "labels" / "clinical_information.xlsx", dtype={"PANORAMA_study_id": str})
    assert list(sheet.columns) == SHEET_COLUMNS
    assert sorted(sheet["PANORAMA_study_id"]) == sorted(_pairs(out))
    assert (sheet["PANORAMA_study_id"].str[:6].astype(int) == sheet["PANORAMA_patient_id"]).all()
    assert sheet["PANORAMA_patient_id"].dtype.kind == "i"
    assert pd.api.types.is_datetime64_any_dtype(sheet["anonymized_study_date"])
    assert sheet["patient_age"].dropna().str.fullmatch(r"\d{3}Y").all()
    assert set(sheet["patient_sex"].dropna()) <= {"M", "F"}
    assert set(sheet["label"]) == {"PDAC", "non-PDAC"}
    assert sheet["PANORAMA_patient_id"].value_counts().max() >= 2, "a patient with several studies"
    assert summary["n_pdac_patients"] >= 2


def test_every_pair_shares_geometry_and_has_the_real_pixel_types(dataset):
    out, _ = dataset
    label_types = set()
    for case_id, (image_path, label_path) in _pairs(out).items():
        image, label = sitk.ReadImage(str(image_path)), sitk.ReadImage(str(label_path))
        assert image.GetPixelID() == sitk.sitkInt16, case_id
        for attribute in GEOMETRY:
            assert getattr(image, attribute)() == getattr(label, attribute)(), (case_id, attribute)
        label_types.add(label.GetPixelIDTypeAsString())
        values = set(np.unique(sitk.GetArrayViewFromImage(label)).tolist())
        assert {0, 2, 3, 4, 5, 6} <= values <= set(range(7)), case_id
    assert "64-bit float" in label_types and len(label_types) >= 2


def test_grids_vary_like_real_scans(dataset):
    _, summary = dataset
    cases = summary["cases"]
    assert {"identity", "flipped", "oblique"} <= {c["direction"] for c in cases}
    spacings = {tuple(c["spacing_xyz"]) for c in cases}
    assert len(spacings) == len(cases), "spacing differs between cases"
    assert all(s[2] > s[0] == s[1] for s in spacings), "anisotropic: thick slices"
    assert any(c["out_of_fov"] for c in cases)


def test_out_of_fov_values_and_hu_range(dataset):
    out, summary = dataset
    for case in summary["cases"]:
        image_path = next(out.glob(f"images/*/{case['case_id']}_0000.nii.gz"))
        ct = sitk.GetArrayFromImage(sitk.ReadImage(str(image_path)))
        assert ct.max() < 400
        assert (ct.min() == -2048) == case["out_of_fov"], case["case_id"]
        assert (ct[ct > -1500] >= -1024).all()


def test_sheet_says_pdac_iff_lesion_voxels_and_lesions_sit_in_the_pancreas(dataset):
    out, _ = dataset
    sheet = pd.read_excel(out / "labels" / "clinical_information.xlsx", dtype={"PANORAMA_study_id": str})
    pdac = dict(zip(sheet["PANORAMA_study_id"], sheet["label"] == "PDAC"))
    for case_id, (image_path, label_path) in _pairs(out).items():
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(label_path)))
        lesion = labels == 1
        assert lesion.any() == pdac[case_id], case_id
        if not lesion.any():
            continue
        pancreas = np.isin(labels, (4, 5))
        assert (ndimage.binary_dilation(lesion) & pancreas).any(), "lesion touches the parenchyma"
        _, n_parts = ndimage.label(pancreas | lesion, structure=np.ones((3, 3, 3)))
        assert n_parts == 1, "lesion is part of the pancreas, not a separate blob"
        ct = sitk.GetArrayFromImage(sitk.ReadImage(str(image_path)))
        assert ct[lesion].mean() < ct[labels == 4].mean() - HYPO_ATTENUATION, "hypo-attenuating lesion"


def test_pancreas_survives_stage1_resampling(dataset):
    out, _ = dataset
    for case_id, (_, label_path) in _pairs(out).items():
        low = resample_to_spacing(sitk.ReadImage(str(label_path)), (4.5, 4.5, 9.0), is_label=True)
        assert np.isin(sitk.GetArrayViewFromImage(low), (1, 4, 5)).sum() >= 30, case_id


def test_deterministic_per_seed_with_either_sheet_format(tmp_path):
    args = {"n_patients": 3, "min_pdac_patients": 1, **FAST}
    generate_dataset(tmp_path / "a", seed=11, **args)
    stale = tmp_path / "b" / "images" / "batch1" / "100999_00001_0000.nii.gz"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left over from an earlier run")
    generate_dataset(tmp_path / "b", seed=11, sheet_format="csv", **args)
    generate_dataset(tmp_path / "c", seed=12, **args)
    first, again = _arrays(tmp_path / "a"), _arrays(tmp_path / "b")
    assert first.keys() == again.keys() and not stale.exists()
    assert all(np.array_equal(first[k], again[k]) for k in first)
    other = _arrays(tmp_path / "c")
    assert not any(np.array_equal(a, b) for a in first.values() for b in other.values() if a.shape == b.shape)
    xlsx = pd.read_excel(tmp_path / "a" / "labels" / "clinical_information.xlsx", dtype={"PANORAMA_study_id": str})
    csv = pd.read_csv(tmp_path / "b" / "labels" / "clinical_information.csv", dtype={"PANORAMA_study_id": str},
                      parse_dates=["anonymized_study_date"])
    pd.testing.assert_frame_equal(xlsx, csv, check_dtype=False)


def test_impossible_request_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="PDAC"):
        generate_dataset(tmp_path, n_patients=4, min_pdac_patients=5)
    with pytest.raises(SystemExit, match="ERROR"):
        main(["--out", str(tmp_path), "--n-patients", "3"])
