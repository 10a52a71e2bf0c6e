"""Does the classification head learn? The per-job case-level validations of the stage-2 steps
(`head_validation.json`, written by the multi-task trainers) gathered into one table for the report."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .nnunet.multitask_trainers import patch_auroc


def _auroc(cases: list[dict]) -> float:
    auroc = patch_auroc(np.array([c["pdac"] for c in cases]), np.array([c["pdac_probability"] for c in cases]))
    return np.nan if auroc is None else auroc


def _loss(values: list) -> tuple[float, float]:
    known = [v for v in values if v is not None]
    return (known[0], known[-1]) if known else (np.nan, np.nan)


def head_learning_table(validations: dict[tuple[str, int, int], dict]) -> pd.DataFrame:
    """One row per (variant, fold, step) job: its classification loss on training patches (first and last
    epoch) and the case-level AUROC on the fold's validation cases under each window aggregation; then one
    "pooled" row per (variant, step) over all folds' validation cases (the configured aggregation)."""
    rows, pooled = [], {}
    for (variant, fold, step), result in sorted(validations.items()):
        cases = list(result["cases"].values())
        first, last = _loss(result["train_cls_loss"])
        rows.append({"variant": variant, "fold": str(fold), "step": step, "n_cases": len(cases),
                     "n_pdac": sum(c["pdac"] for c in cases), "cls_loss_first_epoch": first,
                     "cls_loss_last_epoch": last, "case_auroc": _auroc(cases),
                     **{f"auroc_{rule}": np.nan if v is None else v
                        for rule, v in result["case_auroc_by_aggregation"].items()}})
        pooled.setdefault((variant, step), []).extend(cases)
    for (variant, step), cases in sorted(pooled.items()):
        rows.append({"variant": variant, "fold": "pooled", "step": step, "n_cases": len(cases),
                     "n_pdac": sum(c["pdac"] for c in cases), "case_auroc": _auroc(cases)})
    return pd.DataFrame(rows)


def head_learning_summary(table: pd.DataFrame) -> list[str]:
    """A sentence per variant: the pooled case-level AUROC of the head after each step."""
    pooled = table[table["fold"] == "pooled"]
    return [f"{variant}: " + "; ".join(f"after step {int(r.step)} {r.case_auroc:.3f}" for r in group.itertuples())
            for variant, group in pooled.groupby("variant", sort=False)]
