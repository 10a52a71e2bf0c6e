"""Case ingestion: every problem of DATA.md is found, named (case + file + what), and all of them at once."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from html import escape as html_escape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from fixtures_data import (
    GOOD_CASES,
    OBLIQUE,
    ct_array,
    label_array,
    make_dataset,
    make_planted_dataset,
    volume,
    write_case,
    write_sheet,
)

from panorama_pdac.cases import (
    CASE_COLUMNS,
    REPORT_PROBLEMS,
    data_summary_sections,
    index_cases,
    ingestion_report,
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


def _report(index) -> str:
    return ingestion_report(index.summary, index.excluded, "results/dataset/excluded.tsv")


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


def test_a_case_missing_from_the_sheet_follows_on_invalid(tmp_path):
    # Its sheet-versus-voxel check cannot be made: an error, or (skip) an exclusion, never a silent pass.
    args = make_dataset(tmp_path)
    write_case(tmp_path, "100050_00001", pdac=True)
    _fails_naming(args, "100050_00001", args["clinical_path"], "no row for this case")
    index = index_cases(**args, on_invalid="skip")
    assert index.summary["not_in_sheet"] == ["100050_00001"]
    assert "100050_00001" not in set(index.cases["case_id"])
    assert index.excluded.to_dict("records") == [
        {"case_id": "100050_00001", "file": args["clinical_path"], "problem": index.problems[0].problem}]
    assert "1 case with files but no clinical sheet row: 100050_00001" in _report(index)


def test_an_empty_sheet_is_an_error_naming_it(tmp_path):
    args = make_dataset(tmp_path)
    write_sheet(Path(args["clinical_path"]), {})
    for on_invalid in ("fail", "skip"):
        with pytest.raises(DataError, match="header but no rows") as err:
            index_cases(**args, on_invalid=on_invalid)
        assert args["clinical_path"] in str(err.value)


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
    assert "1 label without an image (their image batch not downloaded?): 100040_00001" in _report(index)


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
    args = make_dataset(tmp_path, extra_sheet_rows={"100040_00001": False, "100041_00001": False})
    a, _ = write_case(tmp_path, "100040_00001", pdac=False)
    _, b = write_case(tmp_path, "100041_00001", pdac=False)
    (tmp_path / "labels" / "automatic_labels" / "100040_00001.nii.gz").unlink()
    arr = label_array(False)
    arr[0, 0, 0] = 9
    _overwrite_label(b, arr)
    message = _fails_naming(args, "2 problem(s)", str(a), str(b), "on_invalid: skip")
    assert message.count("\n") == 2


def test_skip_mode_keeps_good_cases_and_writes_excluded(tmp_path):
    args = make_dataset(tmp_path / "raw", extra_sheet_rows={"100040_00001": False, "100041_00001": False})
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
    with pytest.raises(DataError, match="no images here .* it is empty"):
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
    import panorama_pdac.io as io_module

    monkeypatch.setattr(io_module, "SLAB_VOXELS", 12 * 10 * 2)  # two slices per slab
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
    recorded = index.summary["clinical_sheet"]
    assert {k: recorded[k] for k in ("file", "bytes", "sha256")} == {
        "file": "clinical_information.xlsx", "bytes": len(sheet), "sha256": hashlib.sha256(sheet).hexdigest()}
    assert len(recorded["content_sha256"]) == 64
    # tmp_path is no git clone: recorded, with git's reason, not raised
    assert index.summary["labels_git"]["commit"] is None and index.summary["labels_git"]["reason"]
    out = tmp_path / "out"
    write_case_index(index, out / "cases.tsv", out / "excluded.tsv", out / "summary.json")
    back = read_case_table(out / "cases.tsv")
    assert back["label_sha256"].tolist() == index.cases["label_sha256"].tolist()


@pytest.mark.parametrize("image_suffix, label_suffix", [(".nii", ".nii.gz"), (".mha", ".nii.gz"), (".mha", ".mha"),
                                                        (".nii.gz", ".nii")])
def test_uncompressed_nifti_and_metaimage_are_read(tmp_path, image_suffix, label_suffix):
    # The challenge hands out .mha; an uncompressed .nii must not drop its case without a word.
    args = make_dataset(tmp_path)
    image, label = write_case(tmp_path, "100040_00001", pdac=True, image_suffix=image_suffix, label_suffix=label_suffix)
    write_sheet(Path(args["clinical_path"]), {**{c: s["pdac"] for c, s in GOOD_CASES.items()}, "100040_00001": True})
    index = index_cases(**args)
    row = index.cases.set_index("case_id").loc["100040_00001"]
    assert (row["image"], row["label"], row["pdac_voxels"]) == (str(image), str(label), True)
    assert index.summary["image_formats"][image_suffix] >= 1


@pytest.mark.parametrize("role", ["image", "label"])
@pytest.mark.parametrize("suffix", [".nii", ".mha"])
def test_a_truncated_uncompressed_file_is_caught(tmp_path, role, suffix):
    args = make_dataset(tmp_path, extra_sheet_rows={"100040_00001": False})
    image, label = write_case(tmp_path, "100040_00001", pdac=False, image_suffix=suffix, label_suffix=suffix,
                              dtype=np.uint8)
    path = image if role == "image" else label
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    message = _fails_naming(args, "1 problem(s)", "100040_00001", str(path))
    assert "truncated or corrupt voxel data" in message or "unreadable or corrupt image header" in message


@pytest.mark.parametrize("name, wording", [
    ("100040_00001_0000.nrrd", "unsupported format (.nrrd)"),
    ("100040_00001_0000.dcm", "unsupported format (.dcm)"),
    ("100040_00001_0000.nii.bz2", "unsupported format (.nii.bz2)"),
    ("100040_00001_0000.mhd", "unsupported format (.mhd)"),
    ("100040_00001.zip", "an archive (.zip): unpack it"),
    ("100040_00001_0001.nii.gz", "channel _0001: PANORAMA images are single-channel CT"),
])
def test_an_image_in_a_form_not_read_is_named(tmp_path, name, wording):
    args = make_dataset(tmp_path)
    image, _ = write_case(tmp_path, "100040_00001", pdac=False)
    unusable = image.with_name(name)
    (image.rename if "_0001" not in name else lambda p: shutil.copy(image, p))(unusable)
    _fails_naming(args, "100040_00001", str(unusable), wording)
    # skip: the case is left out whole and listed; nothing is dropped without a word
    index = index_cases(**args, on_invalid="skip")
    assert "100040_00001" not in set(index.cases["case_id"])
    assert index.summary["labels_without_image"] == []
    assert str(unusable) in set(index.excluded["file"]) and str(unusable) in _report(index)


def test_dicom_without_a_suffix_is_named(tmp_path):
    args = make_dataset(tmp_path)
    dicom = tmp_path / "images" / "IM000001"
    dicom.write_bytes(bytes(128) + b"DICM" + bytes(64))
    _fails_naming(args, str(dicom), "unsupported format (DICOM)")


def test_a_label_in_a_format_not_read_is_named(tmp_path):
    args = make_dataset(tmp_path)
    _, label = write_case(tmp_path, "100040_00001", pdac=False)
    label.rename(label.with_name("100040_00001.nrrd"))
    _fails_naming(args, "100040_00001", str(label.with_name("100040_00001.nrrd")), "labels are read from")


def test_the_same_case_in_two_formats_is_a_duplicate(tmp_path):
    args = make_dataset(tmp_path)
    image, _ = write_case(tmp_path, "100040_00001", pdac=False)
    sitk.WriteImage(volume(ct_array()), str(image.with_name("100040_00001_0000.mha")))
    _fails_naming(args, "100040_00001", str(image), str(image.with_name("100040_00001_0000.mha")), "also in")


def test_other_files_are_listed_as_ignored(tmp_path):
    args = make_dataset(tmp_path)
    notes = [tmp_path / "images" / "README.txt", tmp_path / "labels" / "manual_labels" / "checked.csv"]
    for path in notes:
        path.write_text("x")
    (tmp_path / "images" / ".DS_Store").write_text("x")  # hidden: not data
    index = index_cases(**args)
    assert index.problems == []
    assert index.summary["ignored_files"] == [str(p) for p in sorted(notes)]
    assert "2 other files in the data folders ignored (not image data)" in _report(index)


def test_images_only_in_subfolders_are_pointed_to(tmp_path):
    args = make_dataset(tmp_path)
    (tmp_path / "images").rename(tmp_path / "batch1")
    (tmp_path / "images").mkdir()
    (tmp_path / "batch1").rename(tmp_path / "images" / "batch1")
    with pytest.raises(DataError, match=r"subfolders batch1/ hold images: list them, or use the glob .*images/\*"):
        index_cases(**args)


def test_report_shows_the_first_problems_and_where_the_rest_are(tmp_path):
    args = make_dataset(tmp_path)
    for i in range(REPORT_PROBLEMS + 3):
        (tmp_path / "images" / f"scan{i:02d}_0000.nii.gz").write_bytes(b"x")
    report = _report(index_cases(**args, on_invalid="skip"))
    assert f"{REPORT_PROBLEMS + 3} files without a case id unusable" in report
    assert "scan00_0000.nii.gz" in report and f"scan{REPORT_PROBLEMS + 2}_0000.nii.gz" not in report
    assert "... and 3 more in results/dataset/excluded.tsv" in report


def test_planted_defects_in_skip_mode_are_all_listed_and_agree(tmp_path):
    """One case (or file) per DATA.md defect and per unusable file: skip keeps exactly the good cases; the
    terminal report, excluded.tsv and the report's data page name every exclusion, and agree."""
    from panorama_pdac.io import read_json, read_tsv
    from panorama_pdac.report_tables import write_html_tables

    args, expected = make_planted_dataset(tmp_path / "raw")
    index = index_cases(**args, on_invalid="skip")
    assert sorted(index.cases["case_id"]) == expected["used"]
    out = tmp_path / "dataset"
    write_case_index(index, out / "cases.tsv", out / "excluded.tsv", out / "summary.json")
    excluded = read_tsv(out / "excluded.tsv", dtype=str)
    named = {(c, f) for c, f in zip(excluded["case_id"], excluded["file"]) if isinstance(c, str)}
    assert named == set(expected["excluded"].items())
    assert sorted(excluded.loc[excluded["case_id"].isna(), "file"]) == sorted(expected["unparsed"])
    summary = read_json(out / "summary.json")
    for key in ("labels_without_image", "not_in_sheet"):
        assert summary[key] == expected[key]
    assert summary["ignored_files"] == expected["ignored"]
    assert summary["sheet_rows_without_image"] == expected["sheet_rows_without_image"]

    report = ingestion_report(summary, excluded, out / "excluded.tsv")
    page = out / "data_summary.html"
    write_html_tables("data", data_summary_sections(summary, excluded, out / "excluded.tsv"), page)
    html = page.read_text()
    for row in excluded.itertuples():
        line = f"{row.case_id if isinstance(row.case_id, str) else '(no case id)'}: {row.file}: {row.problem}"
        assert line in report
        assert f"<td>{row.file}</td>" in html and html_escape(row.problem, quote=False) in html
    assert f"{len(expected['excluded'])} cases excluded, 2 files without a case id unusable" in report
    assert str(out / "excluded.tsv") in report
    for case_id in expected["labels_without_image"] + expected["not_in_sheet"]:
        assert case_id in report and case_id in html
    assert expected["ignored"][0] in report and expected["ignored"][0] in html
    assert "images: 16 .nii.gz, 1 .nii, 1 .mha" in report
