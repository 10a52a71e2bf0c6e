"""Seconds per case of the whole predict chain, and where they go: model loading, stage 1, stage 2, post-processing.

Run by hand, not by pytest, on the models of a finished workflow run:

    .venv/bin/python benchmarks/predict_throughput.py --results results --device cpu
    .venv/bin/python benchmarks/predict_throughput.py --results /scratch/run/results --input /data/new_scans

Without --input, held-out synthetic scans are generated (a seed the workflow does not use). The settings
(stage-1 spacing, ROI margin, post-processing, fusion) come from the given config files, as in the workflow.
Model loading happens once per batch, so its share shrinks with the batch; it is reported apart. The seconds of
nnU-Net's sliding window (both stages, clocked inside them) are printed beside the whole: their ratio is our own
overhead per case (goal: at most 1.3x).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from panorama_pdac.config_check import merged_config_files
from panorama_pdac.nnunet.env import resolve_device
from panorama_pdac.predict import (
    PHASES,
    PredictSettings,
    TwoStageEnsemble,
    input_files,
    predict_files,
)
from panorama_pdac.settings import predict_settings
from panorama_pdac.synthetic import generate_dataset

REPO = Path(__file__).resolve().parents[1]


def held_out_scans(folder: Path, patients: int, seed: int) -> Path:
    summary = generate_dataset(folder, n_patients=patients, seed=seed, min_pdac_patients=1)
    scans = folder / "scans"
    scans.mkdir()
    for case in summary["cases"]:
        name = f"{case['case_id']}_0000.nii.gz"
        (scans / name).symlink_to(folder / "images" / case["batch"] / name)
    return scans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=REPO / "results",
                        help="a workflow's results folder (stage1/, stage2/<variant>/)")
    parser.add_argument("--variant", default="ce")
    parser.add_argument("--input", type=Path, help="folder of CT scans; default: generated synthetic scans")
    parser.add_argument("--patients", type=int, default=2, help="synthetic patients to generate (about 1.5 scans each)")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--config", type=Path, nargs="+", default=[REPO / "config" / "config.yaml"])
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--mirroring", action="store_true", help="test-time mirroring in both stages")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()

    settings = PredictSettings(**predict_settings(merged_config_files(args.config)))
    stage1, stage2 = args.results / "stage1", args.results / "stage2" / args.variant
    with tempfile.TemporaryDirectory() as tmp:
        scans = args.input or held_out_scans(Path(tmp) / "synthetic", args.patients, args.seed)
        start = time.perf_counter()
        models = TwoStageEnsemble.load(stage1, sorted(stage1.glob("fold_*/checkpoint_final.pth")), stage2,
                                       sorted(stage2.glob("fold_*/step3/checkpoint_final.pth")),
                                       resolve_device(args.device), args.mirroring, threads=args.threads)
        loading = time.perf_counter() - start
        done, failures = predict_files(input_files(scans), Path(tmp) / "out", models, settings)

    if not done:
        raise SystemExit("no case was predicted:\n" + failures.to_string())
    seconds = {"model loading": loading, **{p: sum(r.seconds[p] for r in done) for p in PHASES}}
    total = sum(seconds.values())
    print(f"\n{len(done)} cases ({len(failures)} failed), device {args.device}, {args.threads} threads, "
          f"mirroring {'on' if args.mirroring else 'off'}, {len(models.stage1.list_of_parameters)} + "
          f"{len(models.stage2.list_of_parameters)} folds")
    print(f"{'phase':<15}{'s (batch)':>10}{'s / case':>10}{'share':>8}")
    for phase, s in seconds.items():
        print(f"{phase:<15}{s:>10.2f}{s / len(done):>10.2f}{s / total:>8.0%}")
    print(f"{'total':<15}{total:>10.2f}{total / len(done):>10.2f}")
    cases = sum(seconds[p] for p in PHASES)
    window = models.stage1.sliding_window_seconds + models.stage2.sliding_window_seconds
    print(f"sliding windows (stage 1 {models.stage1.sliding_window_seconds:.2f} s, stage 2 "
          f"{models.stage2.sliding_window_seconds:.2f} s): {window / len(done):.2f} s / case; the cases take "
          f"{cases / window:.2f}x, with model loading {total / window:.2f}x")


if __name__ == "__main__":
    main()
