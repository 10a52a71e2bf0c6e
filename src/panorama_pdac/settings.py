"""Settings that several readers take from the workflow config: the Snakemake rules and the exported algorithm
(algorithm.py, reading the config it was exported with) build them here, so that they cannot drift apart.
Standard library only: the Snakefile calls it when it is parsed."""

from __future__ import annotations

from typing import Mapping


def localisation_settings(config: Mapping) -> dict:
    """How stage 1's mask becomes the ROI (stage1.localise), for the cross-validated cases and new scans alike."""
    stage1 = config["stage1"]
    return {"margin_mm_xyz": stage1["margin_mm_xyz"], "min_component_fraction": stage1["roi_min_component_fraction"]}


def predict_settings(config: Mapping) -> dict:
    """The fields of predict.PredictSettings: the values the training and the cross-validated evaluation used."""
    return {"spacing_xyz": config["stage1"]["spacing_xyz"], **localisation_settings(config),
            "postprocess": config["evaluation"]["postprocess"], "fusion": config["evaluation"]["fusion"]}
