"""Does the stage-2 classification head learn, and do the encoder's features hold the lesion? (issue 14)

Run by hand, not by pytest, on the stage-2 models of a finished workflow run (CPU, one thread by default):

    PYTHONPATH=src .venv/bin/python benchmarks/head_diagnostic.py --results results --variant ce [--out note.md]

Every fold's step-3 model predicts every case of the stage-2 raw dataset (its training and its held-out cases)
through the project's own `predict_case`: nnU-Net's preprocessing and sliding window, no mirroring. Hooks on
the network record, per sliding window, the head's logits and the encoder's last three stages (the ones the
head reads); the label, preprocessed to the same grid, says which windows and which coarsest-stage cells hold
lesion voxels. From these it prints:
  - case-level AUROC of the head under three aggregations over windows, of linear probes on the frozen encoder
    features (logistic regression fitted on the fold's training cases, scored on its held-out cases) and of the
    lesion map's maximum, pooled over the folds' held-out cases and per fold;
  - per-window head P(PDAC) by group (windows holding the lesion, other windows of PDAC cases, windows of
    non-PDAC cases) on held-out and on training cases: a head that separates neither underfits, one that
    separates only its training cases overfits.
The crops are those of the workflow's stage-2 dataset (training crops, cut around the ground-truth pancreas
when `stage2.crop_source` is `truth`), not the stage-1 ROIs the workflow's CV predictions use; the workflow's
own CV head AUROC is printed beside them when results/stage2/<variant>/cv/ exists. Nothing is written into
the results folder.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import SimpleITK as sitk
import torch

from panorama_pdac.io import read_image, read_json, read_tsv, write_text
from panorama_pdac.labels import LESION, PANCREAS
from panorama_pdac.networks import FPN_LEVELS, MultiTaskUNet
from panorama_pdac.nnunet.env import resolve_device
from panorama_pdac.nnunet.multitask_inference import PDAC_CLASS, pdac_probability, predict_case
from panorama_pdac.nnunet.datasets import image_file, label_file, raw_dataset_dir
from panorama_pdac.stage2 import CASE_LABELS, DATASET_NAME

TOP_WINDOWS = 3  # top-k mean of window probabilities: between max (one window) and mean (all)
# Top-k mean of cell probabilities: a demo lesion touches 140-370 coarsest-stage cells summed over the windows
# holding it (measured), so 20 averages over a lesion's strongest cells rather than over one outlier.
TOP_CELLS = 20
PROBE_C = 1.0  # inverse L2 strength of the probes, on standardised features
# Training rows per probe: beyond this, negative rows are subsampled (all positives kept; the class weights
# are balanced anyway). Real-anatomy folds hold ~10^6 coarsest-stage cells.
PROBE_ROWS = 200_000


@dataclass
class CaseWindows:
    """One case as one fold's model sees it: per sliding window (W) and per coarsest-stage cell (N per window)."""

    case_id: str
    pdac: int
    logits: np.ndarray  # (W, 2) head logits
    avg_pooled: np.ndarray  # (W, F) last FPN_LEVELS stages, average-pooled per window, concatenated
    max_pooled: np.ndarray  # (W, F) the same, max-pooled
    cells: np.ndarray  # (W * N, C) coarsest stage, one row per cell
    window_lesion: np.ndarray  # (W,) bool: the window holds a lesion voxel
    cell_lesion: np.ndarray  # (W * N,) bool: the cell's block of voxels holds a lesion voxel
    cell_pancreas: np.ndarray  # (W * N,) bool: ... a voxel of the ground-truth pancreas (lesion, parenchyma, duct)
    lesion_max: float  # maximum of the lesion probability map
    lesion_max_pancreas: float  # its maximum inside the ground-truth pancreas (lesion, parenchyma, duct)

    @property
    def window_pdac(self) -> np.ndarray:
        return torch.softmax(torch.from_numpy(self.logits).float(), 1)[:, PDAC_CLASS].numpy()


# --- where each window lies and what it holds --------------------------------------------------------------

def window_holds_lesion(lesion: np.ndarray, slicers: Sequence[tuple]) -> np.ndarray:
    """For each of nnU-Net's window slicers (slice(None), z, y, x) over the padded grid: any lesion voxel inside."""
    return np.array([bool(lesion[s[1:]].any()) for s in slicers])


def cells_holding(window_mask: np.ndarray, cell_size: Sequence[int]) -> np.ndarray:
    """Per cell of a stage whose cells each cover `cell_size` voxels of the window: any masked voxel in the block.
    Flattened in the order of `features.flatten(1)` of that stage."""
    blocks = [n // c for n, c in zip(window_mask.shape, cell_size)]
    shape = [x for b, c in zip(blocks, cell_size) for x in (b, c)]
    return window_mask.reshape(shape).any(axis=tuple(range(1, 2 * len(blocks), 2))).ravel()


def coarsest_cell_size(net: MultiTaskUNet) -> tuple[int, ...]:
    """Voxels per cell of the encoder's last stage: the product of the plan's strides."""
    return tuple(int(v) for v in np.prod(net.encoder.strides, axis=0))


# --- recording the windows of nnU-Net's sliding window -----------------------------------------------------

@dataclass
class Recording:
    slicers: list
    padded_shape: tuple | None
    logits: list
    avg_pooled: list
    max_pooled: list
    cells: list


@contextlib.contextmanager
def recording_windows(predictor) -> Iterator[Recording]:
    """Hooks that see exactly the windows nnU-Net's sliding window feeds the network: the slicer list (window
    positions in the padded grid), and per forward call the head's logits and the encoder's pooled stages.
    `predict_case` holds `net.collecting()` itself, so the head's logits come from a hook on the head instead."""
    net = predictor.network
    net = getattr(net, "_orig_mod", net)
    rec = Recording([], None, [], [], [], [])
    get_slicers = predictor._internal_get_sliding_window_slicers

    def slicers(image_size):
        rec.slicers, rec.padded_shape = get_slicers(image_size), tuple(image_size)
        return rec.slicers

    def on_encoder(module, inputs, skips):
        stages = [s.float() for s in skips[-FPN_LEVELS:]]
        rec.avg_pooled.append(torch.cat([s.flatten(2).mean(2) for s in stages], 1).cpu().numpy())
        rec.max_pooled.append(torch.cat([s.flatten(2).amax(2) for s in stages], 1).cpu().numpy())
        rec.cells.append(stages[-1].flatten(2).transpose(1, 2).cpu().numpy())  # (batch, cells, channels)

    def on_head(module, inputs, logits):
        rec.logits.append(logits.float().cpu().numpy())

    predictor._internal_get_sliding_window_slicers = slicers
    hooks = [net.encoder.register_forward_hook(on_encoder), net.head.register_forward_hook(on_head)]
    try:
        yield rec
    finally:
        for hook in hooks:
            hook.remove()
        del predictor._internal_get_sliding_window_slicers  # back to the class's method


def preprocessed_label(predictor, image: Path, label: Path) -> np.ndarray:
    """The label map on the grid the sliding window runs over: nnU-Net's preprocessing of image and label
    together (crop to nonzero, resample), then the sliding window's own padding to at least one patch."""
    from acvl_utils.cropping_and_padding.padding import pad_nd_image

    conf = predictor.configuration_manager
    _, seg, _ = conf.preprocessor_class(verbose=False).run_case(
        [str(image)], str(label), predictor.plans_manager, conf, predictor.dataset_json)
    return pad_nd_image(seg[0], conf.patch_size, "constant", {"constant_values": 0})


def record_case(predictor, case_id: str, pdac: int, image: Path, label: Path, cell_size) -> CaseWindows:
    with recording_windows(predictor) as rec:
        lesion_map, probability = predict_case(predictor, image_files=[image])
    seg = preprocessed_label(predictor, image, label)
    lesion = seg == LESION
    if lesion.shape != rec.padded_shape or not len(rec.slicers) == len(rec.logits) == len(rec.avg_pooled):
        raise RuntimeError(f"{case_id}: {len(rec.slicers)} windows over {rec.padded_shape}, {len(rec.logits)} "
                           f"forward calls, label grid {lesion.shape}: run without mirroring, on a 3d plan")
    logits = np.concatenate(rec.logits)
    if abs(pdac_probability([[torch.from_numpy(logits)]]) - probability) > 1e-4:
        raise RuntimeError(f"{case_id}: the recorded windows do not give inference's case probability {probability}")
    # The workflow masks the lesion map to stage 1's pancreas before taking its maximum: the demo paints soft
    # tissue outside the pancreas like the lesion. The true pancreas stands in for stage 1's here.
    pancreas = np.isin(seg, PANCREAS)
    pancreas_in_image = np.isin(sitk.GetArrayFromImage(read_image(label, case_id)), PANCREAS)
    return CaseWindows(
        case_id, pdac, logits, np.concatenate(rec.avg_pooled), np.concatenate(rec.max_pooled),
        np.concatenate(rec.cells).reshape(-1, rec.cells[0].shape[-1]), window_holds_lesion(lesion, rec.slicers),
        np.concatenate([cells_holding(lesion[s[1:]], cell_size) for s in rec.slicers]),
        np.concatenate([cells_holding(pancreas[s[1:]], cell_size) for s in rec.slicers]),
        float(lesion_map.max()), float(np.max(lesion_map, where=pancreas_in_image, initial=0.0)))


def record_fold(model_dir: Path, checkpoint: Path, raw: Path, cases: Sequence[str], labels: dict[str, int],
                device: torch.device) -> dict[str, CaseWindows]:
    from panorama_pdac.nnunet.inference import load_predictor
    from panorama_pdac.nnunet.multitask_trainers import Step3JointTrainer

    predictor = load_predictor(model_dir, [checkpoint], device, mirroring=False, trainer_class=Step3JointTrainer)
    cell_size = coarsest_cell_size(predictor.network)
    return {c: record_case(predictor, c, labels[c], image_file(raw, c), label_file(raw, c), cell_size) for c in cases}


# --- case scores: aggregations and probes ------------------------------------------------------------------

def top_k_mean(values: np.ndarray, k: int) -> float:
    return float(np.sort(values)[-k:].mean())


HEAD_RULES: dict[str, Callable[[CaseWindows], float]] = {
    "head: mean of window logits (inference today)": lambda c: pdac_probability([[torch.from_numpy(c.logits)]]),
    "head: max over windows": lambda c: float(c.window_pdac.max()),
    f"head: top-{TOP_WINDOWS} mean over windows": lambda c: top_k_mean(c.window_pdac, TOP_WINDOWS),
}


@dataclass(frozen=True)
class Probe:
    """A linear probe: which rows are samples, what each row's target is, how a case's row scores combine."""

    features: Callable[[CaseWindows], np.ndarray]
    targets: Callable[[CaseWindows], np.ndarray]
    rules: dict[str, Callable[[np.ndarray, CaseWindows], float]]  # (row probabilities, case) -> case score


def case_label_per_window(c: CaseWindows) -> np.ndarray:
    return np.full(len(c.logits), c.pdac)


def top_cells_in_pancreas(p: np.ndarray, c: CaseWindows) -> float:
    """Top-k mean over the cells that touch the true pancreas: ranks cases by the organ, not by look-alike
    tissue elsewhere in the crop (the lesion map's maximum is masked the same way)."""
    return top_k_mean(p[c.cell_pancreas], TOP_CELLS) if c.cell_pancreas.any() else float(p.max())


PROBES = {
    "probe, stages average-pooled per window": Probe(
        lambda c: c.avg_pooled, case_label_per_window,
        {"mean": lambda p, c: float(p.mean()), "max": lambda p, c: float(p.max())}),
    "probe, stages max-pooled per window": Probe(lambda c: c.max_pooled, case_label_per_window,
                                                 {"max": lambda p, c: float(p.max())}),
    "probe, coarsest-stage cells (target: cell holds lesion)": Probe(
        lambda c: c.cells, lambda c: c.cell_lesion,
        {"max": lambda p, c: float(p.max()), f"top-{TOP_CELLS}": lambda p, c: top_k_mean(p, TOP_CELLS),
         f"top-{TOP_CELLS} of cells touching the true pancreas": top_cells_in_pancreas}),
}


def fit_probe(features: np.ndarray, targets: np.ndarray):
    """L2 logistic regression on features standardised with the training rows' own statistics. Balanced class
    weights: lesion cells are ~1% of all, and a probe that ignores them ranks nothing."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=PROBE_C, class_weight="balanced", max_iter=2000)
                         ).fit(features, targets)


def training_rows(targets: np.ndarray, limit: int, seed: int = 0) -> np.ndarray:
    """Indices of the rows to fit on: all of them up to `limit`, else every positive and a random share of the
    negatives."""
    if len(targets) <= limit:
        return np.arange(len(targets))
    positives, negatives = np.flatnonzero(targets), np.flatnonzero(~targets.astype(bool))
    keep = np.random.default_rng(seed).choice(negatives, max(limit - len(positives), 0), replace=False)
    return np.sort(np.concatenate([positives, keep]))


def probe_scores(probe: Probe, train: Sequence[CaseWindows], test: Sequence[CaseWindows]
                 ) -> tuple[dict[str, np.ndarray], tuple[float, float]]:
    """Case scores of the test cases under each of the probe's rules, the probe fitted on the training cases;
    and the probe's AUROC over rows (windows or cells) on the rows it was fitted on and on the test rows: a
    probe that fits and does not transfer overfits, one that transfers rows but not cases aggregates badly."""
    targets = np.concatenate([probe.targets(c) for c in train]).astype(int)
    rows = training_rows(targets, PROBE_ROWS)
    features = np.concatenate([probe.features(c) for c in train])[rows]
    model = fit_probe(features, targets[rows])
    probabilities = [model.predict_proba(probe.features(c))[:, 1] for c in test]
    row_auroc = (auroc(targets[rows], model.predict_proba(features)[:, 1]),
                 auroc(np.concatenate([probe.targets(c) for c in test]), np.concatenate(probabilities)))
    return {rule: np.array([aggregate(p, c) for p, c in zip(probabilities, test)])
            for rule, aggregate in probe.rules.items()}, row_auroc


@dataclass
class FoldResult:
    labels: np.ndarray  # held-out cases' PDAC labels
    scores: dict[str, np.ndarray]  # row of the AUROC table -> held-out case scores
    probe_rows: dict[str, tuple[float, float]]  # probe -> row-level AUROC (fitted rows, held-out rows)


def fold_result(train: Sequence[CaseWindows], val: Sequence[CaseWindows]) -> FoldResult:
    """Every row of the AUROC table for one fold: held-out case scores, in the order of `val`."""
    scores = {name: np.array([rule(c) for c in val]) for name, rule in HEAD_RULES.items()}
    probe_rows = {}
    for name, probe in PROBES.items():
        case_scores, probe_rows[name] = probe_scores(probe, train, val)
        scores.update({f"{name}, case = {rule}": s for rule, s in case_scores.items()})
    scores["lesion segmentation map maximum"] = np.array([c.lesion_max for c in val])
    scores["lesion segmentation map maximum inside the true pancreas"] = np.array([c.lesion_max_pancreas for c in val])
    return FoldResult(np.array([c.pdac for c in val]), scores, probe_rows)


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """NaN where one class is missing (a fold without PDAC cases, a group without windows)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores)) if len(np.unique(labels)) == 2 else np.nan


# --- tables ------------------------------------------------------------------------------------------------

def auroc_table(per_fold: dict[int, FoldResult]) -> str:
    """Rows: case scores; columns: pooled over the folds' held-out cases, then each fold."""
    folds = sorted(per_fold)
    labels = np.concatenate([per_fold[k].labels for k in folds])
    lines = [f"| case score ({len(labels)} held-out cases, {int(labels.sum())} PDAC) | pooled AUROC | "
             + " | ".join(f"fold {k}" for k in folds) + " |", "|---|---|" + "---|" * len(folds)]
    for row in per_fold[folds[0]].scores:
        pooled = auroc(labels, np.concatenate([per_fold[k].scores[row] for k in folds]))
        lines.append(f"| {row} | {pooled:.3f} | " + " | ".join(
            f"{auroc(per_fold[k].labels, per_fold[k].scores[row]):.3f}" for k in folds) + " |")
    return "\n".join(lines)


def probe_row_table(per_fold: dict[int, FoldResult]) -> str:
    """Each probe at the level it was fitted (windows against the case label, cells against 'holds lesion')."""
    folds = sorted(per_fold)
    lines = ["| probe: row-level AUROC, fitted rows / held-out rows | " + " | ".join(f"fold {k}" for k in folds)
             + " |", "|---|" + "---|" * len(folds)]
    for name in per_fold[folds[0]].probe_rows:
        lines.append(f"| {name} | " + " | ".join(
            "{:.3f} / {:.3f}".format(*per_fold[k].probe_rows[name]) for k in folds) + " |")
    return "\n".join(lines)


def window_groups(cases: Sequence[CaseWindows]) -> dict[str, np.ndarray]:
    """Per-window head P(PDAC) of the lesion windows, the other windows of PDAC cases, the non-PDAC windows."""
    p = {c.case_id: c.window_pdac for c in cases}
    return {"lesion windows": np.concatenate([p[c.case_id][c.window_lesion] for c in cases] + [[]]),
            "other PDAC windows": np.concatenate([p[c.case_id][~c.window_lesion] for c in cases if c.pdac] + [[]]),
            "non-PDAC windows": np.concatenate([p[c.case_id] for c in cases if not c.pdac] + [[]])}


def group_cell(values: np.ndarray) -> str:
    return f"{values.mean():.3f} +- {values.std():.3f} (n={len(values)})" if len(values) else "-"


def head_window_table(rows: list[tuple[str, Sequence[CaseWindows]]]) -> str:
    lines = ["| cases | lesion windows | other PDAC windows | non-PDAC windows | AUROC lesion vs non-PDAC windows |",
             "|---|---|---|---|---|"]
    for name, cases in rows:
        g = window_groups(cases)
        separation = auroc(np.r_[np.ones(len(g["lesion windows"])), np.zeros(len(g["non-PDAC windows"]))],
                           np.r_[g["lesion windows"], g["non-PDAC windows"]])
        lines.append(f"| {name} | " + " | ".join(group_cell(v) for v in g.values()) + f" | {separation:.3f} |")
    return "\n".join(lines)


def data_summary(cases: Sequence[CaseWindows]) -> str:
    windows = np.array([len(c.logits) for c in cases])
    text = (f"{len(cases)} held-out cases; sliding windows per case: median {np.median(windows):.0f} "
            f"(range {windows.min()}-{windows.max()})")
    pdac = [c for c in cases if c.pdac]
    if not pdac:
        return text + "; no PDAC case"
    share = np.array([c.window_lesion.mean() for c in pdac])
    cells = np.concatenate([c.cell_lesion for c in pdac]).mean()
    return (text + f"; {len(pdac)} PDAC cases: share of their windows holding lesion voxels median "
            f"{np.median(share):.2f} (range {share.min():.2f}-{share.max():.2f}), of their coarsest-stage cells "
            f"{cells:.2%}")


def workflow_cv_auroc(stage2: Path, labels: dict[str, int], folds: Sequence[int]) -> str:
    """The head AUROC the workflow itself measured (stage-1 ROIs, Table 4's 'head alone'), when present."""
    tables = [stage2 / "cv" / f"fold_{k}.tsv" for k in folds]
    if not all(t.exists() for t in tables):
        return "workflow CV head AUROC: results/stage2/<variant>/cv/ not (yet) written"
    scores = {r.case_id: r.cls_prob for t in tables for r in read_tsv(t).itertuples()}
    return (f"workflow CV head AUROC on the stage-1 ROIs (same folds, {len(scores)} cases): "
            f"{auroc(np.array([labels[c] for c in scores]), np.array(list(scores.values()))):.3f}")


# --- main --------------------------------------------------------------------------------------------------

def run_inputs(results: Path, variant: str, folds: Sequence[int] | None
               ) -> tuple[Path, Path, list[int], list[dict], list[Path]]:
    """Model folder, raw dataset, folds (default: all of splits_final.json), their splits and checkpoints."""
    stage2 = results / "stage2" / variant
    raw = raw_dataset_dir(results / "stage2" / "nnunet", DATASET_NAME)
    splits_file = results / "dataset" / "splits_final.json"
    if not splits_file.exists():
        raise SystemExit(f"not a workflow's results folder: no {splits_file}")
    splits = read_json(splits_file)
    folds = list(range(len(splits))) if folds is None else list(folds)
    checkpoints = [stage2 / f"fold_{k}" / "step3" / "checkpoint_final.pth" for k in folds]
    missing = [str(p) for p in [stage2 / "plans.json", stage2 / "dataset.json", raw / CASE_LABELS, *checkpoints]
               if not p.exists()]
    if missing or max(folds) >= len(splits):
        raise SystemExit(f"not a finished run for folds {folds} ({len(splits)} in {splits_file}): missing "
                         + ", ".join(missing))
    return stage2, raw, folds, [splits[k] for k in folds], checkpoints


def diagnose(results: Path, variant: str, folds: Sequence[int] | None, device: torch.device, start: float
             ) -> tuple[dict, list, str, list]:
    """Per fold: held-out labels and case scores; the window-table rows; the workflow's own CV head AUROC; the
    held-out cases (cell features dropped)."""
    # The trainers' module imports nnU-Net's training stack (seconds): only the command needs it, not the tests.
    from panorama_pdac.nnunet.multitask_trainers import read_case_labels

    stage2, raw, folds, splits, checkpoints = run_inputs(results, variant, folds)
    labels = read_case_labels(raw / CASE_LABELS)
    per_fold, window_rows, held_out = {}, [], []
    for k, split, checkpoint in zip(folds, splits, checkpoints):
        recorded = record_fold(stage2, checkpoint, raw, [*split["train"], *split["val"]], labels, device)
        train, val = [recorded[c] for c in split["train"]], [recorded[c] for c in split["val"]]
        per_fold[k] = fold_result(train, val)
        # The cell features are most of the memory and only the fold's probes need them.
        train, val = [replace(c, cells=c.cells[:0]) for c in train], [replace(c, cells=c.cells[:0]) for c in val]
        window_rows += [(f"fold {k} held-out ({len(val)})", val), (f"fold {k} training ({len(train)})", train)]
        held_out += val
        print(f"fold {k}: {len(recorded)} cases recorded, {time.perf_counter() - start:.0f} s", flush=True)
    window_rows.insert(0, ("all held-out (each by its fold's model)", held_out))
    return per_fold, window_rows, workflow_cv_auroc(stage2, labels, folds), held_out


def report(title: str, per_fold: dict, window_rows: list, workflow_cv: str, held_out: list) -> str:
    return "\n\n".join([
        title,
        "Crops: the workflow's stage-2 dataset (results/stage2/nnunet/raw: training crops, around the ground-truth "
        "pancreas when stage2.crop_source is truth), step-3 models, no mirroring. "
        f"Probes: logistic regression (L2, C={PROBE_C}, balanced class weights, features standardised on the "
        "training cases) fitted per fold on its training cases, as seen by that fold's model.",
        data_summary(held_out), workflow_cv, auroc_table(per_fold), probe_row_table(per_fold),
        "Per-window head P(PDAC) (mean +- sd over windows); each fold's model on its own held-out and training cases:",
        head_window_table(window_rows),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True, help="a finished workflow run's results folder")
    parser.add_argument("--variant", default="ce")
    parser.add_argument("--folds", type=int, nargs="+", help="default: every fold of splits_final.json")
    parser.add_argument("--out", type=Path, help="also write the tables here (markdown); not inside --results")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    results = args.results.resolve()
    if args.out and results in args.out.resolve().parents:
        raise SystemExit(f"--out {args.out} lies inside {results}: the diagnostic leaves a run's results untouched")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    per_fold, window_rows, workflow_cv, held_out = diagnose(results, args.variant, args.folds,
                                                            resolve_device(args.device), start)
    text = report(f"## Classification-head diagnostic: {results}, variant {args.variant}, folds {sorted(per_fold)}",
                  per_fold, window_rows, workflow_cv, held_out)
    text += f"\n\nElapsed: {time.perf_counter() - start:.0f} s ({args.device}, {args.threads} thread(s))"
    print("\n" + text)
    if args.out:
        write_text(text + "\n", args.out)


if __name__ == "__main__":
    main()
