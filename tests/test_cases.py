"""Case ingestion: every problem of DATA.md is found, named (case + file + what), and all of them at once."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest
import SimpleITK as sitk
from fixtures_data import (
    GOOD_CASES,
    OBLIQUE,
    label_array,
    make_dataset,
    volume,
    write_case,
    write_sheet,
)

from panorama_pdac.cases import (
    CASE_COLUMNS,
    index_cases,
    read_case_table,
    write_case_index,
)
from panorama_pdac.errors import ConfigError, DataError, PanoramaError


def _fails_naming(args: dict, *needles: str, **kwargs) -> str:
    """index_cases must fail; its message must contain every needle. Returns the message."""
    with pytest.raises(PanoramaError) as err:
        index_cases(**args, **kwargs)
    message = str(err.value)
    for needle in needles:
        assert needle in message, f"{needle!r} not in:\n{message}"
    return message


def _overwrite_label(path, arr, **geometry) -> None:
    sitk.WriteImage(volume(arr, **geometry), str(path), useCompression=True)


def test_good_data_set_gives_one_row_per_case(tmp_path):
    index = index_cases(**make_dataset(tmp_path))
    cases = index.cases
    assert list(cases.columns) == CASE_COLUMNS
    assert list(cases["case_id"]) == sorted(GOOD_CASES)
    assert index.problems == [] and index.excluded.empty
    by_id = cases.set_index("case_id")
    for case_id, spec in GOOD_CASES.items():
        assert by_id.at[case_id, "pdac_voxels"] == spec["pdac"] == by_id.at[case_id, "pdac_sheet"]
        assert by_id.at[case_id, "label_source"] == spec["source"]
    assert by_id.at["100002_00002", "patient_id"] == "100002"
    assert by_id.at["100002_00002", "study_id"] == "00002"
    assert set(cases["size"]) == {"12x10x6"}  # x, y, z
    assert set(cases["spacing"]) == {"0.8x0.8x2.5"}
    s = index.summary
    assert (s["cases"], s["patients"], s["pdac_cases"], s["non_pdac_cases"]) == (4, 3, 2, 2)
    assert s["label_source"] == {"manual": 2, "automatic": 2}
    assert s["manual_labels_sheet_non_pdac"] == {"100003_00001": False}


def test_written_index_reads_back_with_its_types(tmp_path):
    index = index_cases(**make_dataset(tmp_path / "raw"))
    out = tmp_path / "dataset"
    write_case_index(index, out / "cases.tsv", out / "excluded.tsv", out / "summary.json")
    back = read_case_table(out / "cases.tsv")
    assert back["patient_id"].tolist() == index.cases["patient_id"].tolist()
    assert back["study_id"].iloc[0] == "00001"
    assert back["pdac_voxels"].dtype == bool
    assert back["pdac_voxels"].tolist() == back["pdac_sheet"].tolist()
    assert (out / "excluded.tsv").read_text().strip() == "case_id\tfile\tproblem"


def test_sheet_rows_without_image_are_counted_not_errors(tmp_path):
    args = make_dataset(tmp_path, extra_sheet_rows={"100009_00001": True, "100010_00001": False})
    index = index_cases(**args)
    assert index.summary["sheet_rows"] == 6
    assert index.summary["sheet_rows_without_image"] == 2
    assert index.problems == []


def test_image_and_label_without_sheet_row_are_reported(tmp_path):
    args = make_dataset(tmp_path)
    write_case(tmp_path, "100050_00001", pdac=True)
    index = index_cases(**args)
    assert index.summary["not_in_sheet"] == ["100050_00001"]
    row = index.cases.set_index("case_id").loc["100050_00001"]
    assert row["pdac_voxels"] and pd.isna(row["pdac_sheet"])


def test_image_without_label(tmp_path):
    args = make_dataset(tmp_path)
    image, label = write_case(tmp_path, "100040_00001", pdac=False)
    label.unlink()
    _fails_naming(args, "100040_00001", str(image), "without a label")


def test_label_without_image_is_listed_but_not_fatal(tmp_path):
    # The labels repository holds every case; users often download only some image batches.
    args = make_dataset(tmp_path)
    image, _ = write_case(tmp_path, "100040_00001", pdac=False)
    image.unlink()
    index = index_cases(**args)
    assert index.summary["labels_without_image"] == ["100040_00001"]
    assert "100040_00001" not in set(index.cases["case_id"])


@pytest.mark.parametrize("role", ["image", "label"])
def test_truncated_gzip(tmp_path, role):
    args = make_dataset(tmp_path)
    image, label = write_case(tmp_path, "100040_00001", pdac=False)
    path = image if role == "image" else label
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])  # header intact, voxel data cut short
    _fails_naming(args, "100040_00001", str(path), "truncated or corrupt")


def test_corrupt_file(tmp_path):
    args = make_dataset(tmp_path)
    image, _ = write_case(tmp_path, "100040_00001", pdac=False)
    with gzip.open(image, "wb") as f:
        f.write(b"not a nifti header" * 40)
    _fails_naming(args, "100040_00001", str(image), "unreadable or corrupt")


@pytest.mark.parametrize("geometry, what", [
    (dict(spacing=(0.8, 0.8, 3.0)), "spacing"),
    (dict(origin=(-100.0, 50.0, -297.5)), "origin"),
    (dict(direction=OBLIQUE), "direction"),
])
def test_label_geometry_differs(tmp_path, geometry, what):
    args = make_dataset(tmp_path)
    _, label = write_case(tmp_path, "100040_00001", pdac=False)
    _overwrite_label(label, label_array(False), **geometry)
    message = _fails_naming(args, "100040_00001", str(label), "geometry differs", what)
    # Only the differing property is named: the others match.
    assert all(other not in message for other in {"size", "spacing", "origin", "direction"} - {what})


def test_label_size_differs(tmp_path):
    args = make_dataset(tmp_path)
    _, label = write_case(tmp_path, "100040_00001", pdac=False)
    _overwrite_label(label, label_array(False)[:-1])
    _fails_naming(args, str(label), "size (12, 10, 5) vs image (12, 10, 6)")


def test_shared_oblique_direction_is_no_mismatch(tmp_path):
    # Real oblique scans: image and label share the 0.01 off-diagonals; that must not be flagged.
    index = index_cases(**make_dataset(tmp_path))
    assert "100002_00002" in set(index.cases["case_id"])  # the OBLIQUE case of GOOD_CASES


@pytest.mark.parametrize("value, shown", [(7, "7"), (2.5, "2.5"), (-1, "-1")])
def test_label_values_outside_range_or_fractional(tmp_path, value, shown):
    args = make_dataset(tmp_path)
    _, label = write_case(tmp_path, "100040_00001", pdac=False)
    arr = label_array(False)
    arr[0, 0, 0] = value
    _overwrite_label(label, arr)
    _fails_naming(args, str(label), "outside 0-6 or not whole numbers", shown)


@pytest.mark.parametrize("voxels, sheet, wording", [
    (False, True, "says PDAC but the label has no lesion voxel"),
    (True, False, "has lesion voxels (value 1) but the clinical sheet says non-PDAC"),
])
def test_sheet_disagrees_with_voxels(tmp_path, voxels, sheet, wording):
    cases = {**GOOD_CASES, "100040_00001": dict(pdac=voxels)}
    args = make_dataset(tmp_path, cases)
    write_sheet(tmp_path / "labels" / "clinical_information.xlsx",
                {**{c: s["pdac"] for c, s in GOOD_CASES.items()}, "100040_00001": sheet})
    _fails_naming(args, "100040_00001", "automatic_labels/100040_00001.nii.gz", wording)


def test_duplicated_case_across_batch_folders(tmp_path):
    make_dataset(tmp_path, {}, extra_sheet_rows={"100040_00001": False})
    write_case(tmp_path, "100040_00001", pdac=False, image_dir="batch1")
    write_case(tmp_path, "100041_00001", pdac=False, image_dir="batch2")
    shutil.copy(tmp_path / "batch1" / "100040_00001_0000.nii.gz", tmp_path / "batch2")
    args = {"image_dirs": [str(tmp_path / "batch*")], "labels_dir": str(tmp_path / "labels"),
            "clinical_path": str(tmp_path / "labels" / "clinical_information.xlsx")}
    _fails_naming(args, "100040_00001", str(tmp_path / "batch1" / "100040_00001_0000.nii.gz"),
                  str(tmp_path / "batch2" / "100040_00001_0000.nii.gz"))


def test_a_folder_reached_twice_is_no_duplicate(tmp_path):
    args = make_dataset(tmp_path)
    args["image_dirs"] = [str(tmp_path / "images"), str(tmp_path / "ima*")]
    assert len(index_cases(**args).cases) == len(GOOD_CASES)


@pytest.mark.parametrize("name", ["100040_1_0000.nii.gz", "100040_00001.nii.gz", "patient7_0000.nii.gz"])
def test_image_name_does_not_parse(tmp_path, name):
    args = make_dataset(tmp_path)
    image, _ = write_case(tmp_path, "100001_00001", pdac=True, source="manual")
    image.rename(image.with_name(name))
    _fails_naming(args, str(image.with_name(name)), "does not parse")


def test_label_name_does_not_parse(tmp_path):
    args = make_dataset(tmp_path)
    _, label = write_case(tmp_path, "100040_00001", pdac=False)
    bad = label.with_name("100040_00001_0000.nii.gz")  # the image's name, a common mix-up
    label.rename(bad)
    _fails_naming(args, str(bad), "does not parse")


def test_case_in_both_label_folders(tmp_path):
    args = make_dataset(tmp_path)
    shutil.copy(tmp_path / "labels" / "automatic_labels" / "100002_00001.nii.gz", tmp_path / "labels" / "manual_labels")
    _fails_naming(args, "100002_00001", "manual_labels/100002_00001.nii.gz", "automatic_labels/100002_00001.nii.gz",
                  "disjoint")


def test_fail_lists_every_problem(tmp_path):
    args = make_dataset(tmp_path)
    a, _ = write_case(tmp_path, "100040_00001", pdac=False)
    _, b = write_case(tmp_path, "100041_00001", pdac=False)
    (tmp_path / "labels" / "automatic_labels" / "100040_00001.nii.gz").unlink()
    arr = label_array(False)
    arr[0, 0, 0] = 9
    _overwrite_label(b, arr)
    message = _fails_naming(args, "2 problem(s)", str(a), str(b), "on_invalid: skip")
    assert message.count("\n") == 2


def test_skip_mode_keeps_good_cases_and_writes_excluded(tmp_path):
    args = make_dataset(tmp_path / "raw")
    write_case(tmp_path / "raw", "100040_00001", pdac=False)
    _, label = write_case(tmp_path / "raw", "100041_00001", pdac=False)
    (tmp_path / "raw" / "labels" / "automatic_labels" / "100040_00001.nii.gz").unlink()
    _overwrite_label(label, label_array(False)[:, :, :-1])
    index = index_cases(**args, on_invalid="skip", threads=2)
    assert list(index.cases["case_id"]) == sorted(GOOD_CASES)
    out = tmp_path / "dataset"
    write_case_index(index, out / "cases.tsv", out / "excluded.tsv", out / "summary.json")
    excluded = (out / "excluded.tsv").read_text().splitlines()
    assert excluded[0] == "case_id\tfile\tproblem"
    assert sorted(line.split("\t")[0] for line in excluded[1:]) == ["100040_00001", "100041_00001"]
    assert str(label) in (out / "excluded.tsv").read_text()
    assert index.summary["excluded_cases"] == 2 and index.summary["cases"] == len(GOOD_CASES)


def test_skip_mode_with_nothing_left_says_so(tmp_path):
    make_dataset(tmp_path, {}, extra_sheet_rows={"100040_00001": False})
    image, _ = write_case(tmp_path, "100040_00001", pdac=False)
    image.write_bytes(image.read_bytes()[:200])
    args = {"image_dirs": [str(tmp_path / "images")], "labels_dir": str(tmp_path / "labels"),
            "clinical_path": str(tmp_path / "labels" / "clinical_information.xlsx")}
    _fails_naming(args, "no valid case", on_invalid="skip")


def test_empty_or_missing_image_folder(tmp_path):
    args = make_dataset(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .nii.gz images here"):
        index_cases(**{**args, "image_dirs": [str(tmp_path / "empty")]})
    with pytest.raises(DataError, match="no image folder matches"):
        index_cases(**{**args, "image_dirs": [str(tmp_path / "nowhere" / "*")]})


def test_labels_folder_without_label_subfolders(tmp_path):
    args = make_dataset(tmp_path)
    with pytest.raises(DataError, match="neither manual_labels nor automatic_labels"):
        index_cases(**{**args, "labels_dir": str(tmp_path / "images")})


def test_on_invalid_must_be_fail_or_skip(tmp_path):
    with pytest.raises(ConfigError):
        index_cases(**make_dataset(tmp_path), on_invalid="ignore")


def test_threads_give_the_same_table(tmp_path):
    args = make_dataset(tmp_path)
    one = index_cases(**args, threads=1).cases
    two = index_cases(**args, threads=3).cases
    assert one.equals(two)


def test_large_slices_are_read_in_several_slabs(tmp_path, monkeypatch):
    # A lesion only in the last slab must still be found when the volume is read slab-wise.
    import panorama_pdac.cases as cases_module

    monkeypatch.setattr(cases_module, "SLAB_VOXELS", 12 * 10 * 2)  # two slices per slab
    args = make_dataset(tmp_path, {})
    arr = label_array(False)
    arr[-1, 0, 0] = 1
    _, label = write_case(tmp_path, "100040_00001", pdac=False)
    _overwrite_label(label, arr)
    write_sheet(tmp_path / "labels" / "clinical_information.xlsx", {"100040_00001": True})
    assert index_cases(**args).cases["pdac_voxels"].tolist() == [True]


def test_each_files_size_and_digest_are_recorded(tmp_path):
    index = index_cases(**make_dataset(tmp_path))
    for row in index.cases.itertuples():
        for role in ("image", "label"):
            data = Path(getattr(row, role)).read_bytes()
            assert getattr(row, f"{role}_bytes") == len(data)
            assert getattr(row, f"{role}_sha256") == hashlib.sha256(data).hexdigest()
    sheet = (tmp_path / "labels" / "clinical_information.xlsx").read_bytes()
    assert index.summary["clinical_sheet"] == {"file": "clinical_information.xlsx", "bytes": len(sheet),
                                               "sha256": hashlib.sha256(sheet).hexdigest()}
    # tmp_path is no git clone: recorded, with git's reason, not raised
    assert index.summary["labels_git"]["commit"] is None and index.summary["labels_git"]["reason"]
    out = tmp_path / "out"
    write_case_index(index, out / "cases.tsv", out / "excluded.tsv", out / "summary.json")
    back = read_case_table(out / "cases.tsv")
    assert back["label_sha256"].tolist() == index.cases["label_sha256"].tolist()
