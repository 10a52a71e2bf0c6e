"""The three stage-2 training steps (METHOD.md §3) as small nnU-Net trainers, one idea each.

`MultiTaskTrainer` holds what all steps share: the multi-task network, the case-level labels, the weighted
classification loss, the segmentation loss (Dice+CE or Tversky+CE), the optimiser over trainable parameters
and a patch-level AUROC logged beside nnU-Net's pseudo Dice. The steps only say which parts are frozen and
which loss terms count. Options come from config through `MultiTaskOptions.apply`, which `train_fold` calls
(`options=`) before `initialize()`; the trainer constructor keeps nnU-Net's signature.

Single-device training only: the multi-task forward bypasses a DistributedDataParallel wrapper.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np
import torch
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.helpers import dummy_context
from nnunetv2.utilities.plans_handling.plans_handler import (
    ConfigurationManager,
    PlansManager,
)
from scipy.stats import rankdata
from torch import autocast, nn

from ..errors import ConfigError, DataError
from ..io import read_json, write_json
from ..labels import LESION, PARENCHYMA
from ..losses import TverskyLoss, cell_lesion_loss
from ..networks import MultiTaskUNet
from .multitask_inference import (
    AGGREGATIONS,
    WindowAggregation,
    head_settings,
    head_window_logits,
    pdac_probability,
)

AUROC_KEY = "val_patch_auroc"
CLS_LOSS_KEY = "train_cls_loss"
HEAD_VALIDATION = "head_validation.json"  # case-level validation of the head, written by every step
SEG_LOSSES = ("dice_ce", "tversky")
OPTIMIZERS = ("sgd", "adamw")
# The plans configuration's optional "classification_head" entry: the network's head, then how inference
# aggregates its windows (multitask_inference.WindowAggregation).
HEAD_NETWORK_KEYS = ("width", "hidden", "norm", "pooling", "dropout")
HEAD_KEYS = HEAD_NETWORK_KEYS + ("aggregation", "top_k")


@dataclass(frozen=True)
class MultiTaskOptions:
    """Stage-2 options from config (variant and step entries merged); epochs and learning rate are in Schedule.

    case_labels: JSON {case_id: 0 or 1}, PDAC = 1. class_weights: CE weights (non-PDAC, PDAC).
    seg_loss: "dice_ce" (nnU-Net's default) or "tversky" (TverskyLoss, see losses.py for alpha / beta).
    ce_weight: weight of the voxel CE term next to Dice or Tversky. seg_weight / cls_weight: weights of the
    two tasks in the steps that train them. optimizer: "sgd" (nnU-Net's Nesterov SGD) or "adamw".
    lesion_oversample: probability that a training patch is centred on the lesion in a case with lesion voxels,
    on the pancreas parenchyma in a case without (nnU-Net's foreground forcing picks a random class, so a small
    lesion is rarely seen; and a case-level PDAC label on a patch without the lesion teaches the classifier
    nothing). balanced_batches: half of every training batch from PDAC cases, half from non-PDAC (JSC).
    cell_lesion_weight: in the steps that train the head, the weight of `losses.cell_lesion_loss`, which tells
    each cell of a cell-pooling head whether it holds lesion voxels (0: the head learns from case labels alone,
    as published).
    """

    case_labels: str | None = None
    class_weights: tuple[float, float] = (1.0, 3.0)
    seg_loss: str = "dice_ce"
    tversky_alpha: float = 0.3
    tversky_beta: float = 0.7
    ce_weight: float = 1.0
    seg_weight: float = 1.0
    cls_weight: float = 1.0
    optimizer: str = "sgd"
    weight_decay: float = 3e-5
    lesion_oversample: float = 0.0
    balanced_batches: bool = False
    cell_lesion_weight: float = 0.0

    def __post_init__(self):
        if self.seg_loss not in SEG_LOSSES:
            raise ConfigError(f"seg_loss must be one of {SEG_LOSSES}, not '{self.seg_loss}'")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, not '{self.optimizer}'")
        if len(self.class_weights) != 2 or min(self.class_weights) <= 0:
            raise ConfigError(f"class_weights must be two positive numbers (non-PDAC, PDAC), got {self.class_weights}")
        if not 0 <= self.lesion_oversample <= 1:
            raise ConfigError(f"lesion_oversample is a probability, got {self.lesion_oversample}")
        if min(self.seg_weight, self.cls_weight, self.ce_weight, self.tversky_alpha, self.tversky_beta,
               self.cell_lesion_weight) < 0:
            raise ConfigError("loss weights and Tversky alpha / beta must not be negative")

    @classmethod
    def from_config(cls, config: Mapping) -> MultiTaskOptions:
        unknown = set(config) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown stage-2 option(s) {sorted(unknown)}")
        values = dict(config)
        if "class_weights" in values:
            values["class_weights"] = tuple(float(w) for w in values["class_weights"])
        if values.get("case_labels") is not None:
            values["case_labels"] = os.fspath(values["case_labels"])
        return cls(**values)

    def apply(self, trainer: MultiTaskTrainer) -> None:
        """Set on a trainer before `initialize()` (`train_fold` calls it for its `options` argument)."""
        trainer.options = self
        trainer.weight_decay = self.weight_decay


def head_network_settings(head: Mapping) -> dict:
    """The network's part of a plans `classification_head` entry (the rest is inference's aggregation)."""
    if set(head) - set(HEAD_KEYS):
        raise ConfigError(f"plans classification_head may only set {HEAD_KEYS}, got {sorted(head)}")
    return {k: v for k, v in head.items() if k in HEAD_NETWORK_KEYS}


def read_case_labels(path: str | os.PathLike) -> dict[str, int]:
    labels = read_json(path)
    if not isinstance(labels, dict):
        raise DataError(path, "expected a JSON object {case_id: 0 or 1}")
    for case_id, value in labels.items():
        if type(value) is not int or value not in (0, 1):
            raise DataError(path, f"case label must be 0 (non-PDAC) or 1 (PDAC), got {value!r}", case_id)
    return labels


def patch_auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney, ties averaged); None when only one class is present."""
    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


class MultiTaskTrainer(nnUNetTrainer):
    """Shared machinery; trains everything with loss = seg_weight * seg + cls_weight * cls."""

    options: MultiTaskOptions = MultiTaskOptions()
    # Parts of MultiTaskUNet ("encoder", "decoder", "head") kept fixed. The decoder holds a reference to the
    # encoder (dynamic_network_architectures), so freezing "decoder" freezes the encoder too.
    frozen: tuple[str, ...] = ()
    loss_terms: tuple[str, ...] = ("seg", "cls")

    @staticmethod
    def build_network_architecture(plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> MultiTaskUNet:
        unet = nnUNetTrainer.build_network_architecture(plans_manager, configuration_manager, num_input_channels,
                                                        num_output_channels, enable_deep_supervision)
        return MultiTaskUNet.from_unet(unet, **head_network_settings(head_settings(configuration_manager)))

    def initialize(self):
        if self.options.case_labels is None:
            raise ConfigError(f"{type(self).__name__}: set options.case_labels (MultiTaskOptions.apply) "
                              "before initialize()")
        self.case_labels = read_case_labels(self.options.case_labels)
        super().initialize()
        pooling = self._bare_network().head.pooling
        if self.options.cell_lesion_weight and pooling != "cell":
            raise ConfigError(f"stage-2 option cell_lesion_weight needs stage2.head.pooling: cell, not '{pooling}'")
        self.cls_loss = nn.CrossEntropyLoss(
            weight=torch.tensor(self.options.class_weights, dtype=torch.float32, device=self.device))
        # nnU-Net's local logger refuses keys it was not told about (one value per epoch each).
        for key in (AUROC_KEY, CLS_LOSS_KEY):
            self.logger.local_logger.my_fantastic_logging.setdefault(key, [])
        self._epoch_cls_losses: list[torch.Tensor] = []

    def get_dataloaders(self):
        train, val = super().get_dataloaders()
        loader = training_loader(train)
        if self.options.lesion_oversample:
            loader.get_bbox = PancreasCentredBoxes(loader.get_bbox, self.options.lesion_oversample)
        if self.options.balanced_batches:
            self._balance(loader)
        return train, val

    def _balance(self, loader) -> None:
        keys = list(loader.indices)
        labels = self.case_targets(keys).tolist()
        positives = [k for k, label in zip(keys, labels) if label == 1]
        negatives = [k for k, label in zip(keys, labels) if label == 0]
        if not positives or not negatives:
            raise DataError(self.options.case_labels, f"fold {self.fold} has training cases of one class only: "
                            "class-balanced batches need PDAC and non-PDAC cases")
        loader.get_indices = BalancedIndices(positives, negatives, loader.batch_size)

    def _build_loss(self):
        if self.label_manager.has_regions:
            raise ConfigError("the multi-task trainers need label (not region) training")
        dice_class, extra = MemoryEfficientSoftDiceLoss, {}
        if self.options.seg_loss == "tversky":
            dice_class, extra = TverskyLoss, {"alpha": self.options.tversky_alpha, "beta": self.options.tversky_beta}
        loss = DC_and_CE_loss({"batch_dice": self.configuration_manager.batch_dice, "smooth": 1e-5, "do_bg": False,
                               "ddp": self.is_ddp, **extra}, {}, weight_ce=self.options.ce_weight, weight_dice=1,
                              ignore_label=self.label_manager.ignore_label, dice_class=dice_class)
        if not self.enable_deep_supervision:
            return loss
        # Reuse nnU-Net's deep-supervision weights rather than re-deriving them.
        return DeepSupervisionWrapper(loss, super()._build_loss().weight_factors)

    def _bare_network(self) -> MultiTaskUNet:
        net = self.network
        for wrapper in ("module", "_orig_mod"):  # DistributedDataParallel, then torch.compile
            net = getattr(net, wrapper, net)
        return net

    def configure_optimizers(self):
        # nnU-Net builds the optimiser right after the network: the first moment both exist. Frozen parameters
        # stay out of the optimiser (no weight decay or momentum can move them).
        net = self._bare_network()
        for part in self.frozen:
            getattr(net, part).requires_grad_(False)
        params = [p for p in net.parameters() if p.requires_grad]
        if self.options.optimizer == "sgd":
            optimizer = torch.optim.SGD(params, self.initial_lr, weight_decay=self.weight_decay, momentum=0.99,
                                        nesterov=True)
        else:
            optimizer = torch.optim.AdamW(params, self.initial_lr, weight_decay=self.weight_decay)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)

    def case_targets(self, keys: Sequence[str]) -> torch.Tensor:
        """Case-level labels (PDAC = 1) of the batch's cases: every patch inherits its case's label."""
        missing = [k for k in keys if k not in self.case_labels]
        if missing:
            raise DataError(self.options.case_labels, "case has no label in the case-label file", str(missing[0]))
        return torch.tensor([self.case_labels[k] for k in keys], dtype=torch.long, device=self.device)

    def multitask_loss(self, data: torch.Tensor, target, labels: torch.Tensor) -> torch.Tensor:
        """Weighted sum of the loss terms this step trains; runs only the network parts they need."""
        net = self.network
        cells = bool(self.options.cell_lesion_weight)
        if self.loss_terms == ("seg",):
            seg, head = net(data), None
        else:
            seg, head = net.forward_both(data, decode="seg" in self.loss_terms, cells=cells)
        loss = torch.zeros((), device=self.device)
        if seg is not None:
            loss = loss + self.options.seg_weight * self.loss(seg, target)
        if head is not None:
            logits, margins = head if cells else (head, None)
            cls_loss = self.cls_loss(logits.float(), labels)
            self._epoch_cls_losses.append(cls_loss.detach())  # read at the epoch's end: no sync per iteration
            loss = loss + self.options.cls_weight * cls_loss
            if cells:
                full_size = target[0] if isinstance(target, list) else target  # deep supervision: finest first
                loss = loss + self.options.cell_lesion_weight * cell_lesion_loss(margins, full_size)
        return loss

    # sha256 of the source of nnU-Net's nnUNetTrainer.train_step that train_step below mirrors (nnunetv2 2.8.1):
    # a test compares it with the installed nnU-Net, so that an upgrade changing the original (mixed precision,
    # gradient clipping, compilation) fails loudly instead of leaving ours silently behind.
    MIRRORED_TRAIN_STEP_SHA256 = "c8993de84c8c419f6471f619f82839931c8e7d1bae0b0eddca42951fcab90819"

    def train_step(self, batch: dict) -> dict:
        # nnU-Net's train_step with the multi-task loss in place of self.loss(self.network(data), target).
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"]
        target = ([t.to(self.device, non_blocking=True) for t in target] if isinstance(target, list)
                  else target.to(self.device, non_blocking=True))
        labels = self.case_targets(batch["keys"])
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context():
            loss = self.multitask_loss(data, target, labels)
        if self.grad_scaler is not None:
            self.grad_scaler.scale(loss).backward()
            self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.optimizer.step()
        return {"loss": loss.detach().cpu().numpy()}

    def validation_step(self, batch: dict) -> dict:
        # nnU-Net's own step computes loss and pseudo-Dice counts from one forward pass; the classification
        # logits of that same pass are collected on the side.
        labels = self.case_targets(batch["keys"])
        with self._bare_network().collecting() as collected:
            result = super().validation_step(batch)
        logits = collected[0].float()
        seg_weight = self.options.seg_weight if "seg" in self.loss_terms else 0.0
        cls_weight = self.options.cls_weight if "cls" in self.loss_terms else 0.0
        cls_loss = float(self.cls_loss(logits, labels))
        result["loss"] = seg_weight * result["loss"] + cls_weight * cls_loss
        result["pdac_probability"] = torch.softmax(logits, 1)[:, 1].cpu().numpy()
        result["pdac_label"] = labels.cpu().numpy()
        return result

    def on_train_epoch_end(self, train_outputs: list[dict]):
        super().on_train_epoch_end(train_outputs)
        cls_loss = torch.stack(self._epoch_cls_losses).mean().item() if self._epoch_cls_losses else np.nan
        self.logger.log(CLS_LOSS_KEY, cls_loss, self.current_epoch)
        if self._epoch_cls_losses:
            self.print_to_log_file(f"Classification loss (training patches): {cls_loss:.4f}")
        self._epoch_cls_losses = []

    def on_validation_epoch_end(self, val_outputs: list[dict]):
        super().on_validation_epoch_end(val_outputs)
        auroc = patch_auroc(np.concatenate([o["pdac_label"] for o in val_outputs]),
                            np.concatenate([o["pdac_probability"] for o in val_outputs]))
        self.logger.log(AUROC_KEY, np.nan if auroc is None else auroc, self.current_epoch)
        self.print_to_log_file("Patch-level PDAC AUROC: " +
                               ("undefined (validation patches of one class only)" if auroc is None
                                else f"{auroc:.4f}"))

    def on_train_end(self):
        super().on_train_end()
        self.validate_cases()  # step 1 too: its untrained head is the reference the later steps must beat

    @torch.inference_mode()
    def validate_cases(self) -> dict:
        """Does the head learn? Every validation case's whole crop in nnU-Net's sliding-window positions (no
        mirroring; encoder and head only), aggregated as inference aggregates it, then the case-level AUROC;
        written to head_validation.json beside the checkpoint with the per-epoch classification loss."""
        net = self._bare_network()
        net.eval()
        aggregation = WindowAggregation.from_head_settings(head_settings(self.configuration_manager))
        rules = {rule: replace(aggregation, rule=rule) for rule in AGGREGATIONS}
        _, val_keys = self.do_split()
        dataset = self.dataset_class(self.preprocessed_dataset_folder, val_keys)
        labels = self.case_targets(val_keys).tolist()
        probabilities = {rule: [] for rule in rules}
        for key in val_keys:
            data = torch.from_numpy(np.asarray(dataset.load_case(key)[0][:]))
            logits = head_window_logits(net, data, self.configuration_manager.patch_size)
            for rule, aggregate in rules.items():
                probabilities[rule].append(pdac_probability([[logits]], aggregate))
        aurocs = {rule: patch_auroc(np.array(labels), np.array(p)) for rule, p in probabilities.items()}
        auroc = aurocs[aggregation.rule]
        logged = self.logger.local_logger.my_fantastic_logging
        result = {"fold": self.fold, "aggregation": aggregation.rule, "case_auroc": auroc,
                  "case_auroc_by_aggregation": aurocs,
                  "cases": {k: {"pdac": y, "pdac_probability": p}
                            for k, y, p in zip(val_keys, labels, probabilities[aggregation.rule])},
                  "train_cls_loss": [None if np.isnan(v) else v for v in logged[CLS_LOSS_KEY]]}
        write_json(result, os.path.join(self.output_folder, HEAD_VALIDATION))
        self.print_to_log_file("Case-level PDAC AUROC on the fold's validation cases (whole crops): " +
                               ("undefined (one class only)" if auroc is None else f"{auroc:.4f}"))
        return result


class Step1SegTrainer(MultiTaskTrainer):
    """Step 1: segmentation only; the classification head stays frozen at its initialisation."""

    frozen = ("head",)
    loss_terms = ("seg",)


class PancreasCentredBoxes:
    """Replaces a data loader's `get_bbox`: with probability `p`, the patch is forced onto the lesion in a case
    with lesion voxels and onto the pancreas parenchyma in one without; otherwise nnU-Net's own choice.
    Both classes of case are centred on the pancreas equally often, so where a patch was taken says nothing
    about the case's label."""

    def __init__(self, get_bbox, p: float):
        self.get_bbox, self.p = get_bbox, p

    def __call__(self, data_shape, force_fg, class_locations, overwrite_class=None, verbose=False):
        if class_locations is not None and np.random.rand() < self.p:
            target = LESION if len(class_locations.get(LESION, ())) else PARENCHYMA
            if len(class_locations.get(target, ())):
                return self.get_bbox(data_shape, True, class_locations, overwrite_class=target, verbose=verbose)
        return self.get_bbox(data_shape, force_fg, class_locations, overwrite_class, verbose)


def training_loader(train):
    """The data loader inside nnU-Net's in-process augmenter: `train_fold` has the trainer build its loaders in
    process (seeding.load_data_seeded) and hands them to its seeded workers only after our changes."""
    return train.data_loader


class BalancedIndices:
    """Replaces a data loader's `get_indices`: half of every batch from each class (with an odd batch size the
    extra sample's class is random), in random order so that nnU-Net's foreground forcing of the last batch
    positions stays independent of the class."""

    def __init__(self, positives: Sequence[str], negatives: Sequence[str], batch_size: int):
        self.positives, self.negatives, self.batch_size = list(positives), list(negatives), batch_size

    def __call__(self) -> np.ndarray:
        n_pos = self.batch_size // 2 + int(self.batch_size % 2 and np.random.rand() < 0.5)
        keys = np.concatenate([np.random.choice(self.positives, n_pos),
                               np.random.choice(self.negatives, self.batch_size - n_pos)])
        np.random.shuffle(keys)
        return keys


class Step2ClsTrainer(MultiTaskTrainer):
    """Step 2: classification head only, encoder and decoder frozen."""

    frozen = ("encoder", "decoder")
    loss_terms = ("cls",)


class Step3JointTrainer(MultiTaskTrainer):
    """Step 3: end-to-end fine-tuning of both tasks, loss = seg_weight * seg + cls_weight * cls."""


STEP_TRAINERS: dict[int, type[MultiTaskTrainer]] = {1: Step1SegTrainer, 2: Step2ClsTrainer, 3: Step3JointTrainer}
