"""The pure pieces of benchmarks/head_diagnostic.py: which windows and cells hold the lesion, the case-level
aggregations and the probes, on synthetic arrays."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "head_diagnostic.py"


@pytest.fixture(scope="module")
def hd():
    spec = importlib.util.spec_from_file_location("head_diagnostic", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _slicer(start, size):
    return (slice(None), *[slice(s, s + n) for s, n in zip(start, size)])


def test_window_holds_lesion_only_where_a_lesion_voxel_falls_inside(hd):
    lesion = np.zeros((4, 8, 8), bool)
    lesion[1, 5, 7] = True
    slicers = [_slicer(start, (4, 4, 4)) for start in [(0, 0, 0), (0, 4, 4), (0, 2, 4), (0, 4, 0)]]
    assert hd.window_holds_lesion(lesion, slicers).tolist() == [False, True, True, False]


def test_cells_follow_the_order_of_a_flattened_feature_map(hd):
    window = np.zeros((4, 8, 8), bool)
    window[3, 0, 5] = True  # block (1, 0, 1) of the 2 x 2 x 2 grid of (2, 4, 4)-voxel cells
    cells = hd.cells_holding(window, (2, 4, 4))
    expected = np.zeros((2, 2, 2), bool)
    expected[1, 0, 1] = True
    assert cells.tolist() == expected.ravel().tolist()


def _case(hd, case_id, pdac, logits, features=None, cell_lesion=None, cell_pancreas=None):
    """A case whose windows double as its cells (the probes do not care which rows are which)."""
    w = len(logits)
    features = np.zeros((w, 3)) if features is None else features
    cell_lesion = np.zeros(w, bool) if cell_lesion is None else cell_lesion
    cell_pancreas = np.ones(w, bool) if cell_pancreas is None else cell_pancreas
    return hd.CaseWindows(case_id, pdac, np.asarray(logits, np.float32), features, features, features,
                          np.zeros(w, bool), cell_lesion, cell_pancreas, 0.5, 0.5)


def test_head_rules_mean_of_logits_max_and_top_k(hd):
    # One confident window among three: mean of logits dilutes it, max and top-k keep it.
    case = _case(hd, "a", 1, [[0.0, 4.0], [0.0, -2.0], [0.0, -2.0], [0.0, -2.0]])
    p = 1 / (1 + np.exp(-np.array([4.0, -2.0, -2.0, -2.0])))
    mean_rule, max_rule, top_rule = hd.HEAD_RULES.values()
    assert mean_rule(case) == pytest.approx(1 / (1 + np.exp(0.5)))
    assert max_rule(case) == pytest.approx(p[0])
    assert top_rule(case) == pytest.approx(p[:hd.TOP_WINDOWS].mean())
    assert hd.top_k_mean(np.array([1.0, 5.0, 3.0]), 2) == 4.0


def test_probe_separates_what_the_features_hold_and_not_what_they_do_not(hd):
    rng = np.random.default_rng(0)

    def cases(n, informative):
        out = []
        for i in range(n):
            pdac = i % 2
            features = rng.normal(size=(20, 3)) + (2.0 * pdac if informative else 0.0) * np.array([1, 0, 0])
            out.append(_case(hd, f"c{i}", pdac, np.zeros((20, 2)), features))
        return out

    probe = hd.PROBES["probe, stages average-pooled per window"]
    for informative, low, high in [(True, 0.99, 1.0), (False, 0.0, 0.9)]:
        train, test = cases(20, informative), cases(20, informative)
        scores, _ = hd.probe_scores(probe, train, test)
        assert set(scores) == {"mean", "max"}
        assert low <= hd.auroc(np.array([c.pdac for c in test]), scores["mean"]) <= high


def test_cell_probe_learns_cells_and_ranks_cases_by_their_top_cells(hd):
    rng = np.random.default_rng(1)

    def case(i):
        pdac = i % 2
        lesion = np.zeros(200, bool)
        lesion[:5] = bool(pdac)  # a lesion covers a few cells of a PDAC case only
        features = rng.normal(size=(200, 3)) + 3.0 * lesion[:, None] * np.array([1, 0, 0])
        return _case(hd, f"c{i}", pdac, np.zeros((200, 2)), features, lesion)

    probe = hd.PROBES["probe, coarsest-stage cells (target: cell holds lesion)"]
    test = [case(i) for i in range(10)]
    scores, (fitted, held_out) = hd.probe_scores(probe, [case(i) for i in range(10, 30)], test)
    labels = np.array([c.pdac for c in test])
    assert hd.auroc(labels, scores[f"top-{hd.TOP_CELLS}"]) > 0.9
    assert fitted > 0.9 and held_out > 0.9  # cell level: lesion cells against all others


def test_top_cells_in_pancreas_ignore_look_alikes_elsewhere(hd):
    p = np.r_[np.full(30, 0.9), np.full(30, 0.1)]
    inside = np.r_[np.zeros(30, bool), np.ones(30, bool)]
    case = _case(hd, "a", 0, np.zeros((60, 2)), cell_pancreas=inside)
    assert hd.top_cells_in_pancreas(p, case) == pytest.approx(0.1)


def test_auroc_table_pools_the_folds_held_out_cases(hd):
    per_fold = {0: hd.FoldResult(np.array([0, 1]), {"s": np.array([0.1, 0.9])}, {}),
                1: hd.FoldResult(np.array([0, 1]), {"s": np.array([0.95, 0.99])}, {})}
    row = hd.auroc_table(per_fold).splitlines()[2]
    assert row == "| s | 0.750 | 1.000 | 1.000 |"  # pooled: 0.95 outranks the first fold's 0.9


def test_training_rows_keep_every_positive_and_subsample_negatives(hd):
    targets = np.r_[np.ones(5, bool), np.zeros(95, bool)]
    assert len(hd.training_rows(targets, 100)) == 100
    rows = hd.training_rows(targets, 20)
    assert len(rows) == 20 and set(range(5)) <= set(rows.tolist())
