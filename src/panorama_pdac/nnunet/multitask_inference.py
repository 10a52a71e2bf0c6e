"""Stage-2 inference: lesion probability map and case-level PDAC probability from one multi-task predictor.

The predictor comes from `inference.load_predictor(..., trainer_class=<a multi-task trainer>)`; its parameter
sets (one per fold) form the ensemble. nnU-Net's sliding window (Gaussian weighting, mirroring) produces the
segmentation; the classification logits of every window and mirror are collected beside it. Aggregation,
as METHOD.md §3 words it:
  - within a fold, the window-and-mirror logits are averaged (uniformly, no Gaussian weight), then softmaxed;
  - folds are averaged as probabilities;
  - segmentation logits are averaged over folds as nnU-Net's own ensembling does, then softmaxed.
"""

from __future__ import annotations

import copy
import os
from typing import Sequence

import numpy as np
import torch

from ..errors import ConfigError
from ..networks import MultiTaskUNet

LESION_LABEL = 1  # PDAC lesion in the 7-label map
PDAC_CLASS = 1  # index of the PDAC logit


def pdac_probability(window_logits_per_fold: Sequence[Sequence[torch.Tensor]]) -> float:
    """Mean over folds of softmax(mean of that fold's window/mirror logits)[PDAC]."""
    per_fold = []
    for window_logits in window_logits_per_fold:
        logits = torch.cat([w.float().reshape(-1, w.shape[-1]).cpu() for w in window_logits])
        per_fold.append(torch.softmax(logits.mean(0), 0)[PDAC_CLASS].item())
    return float(np.mean(per_fold))


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
    lesion = probabilities[labels.all_labels.index(LESION_LABEL)].astype(np.float32)
    return lesion, pdac_probability(window_logits_per_fold)
