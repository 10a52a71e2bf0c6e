"""Case-score fusion and the per-case score table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from panorama_pdac.scores import case_scores_table, fuse, score_dicts, with_fused


def test_fusion_rules_elementwise():
    cls, det = np.array([0.2, 0.9, 0.5]), np.array([0.6, 0.1, 0.5])
    np.testing.assert_allclose(fuse(cls, det, "mean"), [0.4, 0.5, 0.5])
    np.testing.assert_allclose(fuse(cls, det, "max"), [0.6, 0.9, 0.5])
    np.testing.assert_allclose(fuse(cls, det, "cls"), cls)
    np.testing.assert_allclose(fuse(cls, det, "det"), det)
    assert fuse(0.2, 0.6) == pytest.approx(0.4) and isinstance(fuse(0.2, 0.6), float)


def test_fusion_errors():
    with pytest.raises(ValueError, match="unknown fusion rule 'sum'"):
        fuse(0.1, 0.2, "sum")
    with pytest.raises(ValueError, match="shape"):
        fuse([0.1, 0.2], [0.3])


def test_table_keeps_all_three_scores_sorted_by_case():
    table = case_scores_table({"b": 0.8, "a": 0.2}, {"a": 0.4, "b": 0.0}, folds={"a": 0, "b": 3})
    assert list(table.columns) == ["case_id", "fold", "cls_prob", "det_max"]
    table = with_fused(table.assign(detection_map=["a.nii.gz", "b.nii.gz"]), "max")
    assert list(table.columns) == ["case_id", "fold", "cls_prob", "det_max", "fused", "detection_map"]
    assert table["case_id"].tolist() == ["a", "b"]
    assert table["fold"].tolist() == [0, 3]
    assert table["fused"].tolist() == pytest.approx([0.4, 0.8])
    assert score_dicts(table) == {"cls": {"a": 0.2, "b": 0.8}, "det": {"a": 0.4, "b": 0.0},
                                  "fused": {"a": pytest.approx(0.4), "b": pytest.approx(0.8)}}


def test_table_without_folds_has_empty_fold():
    table = case_scores_table({"a": 0.2}, {"a": 0.4})
    assert table["fold"].isna().all()


def test_another_fusion_rule_replaces_the_fused_column():
    table = with_fused(case_scores_table({"a": 0.2}, {"a": 0.4}), "mean")
    assert table["fused"].tolist() == pytest.approx([0.3])
    refused = with_fused(table, "cls")
    assert list(refused.columns) == list(table.columns) and refused["fused"].tolist() == [0.2]


def test_table_errors_name_the_cases():
    with pytest.raises(ValueError, match=r"only a classification probability for \['b'\]"):
        case_scores_table({"a": 0.1, "b": 0.2}, {"a": 0.3})
    with pytest.raises(ValueError, match=r"det_max outside \[0, 1\] for cases \['a'\]"):
        case_scores_table({"a": 0.1}, {"a": 1.3})
    with pytest.raises(ValueError, match=r"no fold for cases \['a'\]"):
        case_scores_table({"a": 0.1}, {"a": 0.3}, folds={})
    assert isinstance(case_scores_table({"a": 0.1}, {"a": 0.3}), pd.DataFrame)
