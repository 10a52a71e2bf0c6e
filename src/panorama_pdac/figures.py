"""The report's figures: ROC, precision-recall, FROC, training curves, localisation QA, lesion montage (and
the montage's choice of cases).

Built on matplotlib's object API (no pyplot state shared between calls, Agg rendering), at a fixed size
and without the version stamp in the PNG metadata, so the same inputs give the same file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import SimpleITK as sitk
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from .errors import DataError
from .geometry import Roi, crop_to_roi
from .io import atomic_path, read_image, read_json

DPI = 100
CT_WINDOW_HU = (-160, 240)  # abdominal soft-tissue window (level 40, width 400)
TRUTH_COLOUR, PRED_COLOUR = "lime", "red"


def _save(fig: Figure, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})


def _with_value(label: str, metric: str, value: float | str) -> str:
    return f"{label} ({metric} {value})" if isinstance(value, str) else f"{label} ({metric} {value:.3f})"


def _note_if_empty(ax, curves: Mapping) -> None:
    if not curves:
        ax.text(0.5, 0.5, "no curve: the set lacks one of the classes", ha="center", va="center",
                transform=ax.transAxes)


def plot_roc(curves: Mapping[str, tuple[Sequence[float], Sequence[float], float]], path: str | os.PathLike,
             title: str = "Patient-level ROC") -> None:
    """ROC curves, label -> (false positive rate, true positive rate, AUROC), over the chance diagonal."""
    fig = Figure(figsize=(6, 6), dpi=DPI)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    for label, (fpr, tpr, auroc) in curves.items():
        ax.step(fpr, tpr, where="post", label=_with_value(label, "AUROC", auroc))
    _note_if_empty(ax, curves)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="1 - specificity (non-PDAC cases)", ylabel="sensitivity (PDAC cases)",
           title=title, aspect="equal")
    if curves:
        ax.legend(loc="lower right", fontsize="small")
    _save(fig, path)


def plot_pr(curves: Mapping[str, tuple[Sequence[float], Sequence[float], float]], path: str | os.PathLike,
            title: str = "Lesion-level precision-recall") -> None:
    """Precision-recall curves, label -> (recall, precision, AP)."""
    fig = Figure(figsize=(6, 6), dpi=DPI)
    ax = fig.subplots()
    for label, (recall, precision, ap) in curves.items():
        ax.step(recall, precision, where="post", label=_with_value(label, "AP", ap))
    _note_if_empty(ax, curves)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall (lesions found)", ylabel="precision", title=title,
           aspect="equal")
    if curves:
        ax.legend(loc="lower left", fontsize="small")
    _save(fig, path)


def plot_froc(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str | os.PathLike,
              operating_points: Sequence[float] = (0.001, 0.01), title: str = "Lesion-level FROC") -> None:
    """FROC curves, label -> (false positives per case, lesion sensitivity), on a log axis, with the
    challenge's operating points marked."""
    fig = Figure(figsize=(7, 5), dpi=DPI)
    ax = fig.subplots()
    for fp in operating_points:
        ax.axvline(fp, color="grey", lw=0.8, ls=":")
    for label, (fp_per_case, sensitivity) in curves.items():
        ax.step(fp_per_case, sensitivity, where="post", label=label)
    _note_if_empty(ax, curves)
    ax.set_xscale("log")
    ax.set(xlim=(min(operating_points) / 2, 10), ylim=(0, 1.02), xlabel="false positives per case",
           ylabel="lesion sensitivity", title=title)
    if curves:
        ax.legend(loc="lower right", fontsize="small")
    _save(fig, path)


_LOG_PATTERNS = {
    "epoch": re.compile(r": Epoch (\d+)\s*$"),
    "learning_rate": re.compile(r": Current learning rate: (\S+)"),
    "train_loss": re.compile(r": train_loss (\S+)"),
    "val_loss": re.compile(r": val_loss (\S+)"),
    "pseudo_dice": re.compile(r": Pseudo dice \[(.*)\]"),
}


def read_training_log(path: str | os.PathLike) -> pd.DataFrame:
    """Per-epoch table (epoch, learning_rate, train_loss, val_loss, pseudo_dice) from an nnU-Net training log.

    Pseudo Dice is the mean over foreground classes. A resumed job repeats epochs; the last record of
    each epoch wins.
    """
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise DataError(path, f"cannot read training log ({e})") from e
    epochs: dict[int, dict] = {}
    current = None
    for line in lines:
        for key, pattern in _LOG_PATTERNS.items():
            match = pattern.search(line)
            if not match:
                continue
            if key == "epoch":
                current = int(match[1])
                epochs[current] = {"epoch": current}
            elif current is not None and key == "pseudo_dice":
                # numpy 2 prints list items as np.float32(0.5): drop the wrapper before reading numbers.
                values = re.findall(r"-?\d+(?:\.\d*)?(?:e-?\d+)?|nan", re.sub(r"np\.\w+\(", "", match[1]))
                epochs[current][key] = float(np.mean([float(v) for v in values])) if values else np.nan
            elif current is not None:
                epochs[current][key] = float(match[1])
            break
    columns = list(_LOG_PATTERNS)
    return pd.DataFrame([epochs[e] for e in sorted(epochs)], columns=columns)


def plot_training_curves(runs: Mapping[str, Mapping[str, pd.DataFrame | str | os.PathLike]],
                         path: str | os.PathLike) -> None:
    """One row per training stage or step (outer key), one line per fold (inner key).

    Each run is a per-epoch table (epoch, train_loss, val_loss, pseudo_dice) or an nnU-Net training log.
    Left: training (solid) and validation (dashed) loss; right: validation pseudo Dice.
    """
    n_rows = max(1, len(runs))
    fig = Figure(figsize=(12, 3.5 * n_rows), dpi=DPI)
    axes = fig.subplots(n_rows, 2, squeeze=False)
    for (stage, folds), (ax_loss, ax_dice) in zip(runs.items(), axes):
        for i, (fold, run) in enumerate(folds.items()):
            table = run if isinstance(run, pd.DataFrame) else read_training_log(run)
            colour = f"C{i % 10}"
            for column, style, ax in (("train_loss", "-", ax_loss), ("val_loss", "--", ax_loss),
                                      ("pseudo_dice", "-", ax_dice)):
                if column in table:
                    ax.plot(table["epoch"], table[column], ls=style, color=colour, label=fold if style == "-" else None)
        ax_loss.set(title=f"{stage}: loss (solid train, dashed validation)", xlabel="epoch", ylabel="loss")
        ax_dice.set(title=f"{stage}: pseudo Dice", xlabel="epoch", ylabel="Dice", ylim=(0, 1))
        for ax in (ax_loss, ax_dice):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize="small")
    fig.tight_layout()
    _save(fig, path)


def plot_roi_recall(qa: pd.DataFrame, path: str | os.PathLike) -> None:
    """Stage-1 localisation QA from `localisation_qa.case_qa_row` rows: per-case ROI lesion recall of the
    PDAC cases (fallback ROIs in red) and the distribution of the low-resolution pancreas Dice."""
    fig = Figure(figsize=(12, 4.5), dpi=DPI)
    ax_recall, ax_dice = fig.subplots(1, 2)
    pdac = qa[qa["roi_lesion_recall"].notna()].sort_values("roi_lesion_recall")
    if len(pdac):
        fallback = pdac["roi_fallback"].astype(bool).to_numpy()
        rank = np.arange(1, len(pdac) + 1)
        # Points, not bars: a recall of 0 (the worst case) must stay visible.
        ax_recall.plot(rank, pdac["roi_lesion_recall"], color="C0", lw=0.8)
        ax_recall.scatter(rank, pdac["roi_lesion_recall"], c=np.where(fallback, "red", "C0"), zorder=3)
        missed = int((pdac["roi_lesion_recall"] < 1).sum())
        ax_recall.set_title(f"ROI lesion recall: {missed} of {len(pdac)} PDAC cases lose lesion voxels")
    else:
        ax_recall.text(0.5, 0.5, "no PDAC case", ha="center", va="center", transform=ax_recall.transAxes)
        ax_recall.set_title("ROI lesion recall")
    ax_recall.set(ylim=(-0.03, 1.05), xlabel="PDAC cases, sorted (red: whole-image fallback)",
                  ylabel="fraction of lesion voxels inside the ROI")
    ax_dice.hist(qa["dice_lowres"].dropna(), bins=np.linspace(0, 1, 21), color="C1")
    ax_dice.set(title="Stage-1 pancreas Dice (low resolution)", xlabel="Dice", ylabel="cases")
    for axis in (ax_recall.xaxis, ax_dice.yaxis):
        axis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    _save(fig, path)


def montage_panel(title: str, ct_zyx: np.ndarray, truth_zyx: np.ndarray, pred_zyx: np.ndarray
                  ) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """The axial slice with the most true lesion (else the most predicted lesion), as a `plot_qa_montage`
    entry; the middle slice when there is neither. Masks are binarised (non-zero). The true lesion wins so
    that a miss shows the lesion that was missed, not the false positives elsewhere."""
    truth, pred = np.asarray(truth_zyx) != 0, np.asarray(pred_zyx) != 0
    area = truth.sum(axis=(1, 2)) if truth.any() else pred.sum(axis=(1, 2))
    z = int(np.argmax(area)) if area.any() else ct_zyx.shape[0] // 2
    return title, ct_zyx[z], truth[z], pred[z]


def _outline(ax, mask: np.ndarray, colour: str) -> None:
    mask = np.asarray(mask) != 0
    if 0 < mask.sum() < mask.size:  # a contour needs both inside and outside
        ax.contour(mask.astype(np.float32), levels=[0.5], colors=colour, linewidths=1.2)


def plot_qa_montage(cases: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]], path: str | os.PathLike,
                    n_cols: int = 4) -> None:
    """Grid of CT slices (title, ct 2D, truth mask 2D, predicted mask 2D) in an abdominal window, with
    the ground-truth (green) and predicted (red) lesion outlines."""
    n_cols = max(1, min(n_cols, len(cases)))
    n_rows = max(1, -(-len(cases) // n_cols))
    fig = Figure(figsize=(3 * n_cols, 3 * n_rows + 0.5), dpi=DPI)
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, (title, ct, truth, pred) in zip(axes, cases):
        ax.imshow(ct, cmap="gray", vmin=CT_WINDOW_HU[0], vmax=CT_WINDOW_HU[1], interpolation="nearest")
        _outline(ax, truth, TRUTH_COLOUR)
        _outline(ax, pred, PRED_COLOUR)
        ax.set_title(title, fontsize="small")
    if not cases:
        axes[0].text(0.5, 0.5, "no cases", ha="center", va="center", transform=axes[0].transAxes)
    fig.legend(handles=[Line2D([], [], color=TRUTH_COLOUR, label="ground truth lesion"),
                        Line2D([], [], color=PRED_COLOUR, label="predicted lesion")],
               loc="lower center", ncols=2, fontsize="small", frameon=False)
    _save(fig, path)


def qa_panels(scores: pd.DataFrame, cases: pd.DataFrame, threshold: float, per_kind: int = 2) -> list:
    """Montage panels of true positives, false positives and misses by the fused score at `threshold`,
    each the axial slice with the most lesion inside the stage-1 ROI."""
    truth = cases.set_index("case_id")
    scored = scores.assign(pdac=[bool(truth.at[c, "pdac_voxels"]) for c in scores.case_id])
    kinds = {
        "true positive": scored[(scored.pdac) & (scored.fused >= threshold)].sort_values("fused", ascending=False),
        "false positive": scored[(~scored.pdac) & (scored.fused >= threshold)].sort_values("fused", ascending=False),
        "missed": scored[(scored.pdac) & (scored.fused < threshold)].sort_values("fused"),
    }
    panels = []
    for kind, rows in kinds.items():
        for r in rows.head(per_kind).itertuples():
            roi = Roi.from_json(read_json(r.roi))
            ct = sitk.GetArrayFromImage(crop_to_roi(read_image(truth.at[r.case_id, "image"], r.case_id), roi))
            label = sitk.GetArrayFromImage(crop_to_roi(read_image(truth.at[r.case_id, "label"], r.case_id), roi))
            det = sitk.GetArrayFromImage(crop_to_roi(read_image(r.detection_map, r.case_id), roi))
            panels.append(montage_panel(f"{kind}: {r.case_id} (score {r.fused:.2f})", ct, (label == 1).astype(np.uint8),
                                        (det > 0).astype(np.uint8)))
    return panels
