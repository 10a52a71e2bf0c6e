"""Cross-validation folds in nnU-Net's splits_final.json format: a list of {"train": [...], "val": [...]}.

Folds group by patient (METHOD.md §1: the official baseline's folds put studies of one patient on both
sides) and are stratified by PDAC, a patient counting as PDAC if any of their studies is, so that every
validation fold holds both classes and AUROC is defined on each.
"""

from __future__ import annotations

import os
import re

import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from .errors import ConfigError, DataError, PanoramaError
from .io import read_json, write_json

OFFICIAL_FOLD_KEY = re.compile(r"^Fold (\d+) validation$")  # DIAGNijmegen/PANORAMA_baseline's *_folds.json


def _splits_from_val(cases: pd.DataFrame, val_sets: list[list[str]]) -> list[dict[str, list[str]]]:
    all_ids = set(cases["case_id"])
    return [{"train": sorted(all_ids - set(val)), "val": sorted(val)} for val in val_sets]


def make_folds(cases: pd.DataFrame, n_folds: int = 5, seed: int = 12345) -> list[dict[str, list[str]]]:
    """Patient-grouped, PDAC-stratified folds of the case table (case_id, patient_id, pdac_voxels).

    Raises ConfigError if there are fewer PDAC (or non-PDAC) patients than folds: some validation fold
    would then lack a class.
    """
    cases = cases.sort_values("case_id", ignore_index=True)  # folds depend on the cases, not on row order
    pdac = cases.groupby("patient_id")["pdac_voxels"].transform("any").astype(bool)  # per case: its patient's
    per_patient = pdac.groupby(cases["patient_id"]).first()
    for name, n in (("PDAC", int(per_patient.sum())), ("non-PDAC", int((~per_patient).sum()))):
        if n < n_folds:
            raise ConfigError(f"{n} {name} patient(s) cannot fill {n_folds} folds: every validation fold needs "
                              "both classes; lower folds.n_folds or add cases")
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    ids = cases["case_id"].to_numpy()
    val_sets = [list(ids[val]) for _, val in splitter.split(ids, pdac.to_numpy(), groups=cases["patient_id"])]
    splits = _splits_from_val(cases, val_sets)
    # StratifiedGroupKFold balances greedily; with enough patients of each class this holds, but
    # the promise above is checked, not assumed.
    pdac_ids = set(cases.loc[cases["pdac_voxels"].astype(bool), "case_id"])
    for k, split in enumerate(splits):
        n_pdac = len(pdac_ids & set(split["val"]))
        if n_pdac in (0, len(split["val"])):
            raise PanoramaError(f"fold {k} validation lacks a class ({n_pdac} PDAC of {len(split['val'])}); "
                                "try another folds.seed")
    return splits


def fold_table(cases: pd.DataFrame, splits: list[dict[str, list[str]]]) -> pd.DataFrame:
    """Per fold, the validation side: cases, patients, PDAC and non-PDAC cases."""
    by_id = cases.set_index("case_id")
    rows = []
    for k, split in enumerate(splits):
        val = by_id.loc[split["val"]]
        n_pdac = int(val["pdac_voxels"].astype(bool).sum())
        rows.append({"fold": k, "cases": len(val), "patients": int(val["patient_id"].nunique()),
                     "pdac_cases": n_pdac, "non_pdac_cases": len(val) - n_pdac})
    return pd.DataFrame(rows)


def import_official_folds(
    path: str | os.PathLike, cases: pd.DataFrame
) -> tuple[list[dict[str, list[str]]], list[str]]:
    """Folds from the official baseline's `{"Fold k validation": [case ids]}` JSON, restricted to `cases`.

    Returns the splits and warnings: patients whose studies fall in different folds (the leak we
    avoid in make_folds), listed cases that are absent here, and cases here that no fold validates
    (they are then only ever trained on).
    """
    folds = read_json(path)
    if not isinstance(folds, dict) or not folds:
        raise DataError(path, 'expected {"Fold 0 validation": [case ids], ...}')
    keys = {}
    for key in folds:
        m = OFFICIAL_FOLD_KEY.match(key)
        if not m or not isinstance(folds[key], list):
            raise DataError(path, f'unexpected entry "{key}": expected "Fold <k> validation": [case ids]')
        keys[int(m[1])] = key
    if sorted(keys) != list(range(len(keys))):
        raise DataError(path, f"fold numbers {sorted(keys)} are not 0..{len(keys) - 1}")
    listed = pd.Series([k for k in keys for _ in folds[keys[k]]], index=[c for k in keys for c in folds[keys[k]]],
                       dtype=int, name="fold")
    if listed.index.duplicated().any():
        raise DataError(path, "case(s) in more than one fold: "
                        + ", ".join(listed.index[listed.index.duplicated()].unique()[:5]))

    here = set(cases["case_id"])
    warnings = []
    absent = sorted(set(listed.index) - here)
    if absent:
        warnings.append(f"{len(absent)} case(s) of the fold file are not in the case table (ignored)")
    unassigned = sorted(here - set(listed.index))
    if unassigned:
        warnings.append(f"{len(unassigned)} case(s) are in no fold and will never be validated: "
                        + ", ".join(unassigned[:5]) + (" ..." if len(unassigned) > 5 else ""))
    fold_of = cases.set_index("case_id")["patient_id"].to_frame().join(listed, how="inner")
    split_patients = fold_of.groupby("patient_id")["fold"].nunique()
    split_patients = sorted(split_patients[split_patients > 1].index)
    if split_patients:
        warnings.append(f"{len(split_patients)} patient(s) have studies in different folds (training on one "
                        "study of a patient while validating on another): " + ", ".join(split_patients))
    val_sets = [sorted(fold_of.index[fold_of["fold"] == k]) for k in sorted(keys)]
    return _splits_from_val(cases, val_sets), warnings


def write_splits(splits: list[dict[str, list[str]]], path: str | os.PathLike) -> None:
    """splits_final.json, as nnU-Net reads it from its preprocessed dataset folder."""
    write_json([{"train": list(s["train"]), "val": list(s["val"])} for s in splits], path)
