"""Per-job nnU-Net environment: folders, worker counts and the compute device.

nnU-Net reads its folders from environment variables at the moment of use (nnunetv2 >= 2.8), so a job
sets them once, before the first call, and several datasets live side by side under results/.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import ConfigError


def configure_nnunet_env(root: str | os.PathLike, threads: int = 1, augmentation_workers: int = 0,
                         raw: str | os.PathLike | None = None) -> dict[str, str]:
    """Point nnU-Net at `root`/{raw,preprocessed,scratch} and bound its worker processes.

    `raw` shares one raw dataset between roots (stage-2 variants plan and preprocess it separately, so
    that parallel jobs never write the same preprocessed files).

    `augmentation_workers=0` makes nnU-Net augment in the training process itself: on a 2-core machine the
    worker pool costs more than it gives. It only applies to training (planning crashes with 0 workers).
    """
    root = Path(root)
    env = {
        "nnUNet_raw": str(raw if raw is not None else root / "raw"),
        "nnUNet_preprocessed": str(root / "preprocessed"),
        # nnU-Net creates its default result folder when a trainer is built; we relocate the trainer's
        # output to our own model folder, so that default lands in scratch.
        "nnUNet_results": str(root / "scratch"),
        "nnUNet_n_proc_DA": str(augmentation_workers),
        "nnUNet_def_n_proc": str(max(1, threads)),
        "nnUNet_compile": os.environ.get("nnUNet_compile", "f"),
    }
    os.environ.update(env)
    torch.set_num_threads(max(1, threads))
    return env


def nnunet_root_of(raw_dataset_json: str | os.PathLike) -> Path:
    """The folder holding raw/ (and preprocessed/) for a raw dataset's `<root>/raw/DatasetXXX/dataset.json`."""
    return Path(raw_dataset_json).parents[2]


def nnunet_root_beside(model_file: str | os.PathLike) -> Path:
    """A model's own nnU-Net folder (preprocessed data), beside its plans.json and dataset.json."""
    return Path(model_file).parent / "nnunet"


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when torch sees a GPU. A SLURM node may set CUDA_VISIBLE_DEVICES without a usable GPU
    (fake GPUs in CI), so the decision is torch's, never that variable's."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' requested in config, but torch sees no CUDA GPU on this node")
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, not '{name}'")
    return torch.device(name)
