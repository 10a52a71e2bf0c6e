"""Challenge metrics on hand-checkable cases, and against picai_eval's own command line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from panorama_pdac.errors import DataError
from panorama_pdac import metrics as metrics_module
from panorama_pdac.io import write_image
from panorama_pdac.metrics import (
    case_lesion_results,
    curve_sets,
    evaluate_cases,
    evaluate_lesion_results,
    lesion_dice,
    metrics_table,
    stored_metrics,
    table4,
)
from panorama_pdac.scores import fuse

SHAPE = (4, 16, 16)
LESION = (slice(1, 3), slice(4, 8), slice(4, 8))  # 32 voxels
ELSEWHERE = (slice(1, 3), slice(10, 14), slice(10, 14))


def _case(pdac: bool, det_value: float = 0.0, fp_value: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(detection map, label): a candidate exactly on the lesion (or where it would be), and optionally
    a false positive elsewhere."""
    label = np.zeros(SHAPE, dtype=np.uint8)
    det = np.zeros(SHAPE, dtype=np.float32)
    if pdac:
        label[LESION] = 1
    det[LESION] = det_value
    det[ELSEWHERE] = fp_value
    return det, label


def _evaluate(cases: dict[str, tuple[np.ndarray, np.ndarray]], **kwargs) -> dict:
    kwargs.setdefault("n_bootstrap", 50)
    return evaluate_cases({c: d for c, (d, _) in cases.items()}, {c: lab for c, (_, lab) in cases.items()},
                          **kwargs)


def _metric(result: dict, name: str, score: str = "det", iou: float = 0.10, scope: str = "all"):
    row = next(r for r in result["results"]
               if r["score"] == score and r["scope"] == scope and r["iou"] == pytest.approx(iou))
    return row["metrics"][name]


def _value(result: dict, name: str, **kwargs):
    return _metric(result, name, **kwargs)["value"]


def _four_cases() -> dict:
    # det max: PDAC 0.9 and 0.3, non-PDAC 0.5 and 0.1 -> AUROC 3/4. Lesion ranking 0.9 TP, 0.5 FP,
    # 0.3 TP, 0.1 FP -> AP = 0.5 * 1 + 0.5 * 2/3.
    return {"p1": _case(True, 0.9), "p2": _case(True, 0.3), "n1": _case(False, fp_value=0.5),
            "n2": _case(False, fp_value=0.1)}


def test_perfect_detector():
    cases = {"p1": _case(True, 0.9), "p2": _case(True, 0.8), "n1": _case(False), "n2": _case(False, fp_value=0.1)}
    result = _evaluate(cases)
    assert _value(result, "auroc") == pytest.approx(1.0)
    assert _value(result, "ap") == pytest.approx(1.0)
    assert _value(result, "auroc_ap_mean") == pytest.approx(1.0)
    assert _value(result, "sensitivity_at_0.001_fp") == pytest.approx(1.0)
    assert _value(result, "lesion_dice") == pytest.approx(1.0)
    auroc = _metric(result, "auroc")
    assert (auroc["ci_low"], auroc["ci_high"]) == pytest.approx((1.0, 1.0))


def test_reversed_detector_has_auroc_zero():
    cases = {"p1": _case(True, 0.2), "p2": _case(True, 0.1), "n1": _case(False, fp_value=0.8),
             "n2": _case(False, fp_value=0.9)}
    assert _value(_evaluate(cases), "auroc") == pytest.approx(0.0)


def test_a_detector_that_finds_nothing_has_ap_zero_not_minus_zero():
    cases = {"p1": _case(True), "n1": _case(False, fp_value=0.4), "n2": _case(False)}
    ap = _metric(_evaluate(cases), "ap")
    assert ap["value"] == 0.0 and not np.signbit(ap["value"])  # a table would print "-0.0"
    assert not np.signbit(ap["ci_low"]) and not np.signbit(ap["ci_high"])


def test_hand_computed_auroc_ap_and_sensitivity():
    result = _evaluate(_four_cases())
    assert _value(result, "auroc") == pytest.approx(0.75)
    assert _value(result, "ap") == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert _value(result, "auroc_ap_mean") == pytest.approx((0.75 + 0.5 + 1 / 3) / 2)
    # Below 0.5 FP per case only the 0.9 candidate is above threshold: one of two lesions.
    assert _value(result, "sensitivity_at_0.01_fp") == pytest.approx(0.5)
    assert [c["det_max"] for c in result["cases"]] == pytest.approx([0.5, 0.1, 0.9, 0.3])  # sorted case ids


def test_fused_score_changes_auroc_but_not_ap():
    cases = _four_cases()
    cls = {"p1": 0.8, "p2": 0.7, "n1": 0.2, "n2": 0.1}
    det = {c: float(d.max()) for c, (d, _) in cases.items()}
    fused = {c: (cls[c] + det[c]) / 2 for c in cases}
    result = _evaluate(cases, case_scores={"cls": cls, "det": det, "fused": fused})
    assert _value(result, "auroc", score="det") == pytest.approx(0.75)
    assert _value(result, "auroc", score="cls") == pytest.approx(1.0)
    assert _value(result, "auroc", score="fused") == pytest.approx(1.0)
    assert [_value(result, "ap", score=s) for s in ("cls", "det", "fused")] == [pytest.approx(0.5 + 1 / 3)] * 3
    reversed_cls = {c: 1 - p for c, p in cls.items()}
    assert _value(_evaluate(cases, case_scores={"cls": reversed_cls}), "auroc", score="cls") == pytest.approx(0.0)


def test_single_class_is_undefined_not_nan():
    negatives = {"n1": _case(False, fp_value=0.5), "n2": _case(False)}
    result = _evaluate(negatives)
    json.dumps(result, allow_nan=False)  # no NaN anywhere
    for name in ("auroc", "ap", "auroc_ap_mean", "sensitivity_at_0.01_fp", "lesion_dice"):
        entry = _metric(result, name)
        assert entry["value"] == "undefined" and entry["reason"]
        assert entry["ci_low"] is None
    assert "0 PDAC and 2 non-PDAC" in _metric(result, "auroc")["reason"]

    positives = _evaluate({"p1": _case(True, 0.9), "p2": _case(True, 0.3, fp_value=0.4)})
    assert _value(positives, "auroc") == "undefined"
    assert _value(positives, "ap") == pytest.approx(0.5 + 0.5 * 2 / 3)  # lesions still define AP


def test_iou_threshold_decides_a_hit():
    label = np.zeros((2, 4, 60), dtype=np.uint8)
    label[0, 0, 0:50] = 1  # a 50-voxel lesion
    det = np.zeros(label.shape, dtype=np.float32)
    det[0, 0, 44:50] = 0.7  # 6 voxels, all inside: IoU = 6 / 50 = 0.12
    fp = np.zeros_like(det)
    fp[1, 3, 50:53] = 0.05  # picai_eval's FROC ends at the lowest confidence: keep the hit above it
    cases = {"p": (det, label), "n": (fp, np.zeros_like(label))}
    result = _evaluate(cases, iou_thresholds=(0.10, 0.15))
    assert _value(result, "sensitivity_at_0.01_fp", iou=0.10) == pytest.approx(1.0)
    assert _value(result, "ap", iou=0.10) == pytest.approx(1.0)
    assert _value(result, "sensitivity_at_0.01_fp", iou=0.15) == pytest.approx(0.0)
    assert _value(result, "ap", iou=0.15) == pytest.approx(0.0)
    assert _value(result, "auroc", iou=0.10) == _value(result, "auroc", iou=0.15)  # case level: no matching


def test_anatomy_labels_are_not_lesions():
    det, label = _case(False, fp_value=0.6)
    label[ELSEWHERE] = 4  # pancreas parenchyma under the candidate
    result = _evaluate({"n": (det, label), "p": _case(True, 0.9)})
    assert result["cases"][0]["pdac"] is False
    assert _value(result, "auroc") == pytest.approx(1.0)
    assert _value(result, "ap") == pytest.approx(1.0)  # the 0.6 candidate is a false positive ranked below


def test_stored_lesion_results_give_the_same_auroc_and_ap():
    """What the paired comparison of variants recomputes from metrics.json, without the detection maps."""
    cases = {**_four_cases(), "n3": _case(False)}  # n3: no candidate, no lesion, no lesion results
    cls = {"p1": 0.8, "p2": 0.7, "n1": 0.2, "n2": 0.1, "n3": 0.4}
    result = json.loads(json.dumps(_evaluate(cases, case_scores={"cls": cls})))
    assert result["cases"][2]["lesion_results"] == {"0.1": [], "0.15": []}
    assert result["cases"][4]["lesion_results"]["0.1"] == [[1, pytest.approx(0.3), 1.0]]
    for iou in (0.10, 0.15):
        assert stored_metrics(result, iou, "cls").calc_auroc() == _value(result, "auroc", score="cls", iou=iou)
        assert stored_metrics(result, iou).calc_AP() == _value(result, "ap", score="cls", iou=iou)


def test_metrics_of_stored_lesion_results_read_no_map(tmp_path, monkeypatch):
    """Another fusion rule, from the stored per-case lesion results: the same metrics as evaluating the maps,
    and not one map read (evaluate_cv after a change of evaluation.fusion)."""
    cases = {**_four_cases(), "n3": _case(False, fp_value=0.2)}
    det_paths, label_paths = {}, {}
    for case_id, (det, label) in cases.items():
        det_paths[case_id], label_paths[case_id] = tmp_path / f"{case_id}_det.nii.gz", tmp_path / f"{case_id}.nii.gz"
        write_image(sitk.GetImageFromArray(det), det_paths[case_id])
        write_image(sitk.GetImageFromArray(label), label_paths[case_id])
    reads = []
    for reader in ("read_image_header", "read_label"):
        read = getattr(metrics_module, reader)
        monkeypatch.setattr(metrics_module, reader, lambda path, case_id=None, read=read: reads.append(path)
                            or read(path, case_id))
    stored = json.loads(json.dumps(case_lesion_results(det_paths, label_paths)))  # as lesion_results.json
    assert len(reads) == 2 * len(cases)
    cls = {"p1": 0.8, "p2": 0.45, "n1": 0.2, "n2": 0.5, "n3": 0.4}
    det = {c: float(d.max()) for c, (d, _) in cases.items()}
    folds = {"p1": 0, "n1": 0, "n3": 0, "p2": 1, "n2": 1}
    for rule in ("mean", "max", "cls"):
        scores = {"cls": cls, "det": det, "fused": dict(zip(cls, fuse(list(cls.values()), list(det.values()), rule)))}
        reads.clear()
        from_stored = evaluate_lesion_results(stored, scores, n_bootstrap=30, seed=1, folds=folds, variant="v")
        assert reads == []
        assert from_stored == evaluate_cases(det_paths, label_paths, scores, n_bootstrap=30, seed=1, folds=folds,
                                             variant="v")
    assert _value(from_stored, "auroc", score="fused") == pytest.approx(5 / 6)  # cls alone: 0.8, 0.45 vs 0.5
    with pytest.raises(ValueError, match=r"case score 'cls' is missing for cases \['n3'\]"):
        evaluate_lesion_results(stored, {"cls": {c: v for c, v in cls.items() if c != "n3"}})


def test_per_fold_scopes_and_bootstrap_are_reproducible():
    cases = {**_four_cases(), "n3": _case(False, fp_value=0.2)}
    folds = {"p1": 0, "n1": 0, "p2": 1, "n2": 1, "n3": 2}
    result = _evaluate(cases, folds=folds, n_bootstrap=100, seed=3)
    assert {r["scope"] for r in result["results"]} == {"all", "fold_0", "fold_1", "fold_2"}
    assert _value(result, "auroc", scope="fold_0") == pytest.approx(1.0)  # 0.9 vs 0.5
    assert _value(result, "auroc", scope="fold_1") == pytest.approx(1.0)  # 0.3 vs 0.1
    assert _value(result, "auroc", scope="fold_2") == "undefined"
    assert [c["fold"] for c in result["cases"]] == [0, 1, 2, 0, 1]
    ci = _metric(result, "auroc")
    assert 0 <= ci["ci_low"] <= ci["ci_high"] <= 1
    assert _evaluate(cases, folds=folds, n_bootstrap=100, seed=3) == result
    no_ci = _evaluate(cases, n_bootstrap=0)
    assert _metric(no_ci, "ap")["ci_low"] is None


def test_lesion_dice():
    det, label = _case(True, 0.9)
    det[1, 4, 4:8] = 0  # 4 of 32 lesion voxels missed: Dice = 2 * 28 / (28 + 32)
    assert lesion_dice(det, label) == pytest.approx(56 / 60)
    assert lesion_dice(*_case(False, fp_value=0.3)) is None
    result = _evaluate({"a": (det, label), "b": _case(True, 0.5), "c": _case(False, fp_value=0.2)})
    assert _value(result, "lesion_dice") == pytest.approx((56 / 60 + 1) / 2)


def test_invalid_inputs_name_the_case(tmp_path):
    det, label = _case(True, 0.9)
    with pytest.raises(DataError, match="case a: .*shape"):
        _evaluate({"a": (det[:, :8], label)})
    with pytest.raises(DataError, match="case a: .*not a valid detection map: negative"):
        _evaluate({"a": (-det, label)})
    softmax = det.copy()
    softmax[1, 4, 4] = 0.95  # two values in one blob: a probability map, not a detection map
    with pytest.raises(DataError, match="case a: .*not a valid detection map: a connected blob"):
        _evaluate({"a": (softmax, label)})
    with pytest.raises(ValueError, match=r"no detection map for \['b'\]"):
        evaluate_cases({"a": det}, {"a": label, "b": label})
    with pytest.raises(ValueError, match=r"case score 'cls' is missing for cases \['a'\]"):
        evaluate_cases({"a": det}, {"a": label}, case_scores={"cls": {}})
    det_image, label_image = sitk.GetImageFromArray(det), sitk.GetImageFromArray(label)
    label_image.SetOrigin((5.0, 0.0, 0.0))
    write_image(det_image, tmp_path / "det.nii.gz")
    write_image(label_image, tmp_path / "label.nii.gz")
    with pytest.raises(DataError, match="case a: .*det.nii.gz: detection map geometry"):
        evaluate_cases({"a": tmp_path / "det.nii.gz"}, {"a": tmp_path / "label.nii.gz"})


def test_map_files_are_read_slab_by_slab_then_in_their_box(tmp_path, monkeypatch):
    """A map file is checked and its candidates found a slab at a time (this one's two: z 0-1 and 2-3), then
    only the box holding them and the lesion is read whole: the results of the arrays themselves."""
    det, label = _case(True, 0.9, fp_value=0.4)
    det[3, 15, 15] = 0.2  # a candidate alone in the second slab
    write_image(sitk.GetImageFromArray(det), tmp_path / "det.nii.gz")
    write_image(sitk.GetImageFromArray(label), tmp_path / "label.nii.gz")
    regions = []
    read_region = metrics_module.read_region
    monkeypatch.setattr(metrics_module, "read_region", lambda source, start, size, case_id=None: regions.append(
        (start, size)) or read_region(source, start, size, case_id))
    from_file = case_lesion_results({"a": tmp_path / "det.nii.gz"}, {"a": tmp_path / "label.nii.gz"})
    assert regions == [([4, 4, 1], [12, 12, 3])]  # (x, y, z): the lesion (z 1-2) to the lone candidate (z 3)
    assert from_file == case_lesion_results({"a": det}, {"a": label})
    assert sorted(r[1] for r in from_file["cases"]["a"]["lesion_results"]["0.1"]) == pytest.approx([0.2, 0.4, 0.9])
    det[3, 0, 0] = -0.5  # in the last slab only
    write_image(sitk.GetImageFromArray(det), tmp_path / "det.nii.gz")
    with pytest.raises(DataError, match="case a: .*det.nii.gz: not a valid detection map: negative, NaN"):
        case_lesion_results({"a": tmp_path / "det.nii.gz"}, {"a": tmp_path / "label.nii.gz"})


def test_tables_and_curves():
    cases = _four_cases()
    cls = {"p1": 0.8, "p2": 0.7, "n1": 0.2, "n2": 0.1}
    scores = {"cls": cls, "det": {c: float(d.max()) for c, (d, _) in cases.items()},
              "fused": {c: 0.5 for c in cases}}
    result = _evaluate(cases, case_scores=scores, variant="ce")
    json.dumps(result, allow_nan=False)
    tidy = metrics_table(result)
    assert list(tidy.columns) == ["variant", "score", "iou", "scope", "metric", "value", "ci_low", "ci_high", "note"]
    assert len(tidy) == 3 * 2 * 6  # scores x IoU thresholds x metrics, one scope
    auroc = tidy.query("score == 'cls' and metric == 'auroc' and iou == 0.15")
    assert auroc["value"].tolist() == [pytest.approx(1.0)] and auroc["variant"].tolist() == ["ce"]
    # Equal fused scores for every case: AUROC 0.5, by ties.
    assert tidy.query("score == 'fused' and metric == 'auroc'")["value"].tolist() == [0.5, 0.5]

    t4 = table4({"ce": result, "tversky": result})
    assert t4["case_score"].tolist() == ["classification head alone", "detection map alone", "fused score"] * 2
    assert t4["auroc"].tolist()[:3] == pytest.approx([1.0, 0.75, 0.5])
    assert t4["published_auroc"].tolist()[:3] == pytest.approx([0.9671, np.nan, 0.9833], nan_ok=True)
    assert t4["published_ap"].tolist()[:3] == pytest.approx([0.8011, np.nan, 0.8011], nan_ok=True)
    assert "Table 4" in t4["published_source"][0] and "100 cases" in t4["published_source"][0]

    sets = curve_sets({"ce": result})
    assert set(sets["roc"]) == {"ce: classification head alone", "ce: detection map alone", "ce: fused score"}
    fpr, tpr, auc = sets["roc"]["ce: detection map alone"]
    assert auc == pytest.approx(0.75) and fpr[-1] == tpr[-1] == 1.0
    recall, precision, ap = sets["pr"]["ce"]
    assert ap == pytest.approx(0.5 + 1 / 3)
    fp_per_case, sensitivity = sets["froc"]["ce"]
    assert np.isfinite(fp_per_case).all() and max(sensitivity) == pytest.approx(1.0)


def _random_set(rng: np.random.Generator, n_cases: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Cases with lesions, hits, near misses and false positives of distinct confidences, each object in
    its own 10 x 10 cell so no two candidates touch."""
    cases = {}
    for i in range(n_cases):
        det = np.zeros((6, 30, 30), dtype=np.float32)
        label = np.zeros(det.shape, dtype=np.uint8)
        cells = rng.permutation(9)
        if i % 3 != 2:  # two of three cases have PDAC
            y, x = 10 * (cells[0] // 3), 10 * (cells[0] % 3)
            label[1:4, y + 1:y + 6, x + 1:x + 6] = 1
            shift = rng.choice([0, 1, 3])  # IoU 1, 0.47 or 0.087 (a miss)
            if rng.random() < 0.8:
                det[1:4, y + 1 + shift:y + 6 + shift, x + 1 + shift:x + 6 + shift] = rng.uniform(0.05, 1)
        for cell in cells[1:1 + rng.integers(0, 3)]:
            y, x = 10 * (cell // 3), 10 * (cell % 3)
            size = rng.integers(2, 5)
            det[2:4, y + 1:y + 1 + size, x + 1:x + 1 + size] = rng.uniform(0.05, 1)
        cases[f"case_{i:02d}"] = (det, label)
    return cases


def test_agrees_with_the_picai_eval_command_line(tmp_path):
    """Independent check: same files, picai_eval's own CLI, detection-map maximum as case score, IoU 0.10."""
    cases = _random_set(np.random.default_rng(2024), 15)
    det_paths, label_paths = {}, {}
    for case_id, (det, label) in cases.items():
        det_paths[case_id] = tmp_path / "det" / f"{case_id}.nii.gz"
        label_paths[case_id] = tmp_path / "labels" / f"{case_id}.nii.gz"
        write_image(sitk.GetImageFromArray(det), det_paths[case_id])
        write_image(sitk.GetImageFromArray(label), label_paths[case_id])
    out = tmp_path / "picai_metrics.json"
    subprocess.run([sys.executable, "-m", "picai_eval", "--input", str(tmp_path / "det"),
                    "--labels", str(tmp_path / "labels"), "--output", str(out)],
                   check=True, capture_output=True, text=True)
    theirs = json.loads(out.read_text())
    assert theirs["num_cases"] == 15

    ours = evaluate_cases(det_paths, label_paths, iou_thresholds=(0.10,), n_bootstrap=0)
    assert 0 < _value(ours, "auroc") < 1 and 0 < _value(ours, "ap") < 1  # a set that tests something
    assert _value(ours, "auroc") == pytest.approx(theirs["auroc"], abs=1e-12)
    assert _value(ours, "ap") == pytest.approx(theirs["AP"], abs=1e-12)
    assert ours["results"][0]["n_lesions"] == theirs["num_lesions"]
