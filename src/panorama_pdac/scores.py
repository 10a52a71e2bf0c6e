"""Case-level PDAC likelihood: the classification head, the detection map's maximum, and their fusion.

The paper fuses the two but does not publish the rule (METHOD.md §4); the rule is a config key and the
table keeps all three scores so every variant of the comparison can be evaluated from one file.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

# Each rule maps (cls_prob, det_max) arrays to the fused score.
FUSION_RULES = {
    "mean": lambda cls, det: (cls + det) / 2,
    "max": np.maximum,
    "cls": lambda cls, det: cls,
    "det": lambda cls, det: det,
}
SCORE_COLUMNS = {"cls": "cls_prob", "det": "det_max", "fused": "fused"}


def fuse(cls_prob, det_max, rule: str = "mean"):
    """Fused case score, elementwise over same-shaped arrays (a float for scalar inputs)."""
    if rule not in FUSION_RULES:
        raise ValueError(f"unknown fusion rule {rule!r}; expected one of {list(FUSION_RULES)}")
    cls_prob, det_max = np.array(cls_prob, dtype=float), np.array(det_max, dtype=float)
    if cls_prob.shape != det_max.shape:
        raise ValueError(f"cls_prob and det_max differ in shape: {cls_prob.shape} vs {det_max.shape}")
    fused = FUSION_RULES[rule](cls_prob, det_max)
    return fused if fused.ndim else float(fused)


def case_scores_table(
    cls_prob: Mapping[str, float],
    det_max: Mapping[str, float],
    folds: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """One row per case (sorted): case_id, fold, cls_prob, det_max; `with_fused` adds the fusion.

    Both scores must cover the same cases and be probabilities; `fold` is empty without `folds`
    (test-set predictions of the fold ensemble).
    """
    if set(cls_prob) != set(det_max):
        only_cls, only_det = sorted(set(cls_prob) - set(det_max)), sorted(set(det_max) - set(cls_prob))
        raise ValueError(f"case scores disagree on the cases: only a classification probability for {only_cls}, "
                         f"only a detection map for {only_det}")
    case_ids = sorted(cls_prob)
    if folds is not None and set(case_ids) - set(folds):
        raise ValueError(f"no fold for cases {sorted(set(case_ids) - set(folds))}")
    table = pd.DataFrame({
        "case_id": case_ids,
        "fold": pd.array([folds[c] for c in case_ids] if folds is not None else [None] * len(case_ids),
                         dtype="Int64"),
        "cls_prob": [float(cls_prob[c]) for c in case_ids],
        "det_max": [float(det_max[c]) for c in case_ids],
    })
    for column in ("cls_prob", "det_max"):
        bad = table.loc[~table[column].between(0, 1), "case_id"].tolist()
        if bad:
            raise ValueError(f"{column} outside [0, 1] for cases {bad}")
    return table


def with_fused(table: pd.DataFrame, rule: str) -> pd.DataFrame:
    """The case table with its `fused` column by `rule`, placed after the two scores it fuses. Kept apart
    from the table itself so that another rule needs only the table, never the detection maps again."""
    fused = fuse(table["cls_prob"].to_numpy(), table["det_max"].to_numpy(), rule)
    table = table.drop(columns="fused", errors="ignore")
    table.insert(table.columns.get_loc("det_max") + 1, "fused", fused)
    return table


def score_dicts(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """The table as {'cls': {case: p}, 'det': {...}, 'fused': {...}}, the input of metrics.evaluate_cases."""
    return {name: dict(zip(table["case_id"], table[column].astype(float)))
            for name, column in SCORE_COLUMNS.items()}
