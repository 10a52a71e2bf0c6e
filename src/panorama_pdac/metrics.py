"""The challenge's metrics, computed with picai_eval as the PANORAMA evaluator does (METHOD.md §5).

Lesion-level results (TP / FP / FN with confidences) come from the detection maps, matched to the PDAC
label (value 1) with picai_eval's hit criterion, IoU >= threshold. AP, lesion sensitivity and the FROC
depend only on them. AUROC is patient level: picai_eval's case prediction (the map's maximum) is
replaced by each case score (classification head, detection, fused), so fusion moves AUROC, never AP.

A set with one class has no AUROC; the result then says "undefined" and why, never NaN. Everything
returned is plain JSON (floats, strings, lists, None). The maps are read once, by `case_lesion_results`:
each case's lesion results, picai_eval's [is_lesion, confidence, overlap] per candidate and missed lesion,
per IoU threshold. With the case scores they are all `evaluate_lesion_results` needs, so the metrics of
another fusion rule, and AUROC and AP on any resample of the cases (the paired comparison of variants),
never read a detection map again.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import SimpleITK as sitk
from picai_eval import Metrics
from picai_eval.eval import evaluate_case

from .errors import DataError
from .io import read_image_header, read_label, read_region, read_slabs
from .labels import LESION
from .localisation_qa import dice
from .published import TABLE4

FP_PER_CASE = (0.01, 0.001)  # operating points of the lesion sensitivity the challenge reports
UNDEFINED = "undefined"
NO_LESION = "no PDAC lesion in this set"  # why AP and lesion sensitivity are undefined
SCORE_NAMES = {"cls": "classification head alone", "det": "detection map alone", "fused": "fused score"}

ArrayOrPath = np.ndarray | str | os.PathLike


def iou_key(iou: float) -> str:
    """How an IoU threshold names its entries in the result (JSON keys are strings)."""
    return f"{iou:g}"


def lesion_mask(label: np.ndarray) -> np.ndarray:
    """Binary PDAC mask of a PANORAMA label map (other values are anatomy, not lesions)."""
    return (label == LESION).astype(np.int32)


def lesion_dice(pred: np.ndarray, label: np.ndarray) -> float | None:
    """Dice of the predicted lesion (non-zero voxels of a detection map or mask) against the PDAC label;
    None for a case without PDAC, where Dice says nothing about the lesion."""
    truth = label == LESION
    return dice(pred != 0, truth) if truth.any() else None


def _load(item: ArrayOrPath, case_id: str, read) -> tuple[np.ndarray, sitk.Image | None]:
    if isinstance(item, np.ndarray):
        return item, None
    image = read(item, case_id)
    return sitk.GetArrayViewFromImage(image), image


def _same_geometry(a: sitk.Image | sitk.ImageFileReader, b: sitk.Image) -> bool:
    # Tolerances allow for NIfTI storing geometry as float32.
    return (np.allclose(a.GetSpacing(), b.GetSpacing(), rtol=1e-4)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=0.1 * min(a.GetSpacing()))
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-4))


Bounds = list[tuple[int, int]]  # per axis (z, y, x): first index and one past the last


def _bounds(mask: np.ndarray) -> Bounds | None:
    """Where `mask` is True, per axis; None where it is True nowhere."""
    if not mask.any():
        return None
    hits = [np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
            for axis in range(mask.ndim)]
    return [(int(h[0]), int(h[-1]) + 1) for h in hits]


def _union(a: Bounds | None, b: Bounds | None) -> Bounds | None:
    if a is None or b is None:
        return a or b
    return [(min(p[0], q[0]), max(p[1], q[1])) for p, q in zip(a, b)]


def _candidate_bounds(det: np.ndarray | sitk.ImageFileReader, case_id: str, where) -> Bounds | None:
    """Checks that the map is a detection map (finite, non-negative) and finds its candidates. A file is read a
    slab at a time: a full-size 1024x1024x600 map is 2.5 GB as float32, and only the box that holds its
    candidates and the lesion is needed whole."""
    slabs = [det] if isinstance(det, np.ndarray) else read_slabs(det, case_id)
    found, z = None, 0
    for slab in slabs:
        if not np.isfinite(slab).all() or slab.min() < 0:
            raise DataError(where, "not a valid detection map: negative, NaN or infinite values", case_id)
        if (here := _bounds(slab != 0)) is not None:
            here[0] = (here[0][0] + z, here[0][1] + z)  # the slab's z to the map's
        found = _union(found, here)
        z += len(slab)
    return found


def _content_box(candidates: Bounds | None, label: np.ndarray) -> tuple[slice, ...]:
    """The smallest box holding every candidate and every lesion voxel (one voxel if there is none).
    picai_eval's matching is the same inside it, and works on int32 and float32 copies of what it is given,
    2.5 GB each for a full-size 1024x1024x600 case."""
    found = _union(candidates, _bounds(label == LESION)) or [(0, 1)] * label.ndim
    return tuple(slice(*b) for b in found)


def _evaluate_one(case_id: str, det_item: ArrayOrPath, label_item: ArrayOrPath,
                  iou_thresholds: Sequence[float]) -> dict:
    """Lesion results per IoU threshold, the map's maximum and the lesion Dice of one case."""
    label, label_image = _load(label_item, case_id, read_label)
    from_file = not isinstance(det_item, np.ndarray)
    det_source = read_image_header(det_item, case_id) if from_file else det_item
    where = det_item if from_file else "detection map (array)"
    shape = tuple(det_source.GetSize()[::-1]) if from_file else det_item.shape
    if shape != label.shape:
        raise DataError(where, f"detection map shape (z, y, x) {shape} differs from the label's {label.shape}",
                        case_id)
    if from_file and label_image is not None and not _same_geometry(det_source, label_image):
        raise DataError(where, "detection map geometry (spacing, origin, direction) differs from the label's",
                        case_id)
    box = _content_box(_candidate_bounds(det_source, case_id, where), label)
    if from_file:
        region = read_region(det_source, [b.start for b in box[::-1]], [b.stop - b.start for b in box[::-1]], case_id)
        det = sitk.GetArrayFromImage(region)
    else:
        det = det_item[box]
    label = label[box]
    lesion_results, det_max = {}, 0.0
    for iou in iou_thresholds:
        try:
            y_list, det_max, *_ = evaluate_case(
                det, label, min_overlap=iou, overlap_func="IoU", y_true_postprocess_func=lesion_mask)
        except ValueError as e:  # picai_eval's check that each blob holds one value
            raise DataError(where, "not a valid detection map: a connected blob holds more than one value "
                            "(a probability map?)", case_id) from e
        lesion_results[iou_key(iou)] = _plain_lesion_results(y_list)
    return {"pdac": bool((label == LESION).any()), "det_max": float(det_max), "lesion_dice": lesion_dice(det, label),
            "lesion_results": lesion_results}


def _plain_lesion_results(y_list: Sequence[tuple]) -> list[list]:
    return [[int(is_lesion), float(confidence), float(overlap)] for is_lesion, confidence, overlap in y_list]


def _entry(value: float | None = None, ci: Sequence[float] | None = None, undefined: str | None = None) -> dict:
    if undefined is not None:
        return {"value": UNDEFINED, "ci_low": None, "ci_high": None, "reason": undefined}
    def number(x) -> float:
        return float(x) + 0.0  # picai_eval's AP of a flat recall curve is -0.0

    return {"value": number(value), "ci_low": None if ci is None else number(ci[0]),
            "ci_high": None if ci is None else number(ci[1])}


def auroc_undefined(n_pdac: int, n_other: int) -> str | None:
    """Why a set has no AUROC (a single class), or None when it has one."""
    return f"only one class: {n_pdac} PDAC and {n_other} non-PDAC cases" if n_pdac == 0 or n_other == 0 else None


def percentile_ci(values: Sequence[float]) -> Sequence[float] | None:
    return np.percentile(values, [2.5, 97.5]) if len(values) else None


def stratified_resamples(targets: dict[str, int], n_bootstrap: int, seed: int) -> list[np.ndarray]:
    """Bootstrap case lists drawn within each class, so every resample keeps the set's class balance.

    picai_eval's own `bootstrap_score_ci` draws from all cases at once: on a small fold a resample
    without PDAC makes AUROC NaN, and one NaN turns the whole interval into NaN.
    """
    rng = np.random.default_rng(seed)
    groups = [np.array([c for c, t in targets.items() if t == k]) for k in (0, 1)]
    return [np.concatenate([rng.choice(g, size=len(g)) for g in groups]) for _ in range(n_bootstrap)]


def _scope_results(cases: list[str], per_case: dict[str, dict], scores: Mapping[str, Mapping[str, float]],
                   iou_thresholds: Sequence[float], n_bootstrap: int, seed: int) -> tuple[list[dict], dict]:
    """Metric rows (score x IoU) for one set of cases, and its curves."""
    by_iou = {iou: Metrics(lesion_results={c: per_case[c]["lesion_results"][iou_key(iou)] for c in cases})
              for iou in iou_thresholds}
    targets = next(iter(by_iou.values())).case_target
    n_pdac = int(sum(targets.values()))
    n_other = len(cases) - n_pdac
    resamples = stratified_resamples(targets, n_bootstrap, seed)
    curves = {"roc": {}, "pr": {}, "froc": {}}

    auroc, auroc_boot = {}, {}
    no_auroc = auroc_undefined(n_pdac, n_other)
    for name, score in scores.items():
        if no_auroc:
            auroc[name] = _entry(undefined=no_auroc)
            continue
        # Same lesion results, case prediction replaced by this score.
        m = Metrics(lesion_results=by_iou[iou_thresholds[0]].lesion_results, case_pred={c: score[c] for c in cases})
        roc = m.calculate_ROC()
        auroc_boot[name] = [m.calc_auroc(subject_list=s) for s in resamples]
        auroc[name] = _entry(roc["AUROC"], percentile_ci(auroc_boot[name]))
        curves["roc"][name] = {"fpr": roc["FPR"].tolist(), "tpr": roc["TPR"].tolist(), "auroc": float(roc["AUROC"])}

    dices = [per_case[c]["lesion_dice"] for c in cases if per_case[c]["lesion_dice"] is not None]
    dice_entry = _entry(np.mean(dices)) if dices else _entry(undefined="no PDAC case")
    rows = []
    for iou, m in by_iou.items():
        if m.num_lesions:
            pr = m.calculate_precision_recall()
            ap_boot = [m.calc_AP(subject_list=s) for s in resamples]
            ap = _entry(pr["AP"], percentile_ci(ap_boot))
            sensitivity = {f"sensitivity_at_{fp:g}_fp": _entry(m.lesion_TPR_at_FPR(fp)) for fp in FP_PER_CASE}
            finite = np.isfinite(m.lesion_FPR)  # picai_eval closes the FROC at infinitely many FPs
            curves["pr"][iou_key(iou)] = {"recall": pr["recall"].tolist(), "precision": pr["precision"].tolist(),
                                          "ap": float(pr["AP"])}
            curves["froc"][iou_key(iou)] = {"fp_per_case": m.lesion_FPR[finite].tolist(),
                                            "sensitivity": m.lesion_TPR[finite].tolist()}
        else:
            ap_boot, ap = [], _entry(undefined=NO_LESION)
            sensitivity = {f"sensitivity_at_{fp:g}_fp": _entry(undefined=NO_LESION) for fp in FP_PER_CASE}
        for name in scores:
            if auroc[name]["value"] == UNDEFINED or ap["value"] == UNDEFINED:
                mean = _entry(undefined="AUROC or AP undefined")
            else:
                boot = [(a + b) / 2 for a, b in zip(auroc_boot[name], ap_boot)]
                mean = _entry((auroc[name]["value"] + ap["value"]) / 2, percentile_ci(boot))
            rows.append({"score": name, "iou": float(iou), "n_cases": len(cases), "n_pdac": n_pdac,
                         "n_lesions": int(m.num_lesions),
                         "metrics": {"auroc": auroc[name], "ap": ap, "auroc_ap_mean": mean, **sensitivity,
                                     "lesion_dice": dice_entry}})
    return rows, curves


def case_lesion_results(
    det_maps: Mapping[str, ArrayOrPath],
    labels: Mapping[str, ArrayOrPath],
    iou_thresholds: Sequence[float] = (0.10, 0.15),
    threads: int = 1,
) -> dict:
    """What the metrics need of the detection maps and label maps (arrays or image paths), read once:
    {'iou_thresholds': [...], 'cases': {case: {pdac, det_max, lesion_dice, lesion_results: {iou: [...]}}}}."""
    cases = sorted(labels)
    if set(det_maps) != set(cases):
        raise ValueError(f"detection maps and labels disagree on the cases: no detection map for "
                         f"{sorted(set(cases) - set(det_maps))}, no label for {sorted(set(det_maps) - set(cases))}")
    iou_thresholds = tuple(float(t) for t in iou_thresholds)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        per_case = dict(zip(cases, pool.map(
            lambda c: _evaluate_one(c, det_maps[c], labels[c], iou_thresholds), cases)))
    return {"iou_thresholds": list(iou_thresholds), "cases": per_case}


def evaluate_lesion_results(
    lesions: dict,
    case_scores: Mapping[str, Mapping[str, float]] | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    folds: Mapping[str, int] | None = None,
    variant: str = "",
) -> dict:
    """The metrics of `case_lesion_results`'s cases, per case score, without reading any map.

    `case_scores` maps a score name ('cls', 'det', 'fused') to {case: score}; without it the only score
    is picai_eval's own, the detection map's maximum ('det'). Metrics are given for all cases pooled
    (scope 'all') and, with `folds`, per fold ('fold_k'); curves for the pooled set.
    """
    per_case = lesions["cases"]
    cases = sorted(per_case)
    iou_thresholds = tuple(float(t) for t in lesions["iou_thresholds"])
    if folds is not None and set(cases) - set(folds):
        raise ValueError(f"no fold for cases {sorted(set(cases) - set(folds))}")
    if case_scores is None:
        case_scores = {"det": {c: per_case[c]["det_max"] for c in cases}}
    for name, score in case_scores.items():
        if set(cases) - set(score):
            raise ValueError(f"case score {name!r} is missing for cases {sorted(set(cases) - set(score))}")

    scopes = {"all": cases}
    for fold in sorted(set(folds.values())) if folds is not None else []:
        scopes[f"fold_{fold}"] = [c for c in cases if folds[c] == fold]
    results, curves = [], {}
    for scope, scope_cases in scopes.items():
        rows, scope_curves = _scope_results(scope_cases, per_case, case_scores, iou_thresholds, n_bootstrap, seed)
        results += [{"scope": scope, **row} for row in rows]
        if scope == "all":
            curves = scope_curves

    return {
        "variant": variant,
        "picai_eval_version": version("picai_eval"),
        "hit_criterion": "IoU >= threshold (picai_eval overlap_func='IoU', min_overlap)",
        "label_postprocess": f"label == {LESION}",
        "iou_thresholds": list(iou_thresholds),
        "scores": list(case_scores),
        "n_bootstrap": n_bootstrap,
        "bootstrap": "stratified by case class, percentile 95% interval",
        "seed": seed,
        "results": results,
        "cases": [{"case_id": c, "fold": None if folds is None else int(folds[c]),
                   "pdac": per_case[c]["pdac"],
                   "det_max": per_case[c]["det_max"], "lesion_dice": per_case[c]["lesion_dice"],
                   "lesion_results": per_case[c]["lesion_results"],
                   **{f"score_{name}": float(score[c]) for name, score in case_scores.items()}}
                  for c in cases],
        "curves": curves,
    }


def evaluate_cases(
    det_maps: Mapping[str, ArrayOrPath],
    labels: Mapping[str, ArrayOrPath],
    case_scores: Mapping[str, Mapping[str, float]] | None = None,
    iou_thresholds: Sequence[float] = (0.10, 0.15),
    n_bootstrap: int = 1000,
    seed: int = 0,
    folds: Mapping[str, int] | None = None,
    variant: str = "",
    threads: int = 1,
) -> dict:
    """Evaluate detection maps against PANORAMA label maps in one call: `case_lesion_results` then
    `evaluate_lesion_results`."""
    return evaluate_lesion_results(case_lesion_results(det_maps, labels, iou_thresholds, threads), case_scores,
                                   n_bootstrap, seed, folds, variant)


def stored_metrics(result: dict, iou: float, score: str | None = None) -> Metrics:
    """picai_eval's Metrics of a stored result (all its cases) at one IoU threshold, with a case score
    ('cls', 'det', 'fused') as the case prediction, as `evaluate_cases` builds them from the maps."""
    cases = result["cases"]
    lesion_results = {c["case_id"]: c["lesion_results"][iou_key(iou)] for c in cases}
    case_pred = None if score is None else {c["case_id"]: c[f"score_{score}"] for c in cases}
    return Metrics(lesion_results=lesion_results, case_pred=case_pred)


def metrics_table(result: dict) -> pd.DataFrame:
    """Tidy table: one row per variant x score x IoU x scope x metric; undefined values say why in `note`."""
    return pd.DataFrame([
        {"variant": result["variant"], "score": row["score"], "iou": row["iou"], "scope": row["scope"],
         "metric": metric, "value": entry["value"], "ci_low": entry["ci_low"], "ci_high": entry["ci_high"],
         "note": entry.get("reason", "")}
        for row in result["results"] for metric, entry in row["metrics"].items()
    ])


def _row(result: dict, score: str, iou: float, scope: str) -> dict | None:
    return next((r for r in result["results"]
                 if r["score"] == score and r["scope"] == scope and np.isclose(r["iou"], iou)), None)


def table4(results_by_variant: Mapping[str, dict], iou: float = 0.10, scope: str = "all") -> pd.DataFrame:
    """Our counterpart of the winner's Table 4: per variant, AUROC and AP (95% CI) of the classification
    head alone, the detection map alone and the fused score, with the published values beside ours."""
    rows = []
    for variant, result in results_by_variant.items():
        for score, name in SCORE_NAMES.items():
            row = _row(result, score, iou, scope)
            if row is None:
                continue
            auroc, ap = row["metrics"]["auroc"], row["metrics"]["ap"]
            published = TABLE4.get(score)
            rows.append({
                "variant": variant, "case_score": name, "n_cases": row["n_cases"],
                "auroc": auroc["value"], "auroc_ci_low": auroc["ci_low"], "auroc_ci_high": auroc["ci_high"],
                "ap": ap["value"], "ap_ci_low": ap["ci_low"], "ap_ci_high": ap["ci_high"],
                "published_auroc": published.auroc if published else None,
                "published_ap": published.ap if published else None,
                "published_source": published.source if published else "",
            })
    return pd.DataFrame(rows)


def curve_sets(results_by_variant: Mapping[str, dict], iou: float = 0.10) -> dict[str, dict[str, tuple]]:
    """The pooled curves of every variant, labelled, in the form `figures.plot_roc/pr/froc` take."""
    sets = {"roc": {}, "pr": {}, "froc": {}}
    key = iou_key(iou)
    for variant, result in results_by_variant.items():
        curves = result["curves"]
        for score, c in curves["roc"].items():
            sets["roc"][f"{variant}: {SCORE_NAMES.get(score, score)}"] = (c["fpr"], c["tpr"], c["auroc"])
        if key in curves["pr"]:
            c = curves["pr"][key]
            sets["pr"][variant] = (c["recall"], c["precision"], c["ap"])
            c = curves["froc"][key]
            sets["froc"][variant] = (c["fp_per_case"], c["sensitivity"])
    return sets
