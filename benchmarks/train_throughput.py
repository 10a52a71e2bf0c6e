"""Seconds per training iteration: Step3JointTrainer (multi-task) against nnU-Net's stock nnUNetTrainer.

Run by hand, not by pytest:

    .venv/bin/python benchmarks/train_throughput.py --device cpu --iterations 5 --patch 32 64 64

Both trainers get the same plans (nnU-Net's planner on a small synthetic dataset at the stage-2 spacing, with
the given patch and batch size), the same device and the same pre-fetched batches, so the timing covers the
forward pass, loss, backward pass and optimiser step, not data loading or augmentation.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from panorama_pdac.io import write_image, write_json
from panorama_pdac.nnunet.env import configure_nnunet_env, resolve_device
from panorama_pdac.nnunet.planning import plan_and_preprocess
from panorama_pdac.nnunet.training import build_trainer

DATASET_ID = 597
DATASET = f"Dataset{DATASET_ID}_ThroughputBenchmark"
SPACING_XYZ = (0.747, 0.747, 1.5)  # the published stage-2 plan (METHOD.md §3)
LABELS = {"background": 0, "lesion": 1, "veins": 2, "arteries": 3, "pancreas": 4, "duct": 5, "bile_duct": 6}


def write_synthetic_dataset(raw: Path, shape_zyx: tuple[int, ...], n_cases: int = 4) -> dict[str, int]:
    """Random 7-label cases (every other one with a lesion); returns the case labels (PDAC = 1)."""
    rng = np.random.default_rng(0)
    case_labels = {}
    for i in range(n_cases):
        case_id = f"90000{i}_00001"
        label = (rng.integers(2, 7, shape_zyx) * (rng.random(shape_zyx) < 0.3)).astype(np.uint8)
        if i % 2 == 0:
            centre = [s // 2 for s in shape_zyx]
            label[tuple(slice(c - max(1, s // 8), c + max(1, s // 8)) for c, s in zip(centre, shape_zyx))] = 1
        image = sitk.GetImageFromArray((40 * label + rng.normal(0, 20, shape_zyx)).astype(np.int16))
        image.SetSpacing(SPACING_XYZ)
        seg = sitk.GetImageFromArray(label)
        seg.CopyInformation(image)
        write_image(image, raw / "imagesTr" / f"{case_id}_0000.nii.gz")
        write_image(seg, raw / "labelsTr" / f"{case_id}.nii.gz")
        case_labels[case_id] = int(i % 2 == 0)
    write_json({"channel_names": {"0": "CT"}, "labels": LABELS, "numTraining": n_cases, "file_ending": ".nii.gz"},
               raw / "dataset.json")
    return case_labels


def seconds_per_iteration(trainer, batches: list[dict], warmup: int, iterations: int) -> float:
    trainer.network.train()
    for i in range(warmup):
        trainer.train_step(batches[i % len(batches)])
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(iterations):
        trainer.train_step(batches[i % len(batches)])
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations per trainer")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first (allocator, cuDNN)")
    parser.add_argument("--patch", type=int, nargs=3, default=[56, 192, 352], metavar=("Z", "Y", "X"))
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--planner", default="ExperimentPlanner", help="e.g. nnUNetPlannerResEncM")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        configure_nnunet_env(tmp / "nnunet", threads=args.threads)
        case_labels = write_synthetic_dataset(tmp / "nnunet" / "raw" / DATASET, tuple(args.patch))
        write_json(case_labels, tmp / "case_labels.json")
        ids = list(case_labels)
        plans = plan_and_preprocess(DATASET_ID, args.planner, "3d_fullres",
                                    {"patch_size": args.patch, "batch_size": args.batch_size},
                                    [{"train": ids, "val": ids}], num_processes=1)

        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

        from panorama_pdac.nnunet.multitask_trainers import (
            MultiTaskOptions,
            Step3JointTrainer,
        )

        device = resolve_device(args.device)
        timings = {}
        for trainer_class in (nnUNetTrainer, Step3JointTrainer):
            trainer = build_trainer(trainer_class, plans, plans.parent / "dataset.json", "3d_fullres", 0,
                                    tmp / trainer_class.__name__, device)
            if trainer_class is Step3JointTrainer:
                MultiTaskOptions(case_labels=str(tmp / "case_labels.json")).apply(trainer)
            trainer.initialize()
            train, _ = trainer.get_dataloaders()
            batches = [next(train) for _ in range(min(4, args.warmup + args.iterations))]
            timings[trainer_class.__name__] = seconds_per_iteration(trainer, batches, args.warmup, args.iterations)

    conf = trainer.configuration_manager
    print(f"device {device}, patch {conf.patch_size}, batch {conf.batch_size}, "
          f"features {conf.network_arch_init_kwargs['features_per_stage']}, {args.iterations} iterations")
    for name, seconds in timings.items():
        print(f"{name:>20}: {seconds:.3f} s/iteration")
    print(f"{'ratio':>20}: {timings['Step3JointTrainer'] / timings['nnUNetTrainer']:.2f}x")


if __name__ == "__main__":
    main()
