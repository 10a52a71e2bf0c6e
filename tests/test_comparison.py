"""The paired comparison of variants: noise is not a difference, a case-by-case improvement is, and the
interval is reproducible from the seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from panorama_pdac.comparison import (
    COLUMNS,
    comparison_sections,
    paired_comparison,
    read_paired_results,
)
from panorama_pdac.errors import DataError
from panorama_pdac.io import write_json
from panorama_pdac.metrics import iou_key

IOUS = (0.10, 0.15)
SCORES = ("cls", "det", "fused")


def _result(pdac, score, lesions) -> dict:
    """A result as evaluate_cv stores it: case i has PDAC status pdac[i], all three case scores score[i]
    and lesion results lesions[i] ([is_lesion, confidence, overlap] each) at every IoU threshold."""
    cases = [{"case_id": f"case_{i:02d}", "pdac": bool(p), **{f"score_{name}": float(s) for name in SCORES},
              "lesion_results": {iou_key(iou): y for iou in IOUS}}
             for i, (p, s, y) in enumerate(zip(pdac, score, lesions))]
    return {"iou_thresholds": list(IOUS), "scores": list(SCORES), "cases": cases}


def _candidates(pdac, hit, fp) -> list[list]:
    """Per case: the lesion, found with confidence hit[i] (a PDAC case), and one false positive fp[i]."""
    return [([[1, float(h), 0.5]] if p else []) + [[0, float(f), 0.0]] for p, h, f in zip(pdac, hit, fp)]


def _base(n_cases: int = 40, n_pdac: int = 15):
    """A variant with overlapping classes (AUROC and AP well inside (0, 1)), as arrays."""
    rng = np.random.default_rng(7)
    pdac = np.arange(n_cases) < n_pdac
    score = np.where(pdac, rng.uniform(0.3, 0.9, n_cases), rng.uniform(0.1, 0.7, n_cases))
    return pdac, score, rng.uniform(0.2, 0.9, n_cases), rng.uniform(0.1, 0.8, n_cases), rng


def _noisy_pair() -> dict[str, dict]:
    """The second variant is the first plus noise, on every score and every lesion confidence."""
    pdac, score, hit, fp, rng = _base()

    def noisy(x):
        return np.clip(x + rng.normal(0, 0.05, len(x)), 0.01, 1)

    return {"ce": _result(pdac, score, _candidates(pdac, hit, fp)),
            "tversky": _result(pdac, noisy(score), _candidates(pdac, noisy(hit), noisy(fp)))}


def _better_pair() -> dict[str, dict]:
    """The second variant is better on every case: PDAC scored higher, other cases lower, every lesion found
    with more confidence and every false positive with less."""
    pdac, score, hit, fp, _ = _base()
    better = np.where(pdac, score + 0.1, score - 0.1)
    return {"ce": _result(pdac, score, _candidates(pdac, hit, fp)),
            "tversky": _result(pdac, better, _candidates(pdac, hit + 0.1, fp * 0.8))}


def test_noise_is_not_a_difference():
    table = paired_comparison(_noisy_pair(), n_bootstrap=200, seed=0)
    assert len(table) == len(SCORES) + len(IOUS)
    assert (table.ci_low < 0).all() and (table.ci_high > 0).all()
    assert table.fraction_above_0.between(0.05, 0.95).all()


def test_a_case_by_case_improvement_is_a_difference():
    table = paired_comparison(_better_pair(), n_bootstrap=200, seed=0)
    assert len(table) == len(SCORES) + len(IOUS)
    assert (table.difference > 0).all() and (table.ci_low > 0).all()
    assert (table.fraction_above_0 > 0.99).all()


def test_columns_order_and_hand_computed_differences():
    # First variant: lesions 0.9 TP, 0.5 FP, 0.3 TP, 0.1 FP -> AP = 0.5 * 1 + 0.5 * 2/3; case scores
    # PDAC 0.9, 0.3 vs 0.5, 0.1 -> AUROC 3/4. Second: every lesion above every false positive, AP = AUROC = 1.
    pdac = [True, True, False, False]
    first = _result(pdac, [0.9, 0.3, 0.5, 0.1], [[[1, 0.9, 0.5]], [[1, 0.3, 0.5]], [[0, 0.5, 0.0]], [[0, 0.1, 0.0]]])
    second = _result(pdac, [0.9, 0.8, 0.5, 0.1], [[[1, 0.9, 0.5]], [[1, 0.8, 0.5]], [[0, 0.5, 0.0]], [[0, 0.1, 0.0]]])
    table = paired_comparison({"tversky": first, "ce": second}, n_bootstrap=0, seed=0)
    assert list(table.columns) == COLUMNS
    assert set(table["first"]) == {"tversky"} and set(table["second"]) == {"ce"}  # the given order, not sorted
    assert table.metric.tolist() == ["auroc"] * 3 + ["ap"] * 2
    assert table.score.tolist() == [*SCORES, "", ""]
    assert table.iou.tolist()[3:] == pytest.approx(list(IOUS)) and table.iou[:3].isna().all()
    auroc, ap = table.iloc[0], table.iloc[3]
    assert (auroc.first_value, auroc.second_value, auroc.difference) == pytest.approx((0.75, 1.0, 0.25))
    assert (ap.first_value, ap.second_value, ap.difference) == pytest.approx((0.5 + 1 / 3, 1.0, 1 / 6))
    assert table.n_cases.tolist() == [4] * 5
    assert table[["ci_low", "ci_high", "fraction_above_0"]].isna().all().all()  # no replicates, no interval


def test_a_missed_lesion_lowers_ap_in_every_replicate_that_draws_its_case():
    """Both variants alike but for one lesion the second misses: replicates without that case (1 in 4:
    two PDAC cases drawn with replacement) tie, all others favour the first, none the second."""
    pdac = [True, True, False]
    first = _result(pdac, [0.9, 0.8, 0.1], [[[1, 0.9, 0.5]], [[1, 0.8, 0.5]], [[0, 0.1, 0.0]]])
    second = _result(pdac, [0.9, 0.8, 0.1], [[[1, 0.9, 0.5]], [[1, 0.0, 0.0]], [[0, 0.1, 0.0]]])
    ap = paired_comparison({"ce": first, "tversky": second}, n_bootstrap=200, seed=0).query("metric == 'ap'")
    assert (ap.difference < 0).all() and (ap.fraction_above_0 == 0).all()
    assert (ap.ci_high <= 0).all() and (ap.ci_low < 0).all()


def test_one_class_has_no_auroc_difference_but_an_ap_difference():
    pdac = [True, True]
    first = _result(pdac, [0.9, 0.3], [[[1, 0.9, 0.5]], [[1, 0.0, 0.0]]])
    second = _result(pdac, [0.9, 0.8], [[[1, 0.9, 0.5]], [[1, 0.8, 0.5]]])
    table = paired_comparison({"ce": first, "tversky": second}, n_bootstrap=20, seed=0)
    auroc, ap = table.query("metric == 'auroc'"), table.query("metric == 'ap'")
    assert (auroc.note == "only one class: 2 PDAC and 0 non-PDAC cases").all() and auroc.difference.isna().all()
    assert ap.difference.tolist() == pytest.approx([0.5, 0.5]) and (ap.note == "").all()


def test_the_seed_decides_the_interval():
    results = _noisy_pair()
    one = paired_comparison(results, n_bootstrap=100, seed=1)
    pd.testing.assert_frame_equal(one, paired_comparison(results, n_bootstrap=100, seed=1))
    other = paired_comparison(results, n_bootstrap=100, seed=2)
    pd.testing.assert_series_equal(one.difference, other.difference)  # point estimates do not resample
    assert not np.allclose(one.ci_low, other.ci_low)


def test_a_single_variant_has_nothing_to_compare(tmp_path):
    write_json(_better_pair()["ce"], tmp_path / "metrics.json")
    results = read_paired_results({"ce": tmp_path / "metrics.json"})
    table = paired_comparison(results, n_bootstrap=100, seed=0)
    assert table.empty and list(table.columns) == COLUMNS
    assert comparison_sections(table, list(results), 100, 0) == [
        ("Paired comparison", "one variant (ce): nothing to compare")]


def test_sections_one_per_pair_in_config_order():
    pdac, score, hit, fp, _ = _base()
    result = _result(pdac, score, _candidates(pdac, hit, fp))
    table = paired_comparison({"ce": result, "tversky": result, "focal": result}, n_bootstrap=10, seed=0)
    sections = comparison_sections(table, ["ce", "tversky", "focal"], 10, 0)
    assert [h for h, _ in sections] == ["tversky minus ce", "focal minus ce", "focal minus tversky", "Method"]
    assert (sections[0][1].difference == 0).all()  # a variant against itself
    assert list(sections[0][1].columns[3:5]) == ["value ce", "value tversky"]
    assert "10 paired bootstrap replicates" in sections[-1][1] and "seed 0" in sections[-1][1]


def test_results_that_cannot_be_paired_name_the_file(tmp_path):
    results = _noisy_pair()
    paths = {v: tmp_path / v / "metrics.json" for v in results}
    for v, r in results.items():
        write_json(r, paths[v])
    assert list(read_paired_results(paths)) == ["ce", "tversky"]

    fewer = {**results["tversky"], "cases": results["tversky"]["cases"][1:]}
    write_json(fewer, paths["tversky"])
    with pytest.raises(DataError, match=r"tversky/metrics.json: cannot be paired with .*ce/metrics.json: "
                                        r"cases only there: \['case_00'\]$"):
        read_paired_results(paths)

    write_json({**results["tversky"], "scores": ["cls"]}, paths["tversky"])
    with pytest.raises(DataError, match=r"scores \['cls'\] instead of \['cls', 'det', 'fused'\]"):
        read_paired_results(paths)

    older = {**results["tversky"], "cases": [{k: v for k, v in c.items() if k != "lesion_results"}
                                            for c in results["tversky"]["cases"]]}
    write_json(older, paths["tversky"])
    with pytest.raises(DataError, match=r"tversky/metrics.json: cases\[0\] \(case case_00\) has no lesion_results "
                                        r"for IoU \['0.1', '0.15'\].*rerun"):
        read_paired_results(paths)
