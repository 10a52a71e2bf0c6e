"""Tiny raw data sets in the PANORAMA layout (DATA.md) for the ingestion tests.

`images/<case>_0000.nii.gz`, `labels/{manual,automatic}_labels/<case>.nii.gz` and a clinical sheet, with the
real data's quirks: float64 / uint16 / uint8 labels, flipped and slightly oblique directions, anisotropic
spacing. Volumes are a few voxels wide so a whole data set is written in milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

SIZE_XYZ = (12, 10, 6)
SPACING_XYZ = (0.8, 0.8, 2.5)
ORIGIN_XYZ = (-100.0, 50.0, -300.0)
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
FLIP_XY = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
# As in real oblique scans: off-diagonals of about 0.01 (a 0.01 rad tilt about x).
OBLIQUE = (1.0, 0.0, 0.0, 0.0, np.cos(0.01), -np.sin(0.01), 0.0, np.sin(0.01), np.cos(0.01))


def volume(arr_zyx: np.ndarray, direction=IDENTITY, spacing=SPACING_XYZ, origin=ORIGIN_XYZ) -> sitk.Image:
    img = sitk.GetImageFromArray(arr_zyx)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(direction)
    return img


def label_array(pdac: bool, dtype=np.float64) -> np.ndarray:
    """(z, y, x) label: pancreas (4) with a duct (5), and a lesion (1) when `pdac`."""
    arr = np.zeros(SIZE_XYZ[::-1], dtype=dtype)
    arr[1:5, 3:7, 2:10] = 4
    arr[2:4, 5, 3:9] = 5
    if pdac:
        arr[2:4, 3:5, 6:8] = 1
    return arr


def ct_array(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1024, 400, SIZE_XYZ[::-1]).astype(np.int16)


def write_case(root: Path, case_id: str, pdac: bool, source: str = "automatic", image_dir: str = "images",
               dtype=np.float64, direction=IDENTITY) -> tuple[Path, Path]:
    """Write a matching image/label pair; returns (image, label)."""
    image = root / image_dir / f"{case_id}_0000.nii.gz"
    label = root / "labels" / f"{source}_labels" / f"{case_id}.nii.gz"
    for path in (image, label):
        path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(volume(ct_array(), direction), str(image), useCompression=True)
    sitk.WriteImage(volume(label_array(pdac, dtype), direction), str(label), useCompression=True)
    return image, label


def write_sheet(path: Path, pdac_by_case: dict[str, bool]) -> Path:
    """A clinical sheet in the real column layout (xlsx or csv, by suffix)."""
    rows = [{"PANORAMA_patient_id": int(c[:6]), "PANORAMA_study_id": c, "anonymized_study_date": "2020-01-01",
             "patient_age": "068Y", "patient_sex": "F", "scanner": "SIEMENS",
             "label": "PDAC" if p else "non-PDAC", "level": "radiology"} for c, p in pdac_by_case.items()]
    df = pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".xlsx":
        df.to_excel(path, index=False)
    else:
        df.to_csv(path, index=False)
    return path


# Three patients, one with two studies; both label folders; the three label pixel types and directions.
GOOD_CASES = {
    "100001_00001": dict(pdac=True, source="manual", dtype=np.uint16, direction=FLIP_XY),
    "100002_00001": dict(pdac=False, source="automatic", dtype=np.float64, direction=IDENTITY),
    "100002_00002": dict(pdac=True, source="automatic", dtype=np.float64, direction=OBLIQUE),
    "100003_00001": dict(pdac=False, source="manual", dtype=np.uint8, direction=IDENTITY),
}


def make_dataset(root: Path, cases: dict[str, dict] = GOOD_CASES, sheet_name: str = "clinical_information.xlsx",
                 extra_sheet_rows: dict[str, bool] | None = None) -> dict:
    """Write `cases` and a sheet for them (plus `extra_sheet_rows`); returns index_cases' arguments."""
    for case_id, spec in cases.items():
        write_case(root, case_id, **spec)
    sheet = write_sheet(root / "labels" / sheet_name,
                        {**{c: s["pdac"] for c, s in cases.items()}, **(extra_sheet_rows or {})})
    return {"image_dirs": [str(root / "images")], "labels_dir": str(root / "labels"), "clinical_path": str(sheet)}
