"""Folds: patient-grouped, PDAC in every validation fold, each case validated exactly once, reproducible."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from panorama_pdac.errors import ConfigError, DataError
from panorama_pdac.io import read_json
from panorama_pdac.splits import (
    fold_table,
    import_official_folds,
    make_folds,
    write_splits,
)


def _cases(n_patients: int = 60, pdac_rate: float = 0.3, seed: int = 0) -> pd.DataFrame:
    """Case table with multi-study patients (up to 5 studies, as in PANORAMA) of mixed PDAC status."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        patient = str(100000 + p)
        for s in range(1 + (rng.random() < 0.3) * rng.integers(1, 5)):
            rows.append({"case_id": f"{patient}_{s + 1:05d}", "patient_id": patient,
                         "pdac_voxels": bool(rng.random() < pdac_rate)})
    return pd.DataFrame(rows)


def _check_folds(cases: pd.DataFrame, splits: list[dict], n_folds: int) -> None:
    assert len(splits) == n_folds
    all_ids = set(cases["case_id"])
    val_ids = [c for s in splits for c in s["val"]]
    assert sorted(val_ids) == sorted(all_ids)  # every case validated exactly once
    patient = cases.set_index("case_id")["patient_id"]
    pdac = cases.set_index("case_id")["pdac_voxels"]
    patients_seen = set()
    for s in splits:
        assert not set(s["train"]) & set(s["val"])
        assert set(s["train"]) | set(s["val"]) == all_ids
        fold_patients = set(patient[s["val"]])
        assert not fold_patients & patients_seen  # a patient lives in one fold only
        patients_seen |= fold_patients
        assert pdac[s["val"]].any() and not pdac[s["val"]].all()  # both classes in every fold


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_folds_group_patients_and_hold_both_classes(seed):
    cases = _cases(seed=seed)
    _check_folds(cases, make_folds(cases, n_folds=5, seed=12345 + seed), 5)


def test_patient_with_any_pdac_study_is_stratified_as_pdac():
    # 5 patients whose only PDAC is a second study: grouping must still spread them over the 5 folds.
    rows = []
    for p in range(5):
        rows += [{"case_id": f"10000{p}_00001", "patient_id": f"10000{p}", "pdac_voxels": False},
                 {"case_id": f"10000{p}_00002", "patient_id": f"10000{p}", "pdac_voxels": True}]
    rows += [{"case_id": f"1001{p:02d}_00001", "patient_id": f"1001{p:02d}", "pdac_voxels": False} for p in range(20)]
    cases = pd.DataFrame(rows)
    _check_folds(cases, make_folds(cases, n_folds=5), 5)


def test_same_seed_same_folds_other_seed_other_folds():
    cases = _cases()
    shuffled = cases.sample(frac=1, random_state=3).reset_index(drop=True)
    assert make_folds(cases, seed=7) == make_folds(shuffled, seed=7)  # row order does not matter
    assert make_folds(cases, seed=7) != make_folds(cases, seed=8)


def test_too_few_pdac_patients():
    cases = _cases(n_patients=40, pdac_rate=0.0)
    cases.loc[:2, "pdac_voxels"] = True  # at most 3 PDAC patients
    with pytest.raises(ConfigError, match="PDAC patient"):
        make_folds(cases, n_folds=5)


def test_fold_table_counts_validation_side():
    cases = _cases()
    table = fold_table(cases, make_folds(cases))
    assert list(table.columns) == ["fold", "cases", "patients", "pdac_cases", "non_pdac_cases"]
    assert table["cases"].sum() == len(cases)
    assert table["patients"].sum() == cases["patient_id"].nunique()
    assert table["pdac_cases"].sum() == cases["pdac_voxels"].sum()
    assert (table["pdac_cases"] + table["non_pdac_cases"] == table["cases"]).all()


def test_write_splits_is_nnunet_format(tmp_path):
    cases = _cases()
    splits = make_folds(cases)
    write_splits(splits, tmp_path / "splits_final.json")
    back = read_json(tmp_path / "splits_final.json")
    assert back == splits
    assert all(set(s) == {"train", "val"} for s in back)


def _official(tmp_path, folds: dict) -> str:
    path = tmp_path / "folds.json"
    path.write_text(json.dumps(folds))
    return str(path)


def test_official_folds_warn_about_patients_across_folds(tmp_path):
    cases = pd.DataFrame({"case_id": ["100001_00001", "100001_00002", "100002_00001", "100003_00001"],
                          "patient_id": ["100001", "100001", "100002", "100003"],
                          "pdac_voxels": [True, False, False, True]})
    path = _official(tmp_path, {"Fold 0 validation": ["100001_00001", "100002_00001", "199999_00001"],
                                "Fold 1 validation": ["100001_00002", "100003_00001"]})
    splits, warnings = import_official_folds(path, cases)
    assert splits[0] == {"train": ["100001_00002", "100003_00001"], "val": ["100001_00001", "100002_00001"]}
    assert splits[1]["val"] == ["100001_00002", "100003_00001"]
    assert any("1 patient(s) have studies in different folds" in w and "100001" in w for w in warnings)
    assert any("1 case(s) of the fold file are not in the case table" in w for w in warnings)


def test_official_folds_warn_about_unassigned_cases(tmp_path):
    cases = _cases(n_patients=10)
    first = sorted(cases["case_id"])[0]
    path = _official(tmp_path, {"Fold 0 validation": list(cases["case_id"][cases["case_id"] != first])})
    splits, warnings = import_official_folds(path, cases)
    assert first in splits[0]["train"]
    assert any("never be validated" in w and first in w for w in warnings)


@pytest.mark.parametrize("folds, wording", [
    ({"fold_0": ["100001_00001"]}, "unexpected entry"),
    ({"Fold 1 validation": ["100001_00001"]}, "not 0..0"),
    ({"Fold 0 validation": ["100001_00001"], "Fold 1 validation": ["100001_00001"]}, "more than one fold"),
    ([], "expected"),
])
def test_malformed_official_folds(tmp_path, folds, wording):
    with pytest.raises(DataError, match=wording):
        import_official_folds(_official(tmp_path, folds), _cases(n_patients=5))
