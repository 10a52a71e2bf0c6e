"""nnU-Net predictors built from our model folders without nnU-Net's trainer lookup by name."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from ..io import read_json

WINDOW_STEP = 0.5  # nnU-Net's default tile step (fraction of the patch) between sliding windows


def load_predictor(model_folder: str | os.PathLike, checkpoints: list[str | os.PathLike], device: torch.device,
                   mirroring: bool, trainer_class=None):
    """An `nnUNetPredictor` over an ensemble of checkpoints (one per fold).

    `model_folder` holds nnU-Net's `plans.json` and `dataset.json`. The network comes from
    `trainer_class.build_network_architecture` (stock nnUNetTrainer by default).
    """
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.label_handling.label_handling import (
        determine_num_input_channels,
    )
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    model_folder = Path(model_folder)
    dataset_json = read_json(model_folder / "dataset.json")
    plans_manager = PlansManager(read_json(model_folder / "plans.json"))
    loaded = [torch.load(c, map_location="cpu", weights_only=False) for c in checkpoints]
    configuration = loaded[0]["init_args"]["configuration"]
    conf = plans_manager.get_configuration(configuration)
    network = (trainer_class or nnUNetTrainer).build_network_architecture(
        plans_manager, conf, determine_num_input_channels(plans_manager, conf, dataset_json),
        plans_manager.get_label_manager(dataset_json).num_segmentation_heads, enable_deep_supervision=False)
    params = [c["network_weights"] for c in loaded]
    network.load_state_dict(params[0])
    predictor = nnUNetPredictor(tile_step_size=WINDOW_STEP, use_gaussian=True, use_mirroring=mirroring,
                                perform_everything_on_device=device.type == "cuda", device=device,
                                verbose=False, allow_tqdm=False)
    predictor.manual_initialization(network, plans_manager, conf, params, dataset_json,
                                    loaded[0]["trainer_name"], loaded[0].get("inference_allowed_mirroring_axes"))
    clock_sliding_window(predictor)
    return predictor


def clock_sliding_window(predictor) -> None:
    """Sum the seconds of every sliding-window call in `predictor.sliding_window_seconds`: nnU-Net's network time,
    against which a job measures its own overhead (reading, cropping, pre-processing, export, writing).

    Wraps the instance's method; nnU-Net's own calls (predict_single_npy_array and the rest) go through it too.
    On CUDA the clock stops when the device has finished, not when the kernels were queued."""
    predictor.sliding_window_seconds = 0.0
    sliding_window = predictor.predict_sliding_window_return_logits

    def clocked(data):
        start = time.perf_counter()
        try:
            return sliding_window(data)
        finally:
            if predictor.device.type == "cuda":
                torch.cuda.synchronize(predictor.device)
            predictor.sliding_window_seconds += time.perf_counter() - start

    predictor.predict_sliding_window_return_logits = clocked
