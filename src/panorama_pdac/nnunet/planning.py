"""Fingerprint, plan and preprocess a raw nnU-Net dataset through nnU-Net's API, with our splits and
config-driven plan overrides (tiny CPU networks for the demo, the winner's patch size for real runs)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

from ..errors import ConfigError
from ..io import read_json, write_json

# Planner classes by the names users know from nnU-Net's CLI (-pl).
PLANNERS = {
    "ExperimentPlanner": ("nnunetv2.experiment_planning.experiment_planners.default_experiment_planner", "ExperimentPlanner"),
    "nnUNetPlannerResEncM": ("nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners", "nnUNetPlannerResEncM"),
    "nnUNetPlannerResEncL": ("nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners", "nnUNetPlannerResEncL"),
    "nnUNetPlannerResEncXL": ("nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners", "nnUNetPlannerResEncXL"),
}


def planner_class(name: str):
    if name not in PLANNERS:
        raise ConfigError(f"unknown nnU-Net planner '{name}'; choose one of {sorted(PLANNERS)}")
    module, cls = PLANNERS[name]
    return getattr(__import__(module, fromlist=[cls]), cls)


def override_configuration(plans: dict, configuration: str, overrides: dict) -> dict:
    """Return a copy of `plans` whose `configuration` follows `overrides` (keys may be absent or null;
    `spacing` is the planner's business, see plan_and_preprocess):

    patch_size (z, y, x): the network topology is recomputed for it as nnU-Net's planner would;
    batch_size; batch_dice (Dice over the whole batch, not per patch: a rare class absent from most
    patches is then not pushed to zero on each of them); base_features / max_features: features per stage = min(max, base * 2**stage);
    n_conv_per_stage: convolutions (plain encoder) or residual blocks (ResEnc) per encoder stage, and
    per decoder stage.
    """
    from nnunetv2.experiment_planning.experiment_planners.network_topology import (
        get_pool_and_conv_props,
    )

    plans = copy.deepcopy(plans)
    if configuration not in plans["configurations"]:
        raise ConfigError(f"configuration '{configuration}' not in plans {plans.get('plans_name')}")
    conf = plans["configurations"][configuration]
    arch = conf["architecture"]["arch_kwargs"]
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}

    if "patch_size" in overrides:
        _, strides, kernels, patch, _ = get_pool_and_conv_props(conf["spacing"], overrides["patch_size"], 4, 999999)
        conf["patch_size"] = [int(p) for p in patch]
        arch["n_stages"] = len(strides)
        arch["strides"] = [list(s) for s in strides]
        arch["kernel_sizes"] = [list(k) for k in kernels]
    n_stages = arch["n_stages"]
    if "base_features" in overrides or "max_features" in overrides or "patch_size" in overrides:
        base = overrides.get("base_features", arch["features_per_stage"][0])
        top = overrides.get("max_features", max(arch["features_per_stage"]))
        arch["features_per_stage"] = [min(top, base * 2**i) for i in range(n_stages)]
    encoder_key = "n_blocks_per_stage" if "n_blocks_per_stage" in arch else "n_conv_per_stage"
    if "n_conv_per_stage" in overrides:
        arch[encoder_key] = [overrides["n_conv_per_stage"]] * n_stages
        arch["n_conv_per_stage_decoder"] = [overrides["n_conv_per_stage"]] * (n_stages - 1)
    else:  # keep the planner's counts, cut or padded to the (possibly new) number of stages
        arch[encoder_key] = (list(arch[encoder_key]) + [arch[encoder_key][-1]] * n_stages)[:n_stages]
        dec = list(arch["n_conv_per_stage_decoder"])
        arch["n_conv_per_stage_decoder"] = (dec + [dec[-1]] * n_stages)[: n_stages - 1]
    if "batch_size" in overrides:
        conf["batch_size"] = int(overrides["batch_size"])
    if "batch_dice" in overrides:
        conf["batch_dice"] = bool(overrides["batch_dice"])
    return plans


def plan_and_preprocess(
    dataset_id: int,
    planner: str,
    configuration: str,
    overrides: dict,
    splits: list[dict],
    num_processes: int = 1,
    plans_name: str | None = None,
    classification_head: dict | None = None,
) -> Path:
    """Plan `dataset_id` (folders from nnU-Net's environment, see env.py), apply `overrides` to
    `configuration`, save our `splits` as splits_final.json and preprocess that one configuration.
    Returns the plans file in the preprocessed dataset folder.

    overrides["spacing"] ((z, y, x) mm, the images' array order) goes to nnU-Net's planner as its target
    spacing (`overwrite_target_spacing`, 3d_fullres only), so that patch size and topology are planned for
    it: a coarser grid makes a CPU run of real-size crops feasible (fewer sliding windows per case).
    `classification_head` (stage 2: the head's structure and window aggregation, config stage2.head) becomes
    the configuration's `classification_head` entry, so that the model folder carries it to inference.
    """
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset,
        plan_experiment_dataset,
        preprocess_dataset,
    )
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import convert_id_to_dataset_name

    spacing = (overrides or {}).get("spacing")
    if spacing is not None and configuration != "3d_fullres":
        raise ConfigError(f"a spacing override applies to 3d_fullres only, not '{configuration}'")
    # The planner sizes torch's thread pool from the augmentation worker count, and 0 (our training
    # setting on few cores) crashes it.
    os.environ["nnUNet_n_proc_DA"] = str(max(1, num_processes))
    extract_fingerprint_dataset(dataset_id, num_processes=num_processes, check_dataset_integrity=True,
                                clean=True, verbose=False, show_progress_bar=False)
    _, identifier = plan_experiment_dataset(dataset_id, planner_class(planner), overwrite_plans_name=plans_name,
                                            overwrite_target_spacing=spacing)
    folder = Path(str(nnUNet_preprocessed)) / convert_id_to_dataset_name(dataset_id)
    plans_file = folder / f"{identifier}.json"
    plans = override_configuration(read_json(plans_file), configuration, overrides)
    if classification_head is not None:
        plans["configurations"][configuration]["classification_head"] = dict(classification_head)
    write_json(plans, plans_file)
    write_json(splits, folder / "splits_final.json")
    preprocess_dataset(dataset_id, identifier, configurations=(configuration,), num_processes=(num_processes,),
                       verbose=False, show_progress_bar=False)
    return plans_file
