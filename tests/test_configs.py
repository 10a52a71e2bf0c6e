"""Every shipped configuration overlay (and the end-to-end tests' one), merged onto config/config.yaml as
Snakemake merges --configfile files, passes the workflow's start-up check against its schema (a misspelt key
fails here, not hours into a run)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config

from panorama_pdac.config_check import load_schema, schema_problems

REPO = Path(__file__).resolve().parents[1]
SCHEMA = load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
OVERLAYS = [*sorted(p for p in (REPO / "config").glob("*.yaml") if p.name != "config.yaml"),
            REPO / "tests" / "e2e" / "config.yaml"]


def _merged(*files: Path) -> dict:
    config = {}
    for f in files:
        update_config(config, yaml.safe_load(f.read_text()))
    return config


def test_there_are_overlays():
    assert {"panorama.yaml", "real_anatomy.yaml"} <= {p.name for p in OVERLAYS}


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: str(p.relative_to(REPO)))
def test_overlay_passes_the_schema(overlay):
    config = _merged(REPO / "config" / "config.yaml", overlay)
    assert schema_problems(config, SCHEMA) == []


def test_schema_rejects_a_misspelt_plan_override():
    config = _merged(REPO / "config" / "config.yaml")
    bad = copy.deepcopy(config)
    bad["stage2"]["plan_overrides"]["batch_dise"] = True
    assert schema_problems(bad, SCHEMA) == [
        "stage2.plan_overrides.batch_dise: unknown key; did you mean stage2.plan_overrides.batch_dice?"]


def test_published_settings_switch_the_demo_training_off():
    # config/panorama.yaml on top of the demo must give the published training, not the demo's shortcuts.
    config = _merged(REPO / "config" / "config.yaml", REPO / "config" / "panorama.yaml")
    options = config["stage2"]["options"]
    assert options["optimizer"] == "sgd" and options["lesion_oversample"] == 0.0
    assert options["class_weights"] == [1, 3]
    assert config["folds"]["n_folds"] == 5
    # Every plan override of the demo is undone: nnU-Net plans, except the winner's patch and batch size.
    assert all(v is None for v in config["stage1"]["plan_overrides"].values())
    published = {"patch_size": [56, 192, 352], "batch_size": 2}
    assert {k: v for k, v in config["stage2"]["plan_overrides"].items() if v is not None} == published
    assert config["stage1"]["roi_min_component_fraction"] == 0.0 and config["evaluation"]["fusion"] == "mean"
    assert config["evaluation"]["postprocess"]["mask_to_pancreas"] is False


def test_published_config_builds_the_papers_head():
    # METHOD.md §3: an FPN of width 256 on the last three encoder stages, global average pooling, one fully
    # connected layer to two logits; 1:3 weighted CE; the windows' logits averaged at inference (JSC).
    from torch import nn

    from panorama_pdac.networks import FPNClassificationHead
    from panorama_pdac.nnunet.multitask_inference import WindowAggregation
    from panorama_pdac.nnunet.multitask_trainers import head_network_settings

    config = _merged(REPO / "config" / "config.yaml", REPO / "config" / "panorama.yaml")
    head_settings = config["stage2"]["head"]
    encoder = nn.Module()  # what the head reads of a planned encoder: the published plan's last three stages
    encoder.output_channels, encoder.strides = [128, 256, 320, 320], [[2, 2, 2]] * 3 + [[1, 2, 2]]
    encoder.conv_op, encoder.norm_op = nn.Conv3d, nn.InstanceNorm3d
    head = FPNClassificationHead.for_encoder(encoder, **head_network_settings(head_settings))
    assert [c.in_channels for c in head.lateral] == [256, 320, 320]
    assert {c.out_channels for c in head.lateral} == {256}
    assert isinstance(head.classifier, nn.Linear) and head.classifier.out_features == 2
    assert all(isinstance(f, nn.LeakyReLU) for f in head.fuse) and head.pooling == "avg"
    assert WindowAggregation.from_head_settings(head_settings) == WindowAggregation("mean")
    options = config["stage2"]["options"]
    assert options["class_weights"] == [1, 3] and not options.get("balanced_batches", False)
    assert options["cell_lesion_weight"] == 0  # the head learns from case labels alone
    steps = config["stage2"]["steps"]
    assert steps["step2"]["options"]["balanced_batches"] is True  # the head alone learns from balanced batches
    assert not steps["step3"].get("options", {}).get("balanced_batches", False)
    assert all(step["schedule"].get("batch_size") is None for step in steps.values())  # the plans' batch
