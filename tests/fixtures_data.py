"""Tiny raw data sets in the PANORAMA layout (DATA.md) for the ingestion tests.

`images/<case>_0000.nii.gz`, `labels/{manual,automatic}_labels/<case>.nii.gz` and a clinical sheet, with the
real data's quirks: float64 / uint16 / uint8 labels, flipped and slightly oblique directions, anisotropic
spacing. Volumes are a few voxels wide so a whole data set is written in milliseconds.
"""

from __future__ import annotations

import gzip
import shutil
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
               dtype=np.float64, direction=IDENTITY, image_suffix: str = ".nii.gz",
               label_suffix: str = ".nii.gz") -> tuple[Path, Path]:
    """Write a matching image/label pair (compressed where the format allows); returns (image, label)."""
    image = root / image_dir / f"{case_id}_0000{image_suffix}"
    label = root / "labels" / f"{source}_labels" / f"{case_id}{label_suffix}"
    for path in (image, label):
        path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(volume(ct_array(), direction), str(image), useCompression=True)
    sitk.WriteImage(volume(label_array(pdac, dtype), direction), str(label), useCompression=True)
    return image, label


SHEET_COLUMNS = ["PANORAMA_patient_id", "PANORAMA_study_id", "anonymized_study_date", "patient_age", "patient_sex",
                 "scanner", "label", "level"]


def write_sheet(path: Path, pdac_by_case: dict[str, bool]) -> Path:
    """A clinical sheet in the real column layout (xlsx or csv, by suffix)."""
    rows = [{"PANORAMA_patient_id": int(c[:6]), "PANORAMA_study_id": c, "anonymized_study_date": "2020-01-01",
             "patient_age": "068Y", "patient_sex": "F", "scanner": "SIEMENS",
             "label": "PDAC" if p else "non-PDAC", "level": "radiology"} for c, p in pdac_by_case.items()]
    df = pd.DataFrame(rows, columns=SHEET_COLUMNS)  # an empty sheet keeps its header
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


def make_planted_dataset(root: Path) -> tuple[dict, dict]:
    """The good cases, two more in the other accepted formats (.nii, .mha), and one case (or file) per defect of
    DATA.md and per unusable file; returns index_cases' arguments and what ingestion must find:
    "used" (case ids), "excluded" ({case id: the file named}), "unparsed" (files without a case id),
    "labels_without_image", "not_in_sheet", "ignored" (other files), "sheet_rows_without_image"."""
    args = make_dataset(root)
    args["image_dirs"].append(str(root / "images_b"))
    (root / "images_b").mkdir()
    sheet: dict[str, bool] = {c: s["pdac"] for c, s in GOOD_CASES.items()}
    excluded: dict[str, Path] = {}

    def case(case_id: str, pdac: bool = False, sheet_pdac: bool | None = None, **kwargs) -> tuple[Path, Path]:
        sheet[case_id] = pdac if sheet_pdac is None else sheet_pdac
        return write_case(root, case_id, pdac, **kwargs)

    case("100020_00001", pdac=True, image_suffix=".nii")
    case("100021_00001", image_suffix=".mha", label_suffix=".mha")
    image, label = case("100030_00001")  # image without a label
    label.unlink()
    excluded["100030_00001"] = image
    image, _ = case("100031_00001")  # label without an image: its batch not downloaded
    image.unlink()
    image, _ = case("100032_00001")  # truncated image
    image.write_bytes(image.read_bytes()[: image.stat().st_size * 2 // 3])
    excluded["100032_00001"] = image
    _, label = case("100033_00001")  # corrupt label
    label.write_bytes(gzip.compress(b"not a nifti header" * 40))
    excluded["100033_00001"] = label
    _, label = case("100034_00001")  # label spacing differs from the image's
    sitk.WriteImage(volume(label_array(False), spacing=(0.8, 0.8, 3.0)), str(label), useCompression=True)
    excluded["100034_00001"] = label
    _, label = case("100035_00001")  # label size differs
    sitk.WriteImage(volume(label_array(False)[:-1]), str(label), useCompression=True)
    excluded["100035_00001"] = label
    _, label = case("100036_00001")  # label value outside 0-6
    values = label_array(False)
    values[0, 0, 0] = 9
    sitk.WriteImage(volume(values), str(label), useCompression=True)
    excluded["100036_00001"] = label
    _, excluded["100037_00001"] = case("100037_00001", pdac=False, sheet_pdac=True)  # sheet PDAC, no lesion voxel
    _, excluded["100038_00001"] = case("100038_00001", pdac=True, sheet_pdac=False)  # the reverse
    image, _ = case("100039_00001")  # the same case in two batch folders
    shutil.copy(image, root / "images_b")
    excluded["100039_00001"] = image
    image, _ = case("100041_00001")  # an unsupported format
    excluded["100041_00001"] = image.rename(image.with_name("100041_00001_0000.nrrd"))
    image, _ = case("100042_00001")  # a second channel beside the CT
    excluded["100042_00001"] = Path(shutil.copy(image, image.with_name("100042_00001_0001.nii.gz")))
    _, _ = case("100043_00001")  # files without a sheet row
    del sheet["100043_00001"]
    excluded["100043_00001"] = Path(args["clinical_path"])
    unparsed = [root / "images" / "100044_1_0000.nii.gz", root / "images_b" / "batch3.zip"]
    image, _ = case("100044_00001")  # a study id that does not parse: its label is then without image
    image.rename(unparsed[0])
    unparsed[1].write_bytes(b"PK\x05\x06" + bytes(18))
    ignored = root / "images" / "README.txt"
    ignored.write_text("batch 1 of the PANORAMA images\n")
    write_sheet(Path(args["clinical_path"]), {**sheet, "100090_00001": False})
    used = sorted([*GOOD_CASES, "100020_00001", "100021_00001"])
    return args, {"used": used, "excluded": {c: str(p) for c, p in excluded.items()},
                  "unparsed": [str(p) for p in unparsed], "labels_without_image": ["100031_00001", "100044_00001"],
                  "not_in_sheet": ["100043_00001"], "ignored": [str(ignored)], "sheet_rows_without_image": 4}
