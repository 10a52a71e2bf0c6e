"""Seeded, optionally deterministic nnU-Net training: the same job run twice gives the same weights.

nnU-Net seeds nothing. Its network initialisation, patch sampling and augmentation draw from the global
generators of python, numpy and torch, and with worker processes it augments through
`NonDetMultiThreadedAugmenter`, which hands over batches in whatever order the workers finish them, each
worker seeded from OS entropy. A training job here instead seeds the three generators from its own seed
before the trainer is built, and loads data either in the training process (`augmentation_workers: 0`) or
through batchgenerators' `MultiThreadedAugmenter`, which collects its workers' batches round robin, with a
seed per worker for numpy, torch and python alike.
"""

from __future__ import annotations

import hashlib
import os
import random
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

# cuBLAS needs a fixed workspace to be deterministic; it must be set before the first cuBLAS call.
CUBLAS_WORKSPACE = ":4096:8"


@dataclass(frozen=True)
class Seeding:
    """How a training job draws its random numbers (config: the stage's `seed`, top-level `deterministic`).

    deterministic: torch's deterministic algorithms (warn_only: an op without a deterministic kernel warns in
    the job log instead of failing) and no cuDNN autotuning. On CPU a seeded run is bit-identical either way;
    on CUDA `false` keeps nnU-Net's speed (cudnn.benchmark) with seeds only.
    """

    seed: int
    deterministic: bool = True


def job_seed(base: int, *parts) -> int:
    """A job's own seed from the configured one and what names the job (stage, variant, fold, step), so
    that jobs stay independent of each other and of the order they run in. Stable across processes and
    machines (unlike python's salted `hash`)."""
    digest = hashlib.sha256("/".join(map(str, (base, *parts))).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # every device's generator


def set_torch_determinism(deterministic: bool) -> None:
    """nnU-Net's trainer leaves these flags alone (its command-line entry point turns autotuning on): call
    after anything of nnU-Net's has run and before training."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


class _SeedWorker:
    """Stands in for a data loader's `set_thread_id`, which batchgenerators' worker calls right after
    seeding numpy with the worker's seed: seeds torch and python with it too (nnU-Net's augmentations draw
    from all three). A plain class, so that it also reaches workers started by pickling."""

    def __init__(self, set_thread_id, seeds: list[int]):
        self.set_thread_id, self.seeds = set_thread_id, seeds

    def __call__(self, thread_id: int) -> None:
        random.seed(self.seeds[thread_id])
        torch.manual_seed(self.seeds[thread_id])
        self.set_thread_id(thread_id)


def seeded_augmenter(loader, workers: int, seed: int, pin_memory: bool):
    from batchgenerators.dataloading.multi_threaded_augmenter import MultiThreadedAugmenter

    seeds = [job_seed(seed, "worker", i) for i in range(workers)]
    loader.set_thread_id = _SeedWorker(loader.set_thread_id, seeds)
    return MultiThreadedAugmenter(loader, None, workers, seeds=seeds, pin_memory=pin_memory, wait_time=0.002)


@contextmanager
def _in_process_loading():
    saved = os.environ.get("nnUNet_n_proc_DA")
    os.environ["nnUNet_n_proc_DA"] = "0"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["nnUNet_n_proc_DA"]
        else:
            os.environ["nnUNet_n_proc_DA"] = saved


def load_data_seeded(trainer, seed: int) -> None:
    """Make `trainer.get_dataloaders` (which nnU-Net calls when training starts) seeded.

    The trainer builds its loaders in process, where our trainers also adapt them (patch sampling, balanced
    batches); with `nnUNet_n_proc_DA` > 0 they are then handed to seeded round-robin workers (half as many
    for validation, as nnU-Net does). Set on the instance: stage 1 stays nnU-Net's stock trainer."""
    from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA

    workers = get_allowed_n_proc_DA()
    build = trainer.get_dataloaders

    def get_dataloaders():
        with _in_process_loading():
            train, val = build()
        if workers == 0:
            return train, val
        pin = trainer.device.type == "cuda"
        return (seeded_augmenter(train.data_loader, workers, job_seed(seed, "train"), pin),
                seeded_augmenter(val.data_loader, max(1, workers // 2), job_seed(seed, "val"), pin))

    trainer.get_dataloaders = get_dataloaders
