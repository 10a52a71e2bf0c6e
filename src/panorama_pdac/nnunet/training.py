"""Train one fold of an nnU-Net trainer into a folder we choose, resuming where a killed job stopped.

The trainer class is passed in (stock `nnUNetTrainer` for stage 1, our multi-task trainers for stage 2):
no lookup by name. The output folder is ours (results/stage*/.../fold_k), not nnU-Net's default tree,
so Snakemake targets stay short and guessable.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..io import read_json, write_json
from .seeding import Seeding, load_data_seeded, seed_everything, set_torch_determinism

LATEST = "checkpoint_latest.pth"
FINAL = "checkpoint_final.pth"
TRAINING_LOG = "training_log.txt"
SETTINGS = "training_settings.json"  # what the checkpoint_latest.pth beside it was trained with


@dataclass(frozen=True)
class Schedule:
    """How long and how fast to train; values from config (stage / step). `batch_size` None keeps the plans'."""

    num_epochs: int
    iterations_per_epoch: int
    val_iterations_per_epoch: int
    save_every: int = 1
    initial_lr: float | None = None
    batch_size: int | None = None

    def apply(self, trainer) -> None:
        """Before `initialize()`, which builds the optimiser and its learning-rate schedule from these."""
        trainer.num_epochs = self.num_epochs
        trainer.num_iterations_per_epoch = self.iterations_per_epoch
        trainer.num_val_iterations_per_epoch = self.val_iterations_per_epoch
        trainer.save_every = self.save_every
        if self.initial_lr is not None:
            trainer.initial_lr = self.initial_lr

    def apply_batch_size(self, trainer) -> None:
        """After `initialize()`, which sets the batch size from the plans; the data loaders are built later, when
        training starts. A step that trains the head alone can then see more patches per update than the plans'
        batch, which is sized for the whole network's memory (single-device training: nnU-Net splits the plans'
        batch between DDP workers inside `initialize()`)."""
        if self.batch_size is not None:
            trainer.print_to_log_file(f"Batch size {self.batch_size} (schedule; the plans say {trainer.batch_size})")
            trainer.batch_size = self.batch_size


def relocate(trainer, output_folder: str | os.PathLike) -> None:
    """Send everything the trainer writes (checkpoints, progress.png, log, plans copy) to `output_folder`.

    The training log gets a fixed name (nnU-Net stamps it with the start time) so that the workflow can
    declare it, and a resumed job appends to the same file."""
    out = Path(output_folder)
    out.mkdir(parents=True, exist_ok=True)
    old_log = Path(trainer.log_file)
    trainer.output_folder_base = str(out)
    trainer.output_folder = str(out)
    trainer.log_file = str(out / TRAINING_LOG)
    with open(trainer.log_file, "a") as log:
        if old_log.is_file():
            log.write(old_log.read_text())
            old_log.unlink()
    trainer.logger.output_folder = str(out)


def build_trainer(trainer_class, plans_file, dataset_json_file, configuration: str, fold: int,
                  output_folder, device: torch.device, resume: bool = False):
    plans = read_json(plans_file)
    plans["continue_training"] = resume
    trainer = trainer_class(plans, configuration, fold, read_json(dataset_json_file), device=device)
    relocate(trainer, output_folder)
    return trainer


def _file_digest(path: str | os.PathLike) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def training_settings(trainer_class, plans_file, dataset_json_file, configuration: str, fold: int,
                      schedule: Schedule, seeding: Seeding, init_weights=None, options=None) -> dict:
    """Everything besides the training's own progress that decides it, as plain JSON values."""
    init = None
    if init_weights is not None:
        stat = Path(init_weights).stat()  # checkpoints are large: identity, not content
        init = {"path": os.fspath(init_weights), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    settings = {"trainer": f"{trainer_class.__module__}.{trainer_class.__qualname__}",
                "plans": _file_digest(plans_file), "dataset_json": _file_digest(dataset_json_file),
                "configuration": configuration, "fold": fold, "schedule": dataclasses.asdict(schedule),
                "seeding": dataclasses.asdict(seeding), "init_weights": init,
                "options": None if options is None else dataclasses.asdict(options)}
    return json.loads(json.dumps(settings, default=str))  # tuples -> lists, as read back from the file


def train_fold(
    trainer_class,
    plans_file: str | os.PathLike,
    dataset_json_file: str | os.PathLike,
    configuration: str,
    fold: int,
    output_folder: str | os.PathLike,
    schedule: Schedule,
    device: torch.device,
    seeding: Seeding,
    init_weights: str | os.PathLike | None = None,
    options=None,
) -> Path:
    """Run (or continue) training; returns the final checkpoint.

    A `checkpoint_latest.pth` left by a killed job wins over `init_weights`: the job resumes with its epoch
    count, optimiser and logs, provided it was trained with the same settings (`training_settings`, kept in
    training_settings.json beside it); one trained with other plans, schedule, options or initial weights is
    discarded, and the log says which of them changed. `init_weights` (a previous step's final checkpoint) is
    loaded strictly, since nnU-Net's own pretrained-weight loader silently skips the segmentation layers.
    `options` (a dataclass such as MultiTaskOptions) sets trainer-specific options through its
    `apply(trainer)` before initialisation; its fields are part of the settings record.
    `seeding` seeds everything before the network is built and the data loading (see seeding.py): run twice,
    a job gives the same weights (bit-identical on CPU). A resumed job is seeded afresh at its resume point,
    so it is reproducible itself but does not repeat the random numbers an uninterrupted run would have drawn.
    """
    out = Path(output_folder)
    latest, recorded = out / LATEST, out / SETTINGS
    settings = training_settings(trainer_class, plans_file, dataset_json_file, configuration, fold, schedule,
                                 seeding, init_weights, options)
    previous = read_json(recorded) if recorded.is_file() else None
    resume = latest.is_file() and previous == settings
    seed_everything(seeding.seed)
    trainer = build_trainer(trainer_class, plans_file, dataset_json_file, configuration, fold, output_folder,
                            device, resume)
    if latest.is_file() and not resume:
        changed = ", ".join(sorted(k for k in settings if previous.get(k) != settings[k])) if previous else None
        trainer.print_to_log_file(f"Not resuming from {latest}: it was trained with other settings "
                                  f"({changed or 'not recorded'}); training starts afresh")
        latest.unlink()
    write_json(settings, recorded)
    schedule.apply(trainer)
    if options is not None:
        options.apply(trainer)
    trainer.initialize()
    schedule.apply_batch_size(trainer)
    load_data_seeded(trainer, seeding.seed)
    set_torch_determinism(seeding.deterministic)
    trainer.print_to_log_file(f"Seed {seeding.seed}; deterministic algorithms " + (
        "on (an op without a deterministic kernel warns in the job log)" if seeding.deterministic else "off"))
    if resume:
        trainer.print_to_log_file(f"Resuming from {latest}")
        trainer.load_checkpoint(str(latest))
    elif init_weights is not None:
        state = torch.load(init_weights, map_location=trainer.device, weights_only=False)["network_weights"]
        getattr(trainer.network, "_orig_mod", trainer.network).load_state_dict(state, strict=True)  # compiled or not
        trainer.print_to_log_file(f"Initialised from {init_weights} (strict)")
    trainer.run_training()
    return Path(output_folder) / FINAL
