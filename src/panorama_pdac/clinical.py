"""The clinical sheet of the labels repository (`clinical_information.xlsx`, or a CSV export of it).

One row per study. We keep what the pipeline uses: the patient (folds group by it), the sheet's PDAC
call (checked against the label voxels, METHOD.md §1) and the descriptors the data report shows.
A sheet that cannot be used is one error naming the file and what is wrong, never a traceback.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from .errors import DataError

CASE_ID_PATTERN = re.compile(r"^(\d{6})_(\d{5})$")  # <patient>_<study>, e.g. 100433_00001
SHEET_LABELS = {"PDAC": True, "non-PDAC": False}
# Sheet column -> our column name. The first three are required; the rest are descriptive.
_COLUMNS = {
    "PANORAMA_study_id": "case_id",
    "PANORAMA_patient_id": "patient_id",
    "label": "pdac_sheet",
    "patient_age": "age",
    "patient_sex": "sex",
    "scanner": "scanner",
}
_REQUIRED = ["PANORAMA_study_id", "PANORAMA_patient_id", "label"]
_SHOWN = 5  # offending values quoted in a message


def _quote(values) -> str:
    values = list(values)
    more = f" and {len(values) - _SHOWN} more" if len(values) > _SHOWN else ""
    return ", ".join(str(v) for v in values[:_SHOWN]) + more


def _read_raw(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix not in (".xlsx", ".csv"):
        raise DataError(path, "the clinical sheet must be an .xlsx file or a .csv export of it")
    try:
        # Everything as text: ids keep their digits, and xlsx and CSV give the same table.
        if suffix == ".xlsx":
            return pd.read_excel(path, dtype=str)
        # sep=None sniffs the delimiter: spreadsheet exports use ';' in many locales.
        return pd.read_csv(path, dtype=str, sep=None, engine="python")
    except Exception as e:  # noqa: BLE001 - openpyxl/zipfile/csv raise many types; all mean "unreadable"
        raise DataError(path, f"cannot read the clinical sheet ({type(e).__name__}: {e})") from e


def read_clinical(path: str | os.PathLike) -> pd.DataFrame:
    """Read and check the clinical sheet.

    Returns a DataFrame indexed by case id (`100433_00001`) with columns patient_id (`100433`),
    study_id (`00001`), pdac_sheet (bool), age (years, nullable int), sex, scanner.
    Raises DataError (naming the file) if the sheet is missing or unreadable, lacks a required column,
    has no rows, or has rows whose study id does not parse, whose patient id disagrees with the study id, whose
    label is not PDAC/non-PDAC, or whose study id repeats.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "clinical sheet not found")
    raw = _read_raw(path)
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [c for c in _REQUIRED if c not in raw.columns]
    if missing:
        raise DataError(path, f"missing required column(s) {', '.join(missing)} (found: {', '.join(raw.columns)})")
    if raw.empty:
        # Every case would then lack its row, and the sheet-versus-voxel check would have nothing to check.
        raise DataError(path, "the clinical sheet has a header but no rows (expected one row per study: "
                              f"{', '.join(_REQUIRED)}, ...)")

    # Optional columns absent from the sheet become empty; "string" keeps missing cells as <NA>.
    table = raw.reindex(columns=list(_COLUMNS)).rename(columns=_COLUMNS).astype("string")
    table = table.apply(lambda col: col.str.strip())
    parts = table["case_id"].str.extract(CASE_ID_PATTERN)
    problems = []
    if parts[0].isna().any():
        bad = table.loc[parts[0].isna(), "case_id"].fillna("(empty)")
        problems.append(f"study ids not of the form <6-digit patient>_<5-digit study>: {_quote(bad)}")
    mismatch = (parts[0] != table["patient_id"].str.zfill(6)).fillna(parts[0].notna())
    if mismatch.any():
        bad = table.loc[mismatch].apply(lambda r: f"{r.case_id} (patient {r.patient_id})", axis=1)
        problems.append(f"patient id disagrees with the study id: {_quote(bad)}")
    unknown = ~table["pdac_sheet"].isin(list(SHEET_LABELS))
    if unknown.any():
        bad = table.loc[unknown].apply(lambda r: f"{r.case_id} ({r.pdac_sheet})", axis=1)
        problems.append(f"label must be PDAC or non-PDAC: {_quote(bad)}")
    repeated = table["case_id"].dropna()[table["case_id"].dropna().duplicated()]
    if len(repeated):
        problems.append(f"study ids listed more than once: {_quote(repeated.unique())}")
    if problems:
        raise DataError(path, "; ".join(problems))

    table["patient_id"] = parts[0]
    table["study_id"] = parts[1]
    table["pdac_sheet"] = table["pdac_sheet"].map(SHEET_LABELS).astype(bool)
    # "068Y" -> 68; anything else (empty for public sources) stays missing.
    table["age"] = pd.to_numeric(table["age"].str.extract(r"^(\d+)Y$")[0], errors="coerce").astype("Int64")
    columns = ["patient_id", "study_id", "pdac_sheet", "age", "sex", "scanner"]
    return table.set_index("case_id")[columns]
