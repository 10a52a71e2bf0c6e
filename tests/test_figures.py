"""Every figure writes a PNG of the expected size with its data drawn, deterministically; odd inputs do not
break them."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from panorama_pdac.figures import (
    montage_panel,
    plot_froc,
    plot_pr,
    plot_qa_montage,
    plot_roc,
    plot_roi_recall,
    plot_training_curves,
    read_training_log,
)

LOG = """\
2026-01-01 10:00:00.000001: Epoch 0 
2026-01-01 10:00:00.000002: Current learning rate: 0.01 
2026-01-01 10:00:01.000000: train_loss 0.6476 
2026-01-01 10:00:01.000001: val_loss 0.6165 
2026-01-01 10:00:01.000002: Pseudo dice [np.float32(0.2), np.float32(0.4)] 
2026-01-01 10:00:01.000003: Epoch time: 0.1 s 
2026-01-01 10:00:02.000000: Epoch 1 
2026-01-01 10:00:02.000001: Current learning rate: 0.00694 
2026-01-01 10:00:03.000000: train_loss -0.1 
2026-01-01 10:00:03.000001: val_loss -0.05 
2026-01-01 10:00:03.000002: Pseudo dice [0.5, 0.7] 
2026-01-01 10:05:00.000000: Resuming from checkpoint_latest.pth 
2026-01-01 10:05:00.000001: Epoch 1 
2026-01-01 10:05:00.000002: Current learning rate: 0.00694 
2026-01-01 10:05:01.000000: train_loss -0.2 
2026-01-01 10:05:01.000001: val_loss -0.15 
2026-01-01 10:05:01.000002: Pseudo dice [np.float64(0.6), np.float64(nan)] 
"""


def _png_size(path) -> tuple[int, int]:
    assert path.stat().st_size > 1000
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def _coloured_pixels(path) -> int:
    """Pixels of a saturated colour: the plotted data. Axes, text, grids and the chance line are grey."""
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"), dtype=int)
    return int(((rgb.max(axis=2) - rgb.min(axis=2)) > 80).sum())


def _curves():
    roc = {"ce: fused": ([0, 0, 0.5, 1], [0, 0.5, 1, 1], 0.875), "ce: cls": ([0, 1], [0, 1], "undefined")}
    pr = {"ce": ([0, 0.5, 1], [1, 1, 0.5], 0.75)}
    froc = {"ce": ([0.0, 0.002, 0.05, 2.0], [0.2, 0.5, 0.8, 0.9])}
    return roc, pr, froc


def test_curve_plots(tmp_path):
    roc, pr, froc = _curves()
    plot_roc(roc, tmp_path / "roc.png")
    plot_pr(pr, tmp_path / "pr.png")
    plot_froc(froc, tmp_path / "froc.png")
    assert _png_size(tmp_path / "roc.png") == (600, 600)
    assert _png_size(tmp_path / "pr.png") == (600, 600)
    assert _png_size(tmp_path / "froc.png") == (700, 500)
    for name in ("roc", "pr", "froc"):
        assert _coloured_pixels(tmp_path / f"{name}.png") > 500, f"{name}: no curve drawn"
    plot_roc({}, tmp_path / "empty.png")  # every set undefined: a note, not a crash
    assert _png_size(tmp_path / "empty.png") == (600, 600)
    assert _coloured_pixels(tmp_path / "empty.png") == 0
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_figures_are_deterministic(tmp_path):
    roc, _, _ = _curves()
    plot_roc(roc, tmp_path / "a.png")
    plot_roc(roc, tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_read_training_log(tmp_path):
    (tmp_path / "training_log.txt").write_text(LOG)
    table = read_training_log(tmp_path / "training_log.txt")
    assert table["epoch"].tolist() == [0, 1]
    assert table["learning_rate"].tolist() == pytest.approx([0.01, 0.00694])
    assert table["train_loss"].tolist() == pytest.approx([0.6476, -0.2])  # the resumed epoch 1 wins
    assert table["pseudo_dice"].tolist() == pytest.approx([0.3, np.nan], nan_ok=True)
    assert read_training_log(tmp_path / "training_log.txt").equals(table)


def test_training_curves_from_logs_and_tables(tmp_path):
    (tmp_path / "log.txt").write_text(LOG)
    table = pd.DataFrame({"epoch": [0, 1, 2], "train_loss": [1.0, 0.8, 0.7], "val_loss": [1.1, 0.9, 0.85],
                          "pseudo_dice": [0.1, 0.3, 0.4]})
    runs = {"stage 1": {"fold 0": tmp_path / "log.txt", "fold 1": table},
            "stage 2, step 1": {"fold 0": table},
            "stage 2, step 2": {"fold 0": table[["epoch", "train_loss"]]}}  # a step without validation columns
    plot_training_curves(runs, tmp_path / "training.png")
    assert _png_size(tmp_path / "training.png") == (1200, 3 * 350)
    assert _coloured_pixels(tmp_path / "training.png") > 1000


def test_roi_recall(tmp_path):
    qa = pd.DataFrame({"case_id": ["a", "b", "c", "d"], "dice_lowres": [0.8, 0.7, 0.0, 0.9],
                       "roi_lesion_recall": [1.0, 0.6, 0.0, None], "roi_fallback": [False, False, True, False]})
    plot_roi_recall(qa, tmp_path / "qa.png")
    assert _png_size(tmp_path / "qa.png") == (1200, 450)
    assert _coloured_pixels(tmp_path / "qa.png") > 1000
    plot_roi_recall(qa.iloc[3:], tmp_path / "no_pdac.png")
    assert _png_size(tmp_path / "no_pdac.png") == (1200, 450)


def _volume():
    ct = np.full((5, 32, 32), -100.0)
    ct[:, 8:24, 8:24] = 60.0
    truth = np.zeros(ct.shape, dtype=np.uint8)
    truth[3, 12:18, 12:18] = 1
    pred = np.zeros(ct.shape, dtype=np.float32)
    pred[3, 13:19, 13:19] = 0.8
    return ct, truth, pred


def test_montage_panel_picks_the_lesion_slice():
    ct, truth, pred = _volume()
    title, ct2d, truth2d, pred2d = montage_panel("a", ct, truth, pred)
    assert truth2d.sum() == 36 and pred2d.sum() == 36 and ct2d.shape == (32, 32)
    _, _, truth2d, pred2d = montage_panel("b", ct, np.zeros_like(truth), np.zeros_like(pred))
    assert truth2d.shape == (32, 32) and not truth2d.any() and not pred2d.any()  # middle slice
    big_false_positive = pred.copy()
    big_false_positive[1, 2:30, 2:30] = 0.9
    _, _, truth2d, _ = montage_panel("c", ct, truth, big_false_positive)
    assert truth2d.sum() == 36  # a miss shows the missed lesion, not the larger false positive


def test_montage_handles_cases_without_lesion(tmp_path):
    ct, truth, pred = _volume()
    panels = [montage_panel("PDAC, detected", ct, truth, pred),
              montage_panel("non-PDAC, nothing", ct, np.zeros_like(truth), np.zeros_like(pred)),
              montage_panel("PDAC, missed", ct, truth, np.zeros_like(pred)),
              ("whole-slice mask", ct[0], np.ones((32, 32)), np.zeros((32, 32))),
              montage_panel("non-PDAC, false positive", ct, np.zeros_like(truth), pred),
              ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. matplotlib's "No contour levels were found"
        plot_qa_montage(panels, tmp_path / "montage.png", n_cols=4)
    assert _png_size(tmp_path / "montage.png") == (1200, 650)
    plot_qa_montage(panels[1:2], tmp_path / "one.png")
    assert _png_size(tmp_path / "one.png") == (300, 350)
    plot_qa_montage([], tmp_path / "none.png")
    assert _png_size(tmp_path / "none.png") == (300, 350)
    plot_qa_montage(panels[:1], tmp_path / "detected.png")
    # the detected lesion's outlines: more colour than an empty panel's legend
    assert _coloured_pixels(tmp_path / "detected.png") > _coloured_pixels(tmp_path / "one.png") + 300
