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


def all_targets():
    return [
        "results/dataset/cases.tsv",
        "results/dataset/splits_final.json",
        "results/dataset/data_summary.html",
        "results/stage1/qa_summary.json",
    ]


wildcard_constraints:
    fold=r"\d+",
