"""The report's table of whether the classification head learns, from the jobs' head_validation.json."""

from __future__ import annotations

import numpy as np
import pytest

from panorama_pdac.head_learning import head_learning_summary, head_learning_table


def _validation(fold: int, probabilities: dict[str, tuple[int, float]], losses: list) -> dict:
    return {"fold": fold, "aggregation": "mean", "case_auroc": None,
            "case_auroc_by_aggregation": {"mean": 0.5, "max": None, "top_k": 1.0},
            "cases": {k: {"pdac": y, "pdac_probability": p} for k, (y, p) in probabilities.items()},
            "train_cls_loss": losses}


def test_rows_per_job_and_pooled_over_folds():
    validations = {
        ("ce", 0, 1): _validation(0, {"a": (1, 0.6), "b": (0, 0.6)}, [None, None]),
        ("ce", 1, 1): _validation(1, {"c": (1, 0.6), "d": (0, 0.6)}, [None, None]),
        ("ce", 0, 2): _validation(0, {"a": (1, 0.9), "b": (0, 0.2)}, [0.7, 0.5, 0.3]),
        ("ce", 1, 2): _validation(1, {"c": (1, 0.3), "d": (0, 0.1)}, [0.8, 0.4]),
    }
    table = head_learning_table(validations)
    jobs = table[table["fold"] != "pooled"].set_index(["fold", "step"])
    assert jobs.loc[("0", 2), "cls_loss_first_epoch"] == 0.7 and jobs.loc[("0", 2), "cls_loss_last_epoch"] == 0.3
    assert np.isnan(jobs.loc[("0", 1), "cls_loss_last_epoch"])  # step 1 trains no classification
    assert jobs.loc[("0", 2), "case_auroc"] == 1.0 and jobs.loc[("0", 1), "case_auroc"] == 0.5
    assert np.isnan(jobs.loc[("0", 2), "auroc_max"]) and jobs.loc[("0", 2), "auroc_top_k"] == 1.0
    pooled = table[table["fold"] == "pooled"].set_index("step")
    # pooled over folds: PDAC 0.9, 0.3 against non-PDAC 0.2, 0.1 -> every pair ranked right
    assert pooled.loc[2, "case_auroc"] == 1.0 and pooled.loc[2, "n_cases"] == 4 and pooled.loc[2, "n_pdac"] == 2
    assert pooled.loc[1, "case_auroc"] == 0.5
    assert head_learning_summary(table) == ["ce: after step 1 0.500; after step 2 1.000"]


def test_pooling_is_not_the_mean_of_fold_aurocs():
    # each fold ranks its own cases perfectly, but the folds' scales differ: pooled, they interleave
    validations = {("ce", 0, 2): _validation(0, {"a": (1, 0.9), "b": (0, 0.8)}, [0.5]),
                   ("ce", 1, 2): _validation(1, {"c": (1, 0.3), "d": (0, 0.2)}, [0.5])}
    pooled = head_learning_table(validations).query("fold == 'pooled'")
    assert pooled["case_auroc"].item() == pytest.approx(0.75)
