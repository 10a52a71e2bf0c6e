"""Paired comparison of stage-2 variants on the same cases: is a difference larger than the noise?

Two bootstrap intervals that overlap say little: case-to-case variation moves both variants alike. Here each
bootstrap replicate draws one resample of the cases (stratified by PDAC, `metrics.stratified_resamples`) and
scores both variants on it, so the interval is that of the difference itself. Statistics are picai_eval's, as
in `metrics`: AUROC of each case score (patient level) and AP at each IoU threshold (lesion level: a resample
concatenates its cases' lesion results). They are recomputed from the per-case results each variant's
metrics.json keeps, so the comparison needs neither the detection maps nor a second picai_eval matching.
"""

from __future__ import annotations

import itertools
import os
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from picai_eval import Metrics

from .errors import DataError
from .io import read_json
from .metrics import NO_LESION, auroc_undefined, iou_key, percentile_ci, stored_metrics, stratified_resamples

COLUMNS = ["first", "second", "metric", "score", "iou", "first_value", "second_value", "difference",
           "ci_low", "ci_high", "fraction_above_0", "n_cases", "note"]
PAIRED_KEYS = ("iou_thresholds", "scores")  # must agree between variants, as must the cases and their class


def _check_stored(result: dict, path: str | os.PathLike) -> None:
    """The keys a comparison reads, and the per-case lesion results a metrics.json before them lacks."""
    for key in ("cases", *PAIRED_KEYS):
        if key not in result:
            raise DataError(path, f"no '{key}': not a metrics.json written by evaluate_cv")
    keys = [iou_key(iou) for iou in result["iou_thresholds"]]
    for i, case in enumerate(result["cases"]):
        missing = [k for k in keys if k not in case.get("lesion_results", {})]
        if missing:
            raise DataError(path, f"cases[{i}] (case {case['case_id']}) has no lesion_results for IoU {missing}: "
                                  f"written before evaluate_cv kept them; rerun it (--forcerun evaluate_cv)")


def _case_classes(result: dict) -> dict[str, bool]:
    return {c["case_id"]: c["pdac"] for c in result["cases"]}


def _pairing_problems(result: dict, reference: dict) -> list[str]:
    problems = [f"{key} {result[key]} instead of {reference[key]}" for key in PAIRED_KEYS
                if result[key] != reference[key]]
    mine, theirs = _case_classes(result), _case_classes(reference)
    case_differences = {"only here": mine.keys() - theirs.keys(), "only there": theirs.keys() - mine.keys(),
                        "of another PDAC status": {c for c in mine.keys() & theirs.keys() if mine[c] != theirs[c]}}
    return problems + [f"cases {what}: {sorted(ids)}" for what, ids in case_differences.items() if ids]


def read_paired_results(paths: Mapping[str, str | os.PathLike]) -> dict[str, dict]:
    """Each variant's metrics.json, in the given order, checked to hold the per-case lesion results and the
    same cases (and classes), IoU thresholds and case scores as the first one: a pairing needs all of them."""
    results = {}
    for variant, path in paths.items():
        result = read_json(path)
        _check_stored(result, path)
        if results:
            reference_variant, reference = next(iter(results.items()))
            problems = _pairing_problems(result, reference)
            if problems:
                raise DataError(path, f"cannot be paired with {paths[reference_variant]}: " + "; ".join(problems))
        results[variant] = result
    return results


def _paired_difference(statistic: Callable[..., float], pair: Sequence[Metrics], resamples: Sequence[np.ndarray],
                       undefined: str | None) -> dict:
    """Point estimates, their difference (second minus first) and its bootstrap interval, where both
    variants are scored on the same resample in each replicate; only `undefined` as a note if it is set."""
    if undefined:
        return {"note": undefined}
    first, second = pair
    values = [float(statistic(m)) + 0.0 for m in pair]  # + 0.0: picai_eval's AP of a flat curve is -0.0
    differences = np.array([statistic(second, subject_list=s) - statistic(first, subject_list=s)
                            for s in resamples])
    ci = percentile_ci(differences)
    return {"first_value": values[0], "second_value": values[1], "difference": values[1] - values[0],
            "ci_low": None if ci is None else float(ci[0]), "ci_high": None if ci is None else float(ci[1]),
            "fraction_above_0": float(np.mean(differences > 0)) if len(differences) else None, "note": ""}


def _compare_pair(pair: tuple[dict, dict], n_bootstrap: int, seed: int) -> list[dict]:
    """AUROC rows (one per case score) and AP rows (one per IoU threshold) of one pair of variants."""
    targets = {case: int(pdac) for case, pdac in _case_classes(pair[0]).items()}
    n_pdac, n_cases = sum(targets.values()), len(targets)
    resamples = stratified_resamples(targets, n_bootstrap, seed)
    no_auroc = auroc_undefined(n_pdac, n_cases - n_pdac)
    no_ap = NO_LESION if n_pdac == 0 else None
    ious = pair[0]["iou_thresholds"]
    # The case score, not the lesion matching, decides AUROC: any IoU threshold's lesion results serve.
    rows = [{"metric": "auroc", "score": score, "iou": None,
             **_paired_difference(Metrics.calc_auroc, [stored_metrics(r, ious[0], score) for r in pair], resamples,
                                  no_auroc)}
            for score in pair[0]["scores"]]
    rows += [{"metric": "ap", "score": "", "iou": float(iou),
              **_paired_difference(Metrics.calc_AP, [stored_metrics(r, iou) for r in pair], resamples, no_ap)}
             for iou in ious]
    return [{**row, "n_cases": n_cases} for row in rows]


def paired_comparison(results: Mapping[str, dict], n_bootstrap: int, seed: int) -> pd.DataFrame:
    """Every pair of variants in the given order (difference = second minus first): per case score the AUROC
    difference, per IoU threshold the lesion-level AP difference, each with its paired bootstrap 95% interval
    and the fraction of replicates where it is above 0. No rows for a single variant."""
    rows = [{"first": first, "second": second, **row}
            for first, second in itertools.combinations(results, 2)
            for row in _compare_pair((results[first], results[second]), n_bootstrap, seed)]
    return pd.DataFrame(rows, columns=COLUMNS)


def comparison_sections(table: pd.DataFrame, variants: Sequence[str], n_bootstrap: int,
                        seed: int) -> list[tuple[str, object]]:
    """The report page: a table per pair, or why there is none."""
    if len(variants) < 2:
        return [("Paired comparison", f"one variant ({', '.join(variants)}): nothing to compare")]
    pairs = table.groupby(["first", "second"], sort=False)
    return [(f"{second} minus {first}", rows.drop(columns=["first", "second"]).rename(
                columns={"first_value": f"value {first}", "second_value": f"value {second}"}))
            for (first, second), rows in pairs] \
        + [("Method", f"{n_bootstrap} paired bootstrap replicates (the same cases, drawn within PDAC and "
                      f"non-PDAC, for both variants), seed {seed}; percentile 95% interval of the difference.")]
