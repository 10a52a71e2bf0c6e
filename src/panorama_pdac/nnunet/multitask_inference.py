"""Stage-2 inference: lesion probability map and case-level PDAC probability from one multi-task predictor.

The predictor comes from `inference.load_predictor(..., trainer_class=<a multi-task trainer>)`; its parameter
sets (one per fold) form the ensemble. nnU-Net's sliding window (Gaussian weighting, mirroring) produces the
segmentation; the classification logits of every window and mirror are collected beside it. Aggregation:
  - within a fold, over the window-and-mirror logits by the plans' `classification_head.aggregation`:
    "mean" (METHOD.md §3 and JSC: the logits averaged uniformly, no Gaussian weight, then softmaxed), "max"
    (the window most sure of PDAC) or "top_k" (the mean of the `top_k` surest); a window's certainty is its
    logit margin PDAC minus non-PDAC, so "mean" of margins equals softmax of the mean logits;
  - folds are averaged as probabilities;
  - segmentation logits are averaged over folds as nnU-Net's own ensembling does, then softmaxed.
"""

from __future__ import annotations

import copy
import itertools
import os
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from ..errors import ConfigError
from ..labels import LESION
from ..networks import MultiTaskUNet
from .inference import WINDOW_STEP

PDAC_CLASS = 1  # index of the PDAC logit


AGGREGATIONS = ("mean", "max", "top_k")


def head_settings(configuration_manager) -> Mapping:
    """The plans configuration's `classification_head` entry (config stage2.head); empty: the published head."""
    return configuration_manager.configuration.get("classification_head", {})


@dataclass(frozen=True)
class WindowAggregation:
    """How one model's window-and-mirror logits become a case's PDAC probability."""

    rule: str = "mean"
    top_k: int = 3

    def __post_init__(self):
        if self.rule not in AGGREGATIONS:
            raise ConfigError(f"classification head aggregation must be one of {AGGREGATIONS}, not '{self.rule}'")
        if self.top_k < 1:
            raise ConfigError(f"classification head top_k must be at least 1, got {self.top_k}")

    @classmethod
    def from_head_settings(cls, head: Mapping) -> WindowAggregation:
        """From the plans' `classification_head` entry (absent keys: the published mean)."""
        return cls(head.get("aggregation", "mean"), int(head.get("top_k", 3)))

    def __call__(self, window_logits: Sequence[torch.Tensor]) -> float:
        logits = torch.cat([w.float().reshape(-1, w.shape[-1]).cpu() for w in window_logits])
        margins = logits[:, PDAC_CLASS] - logits[:, 1 - PDAC_CLASS]
        if self.rule == "max":
            margin = margins.max()
        elif self.rule == "top_k":
            margin = margins.topk(min(self.top_k, len(margins))).values.mean()
        else:
            margin = margins.mean()
        return torch.sigmoid(margin).item()


def pdac_probability(window_logits_per_fold: Sequence[Sequence[torch.Tensor]],
                     aggregation: WindowAggregation = WindowAggregation()) -> float:
    """Mean over folds of each fold's aggregated window/mirror probability."""
    return float(np.mean([aggregation(window_logits) for window_logits in window_logits_per_fold]))


@torch.inference_mode()
def head_window_logits(net: MultiTaskUNet, data: torch.Tensor, patch_size, batch_size: int = 4) -> torch.Tensor:
    """The classification logits (windows, 2) of the windows nnU-Net's sliding window would feed the network
    for the preprocessed image `data` (c, z, y, x), without mirroring: the same padding and window positions,
    but encoder and head only (no decoder), several windows per forward pass."""
    from acvl_utils.cropping_and_padding.padding import pad_nd_image
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    data = pad_nd_image(data, patch_size, "constant", {"value": 0})
    steps = compute_steps_for_sliding_window(data.shape[1:], patch_size, WINDOW_STEP)
    windows = [data[(slice(None), *(slice(s, s + p) for s, p in zip(starts, patch_size)))]
               for starts in itertools.product(*steps)]
    device = next(net.parameters()).device
    return torch.cat([net.classify(torch.stack(windows[i:i + batch_size]).to(device)).float().cpu()
                      for i in range(0, len(windows), batch_size)])


def predict_case(predictor, image_files: Sequence[str | os.PathLike] | None = None, image: np.ndarray | None = None,
                 properties: dict | None = None) -> tuple[np.ndarray, float]:
    """Predict one case given as image files (one per channel) or as an array (c, z, y, x) with nnU-Net's
    reader properties (at least 'spacing'). Returns the lesion probability (z, y, x) float32 in the input
    image's grid and the case PDAC probability."""
    from nnunetv2.inference.export_prediction import (
        convert_predicted_logits_to_segmentation_with_correct_shape,
    )

    if (image_files is None) == (image is None):
        raise ValueError("give either image_files or image (with properties)")
    net = predictor.network
    net = getattr(net, "_orig_mod", net)  # torch.compile wrapper
    if not isinstance(net, MultiTaskUNet):
        raise ConfigError(f"predictor holds a {type(net).__name__}, not a MultiTaskUNet: load it with a "
                          "multi-task trainer class")
    plans, conf, labels = predictor.plans_manager, predictor.configuration_manager, predictor.label_manager
    preprocessor = conf.preprocessor_class(verbose=False)
    if image_files is not None:
        data, _, props = preprocessor.run_case([os.fspath(f) for f in image_files], None, plans, conf,
                                               predictor.dataset_json)
    else:
        data, _, props = preprocessor.run_case_npy(image, None, copy.deepcopy(properties), plans, conf,
                                                   predictor.dataset_json)
    data = torch.from_numpy(data)

    seg_logits, window_logits_per_fold = None, []
    for params in predictor.list_of_parameters:
        net.load_state_dict(params)
        with net.collecting() as window_logits:
            logits = predictor.predict_sliding_window_return_logits(data).float().cpu()
        seg_logits = logits if seg_logits is None else seg_logits + logits
        window_logits_per_fold.append(window_logits)
    seg_logits /= len(predictor.list_of_parameters)
    _, probabilities = convert_predicted_logits_to_segmentation_with_correct_shape(
        seg_logits, plans, conf, labels, props, return_probabilities=True)
    lesion = probabilities[labels.all_labels.index(LESION)].astype(np.float32)
    aggregation = WindowAggregation.from_head_settings(head_settings(conf))
    return lesion, pdac_probability(window_logits_per_fold, aggregation)
