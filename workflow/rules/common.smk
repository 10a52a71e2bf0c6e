# Shared definitions: the package path, data locations, wildcard constraints, resources and targets.
import os
from pathlib import Path

# Scripts import our package from src/ whether or not it was pip-installed (e.g. in --sdm conda envs);
# the variable reaches local and cluster jobs alike.
SRC = str(Path(workflow.basedir) / "src")
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (SRC, os.environ.get("PYTHONPATH", "")) if p
)

SYNTHETIC_DIR = "results/synthetic"
FOLDS = list(range(config["folds"]["n_folds"]))


def raw_data():
    """Where the raw data set lives: the user's download, or the generated demo data."""
    if config["synthetic"]["enabled"]:
        return {
            "images": [f"{SYNTHETIC_DIR}/images/*"],
            "labels": f"{SYNTHETIC_DIR}/labels",
            "clinical": f"{SYNTHETIC_DIR}/labels/clinical_information."
            + config["synthetic"]["sheet_format"],
        }
    return config["data"]


def job_resources(family):
    """Executor resources of a job family from config (never numbers inside rules)."""
    return config["resources"][family]


VARIANTS = list(config["stage2"]["variants"])
STEPS = [1, 2, 3]


def variant_planner(variant):
    return config["stage2"]["variants"][variant].get("planner", config["stage2"]["planner"])


def stage2_options(variant, step):
    """Multi-task trainer options: shared, then the step's, then the variant's (later wins)."""
    s2 = config["stage2"]
    return {
        **s2["options"],
        **s2["steps"][f"step{step}"].get("options", {}),
        **s2["variants"][variant].get("options", {}),
    }


def stage2_crop_inputs(wildcards):
    """Training crops from the ground-truth pancreas (published) or from stage-1 CV ROIs."""
    inputs = {"cases": "results/dataset/cases.tsv"}
    if config["stage2"]["crop_source"] == "cv":
        inputs["rois"] = "results/stage1/rois.tsv"
    return inputs


def stage2_step_inputs(wildcards):
    """Each step starts from the previous step's final weights."""
    inputs = {
        "plans": f"results/stage2/{wildcards.variant}/plans.json",
        "dataset_json": f"results/stage2/{wildcards.variant}/dataset.json",
    }
    if int(wildcards.step) > 1:
        inputs["init"] = (
            f"results/stage2/{wildcards.variant}/fold_{wildcards.fold}"
            f"/step{int(wildcards.step) - 1}/checkpoint_final.pth"
        )
    return inputs


def all_targets():
    return [
        "results/dataset/cases.tsv",
        "results/dataset/splits_final.json",
        "results/dataset/data_summary.html",
        "results/stage1/qa_summary.json",
        "results/stage1/roi_recall.png",
        "results/evaluation/table4.html",
        "results/evaluation/training_curves.png",
        *expand("results/evaluation/{variant}/qa_montage.png", variant=VARIANTS),
    ]


wildcard_constraints:
    fold=r"\d+",
    step=r"[123]",
    variant="|".join(VARIANTS),
