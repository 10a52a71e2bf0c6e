"""The clinical sheet: xlsx and CSV give the same table; a bad sheet is one sentence naming the file."""

from __future__ import annotations

import pandas as pd
import pytest
from fixtures_data import write_sheet

from panorama_pdac.clinical import read_clinical
from panorama_pdac.errors import DataError

SHEET = {"100001_00001": True, "100002_00001": False, "100002_00002": True}


@pytest.mark.parametrize("name", ["clinical_information.xlsx", "clinical_information.csv"])
def test_reads_xlsx_and_csv_alike(tmp_path, name):
    table = read_clinical(write_sheet(tmp_path / name, SHEET))
    assert list(table.index) == list(SHEET)
    assert list(table.columns) == ["patient_id", "study_id", "pdac_sheet", "age", "sex", "scanner"]
    assert table["pdac_sheet"].tolist() == list(SHEET.values())
    assert table.loc["100002_00002", ["patient_id", "study_id"]].tolist() == ["100002", "00002"]
    assert table["age"].tolist() == [68, 68, 68]
    assert table["sex"].tolist() == ["F"] * 3


def test_semicolon_csv_and_missing_optional_columns(tmp_path):
    path = tmp_path / "sheet.csv"
    path.write_text("PANORAMA_patient_id;PANORAMA_study_id;label;patient_age\n"
                    "100001;100001_00001;PDAC;\n100002;100002_00001;non-PDAC;071Y\n")
    table = read_clinical(path)
    assert table["pdac_sheet"].tolist() == [True, False]
    assert pd.isna(table.at["100001_00001", "age"]) and table.at["100002_00001", "age"] == 71
    assert table["scanner"].isna().all()


@pytest.mark.parametrize("name", ["clinical_information.xlsx", "clinical_information.csv"])
def test_a_sheet_with_a_header_and_no_rows_is_an_error(tmp_path, name):
    # Accepted, it would leave every case without its row and the sheet-versus-voxel check without a case.
    path = write_sheet(tmp_path / name, {})
    with pytest.raises(DataError, match="header but no rows") as err:
        read_clinical(path)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="clinical sheet not found") as err:
        read_clinical(tmp_path / "nope.xlsx")
    assert str(tmp_path / "nope.xlsx") in str(err.value)


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "sheet.csv"
    pd.DataFrame({"PANORAMA_patient_id": [100001], "diagnosis": ["PDAC"]}).to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        read_clinical(path)
    message = str(err.value)
    assert str(path) in message and "PANORAMA_study_id, label" in message and "diagnosis" in message
    assert "\n" not in message


def test_unreadable_xlsx(tmp_path):
    path = tmp_path / "clinical_information.xlsx"
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(DataError, match="cannot read the clinical sheet") as err:
        read_clinical(path)
    assert str(path) in str(err.value)


def test_wrong_format(tmp_path):
    path = tmp_path / "clinical_information.json"
    path.write_text("{}")
    with pytest.raises(DataError, match=r"\.xlsx file or a \.csv"):
        read_clinical(path)


@pytest.mark.parametrize("row, wording", [
    ({"PANORAMA_patient_id": 100004, "PANORAMA_study_id": "100004-1", "label": "PDAC"}, "100004-1"),
    ({"PANORAMA_patient_id": 100999, "PANORAMA_study_id": "100004_00001", "label": "PDAC"},
     "patient id disagrees with the study id: 100004_00001 (patient 100999)"),
    ({"PANORAMA_patient_id": 100004, "PANORAMA_study_id": "100004_00001", "label": "cancer"},
     "label must be PDAC or non-PDAC: 100004_00001 (cancer)"),
    ({"PANORAMA_patient_id": 100001, "PANORAMA_study_id": "100001_00001", "label": "PDAC"},
     "listed more than once: 100001_00001"),
])
def test_bad_rows_are_named(tmp_path, row, wording):
    path = write_sheet(tmp_path / "sheet.csv", SHEET)
    pd.concat([pd.read_csv(path), pd.DataFrame([row])]).to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        read_clinical(path)
    assert wording in str(err.value) and str(path) in str(err.value)
