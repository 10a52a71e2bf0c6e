# Shared definitions: data locations, wildcard constraints, resources and targets.
from pathlib import Path

from panorama_pdac import stage1, stage2
from panorama_pdac.layout import files_signature, label_folders, raw_folders
from panorama_pdac.settings import localisation_settings, predict_settings

# Config sections every rule file reads.
S1 = config["stage1"]
S2 = config["stage2"]
EV = config["evaluation"]
# How stage 1's mask becomes the ROI (stage1.localise), for the CV cases and for new scans alike.
LOCALISATION = localisation_settings(config)

SYNTHETIC_DIR = "results/synthetic"
SYNTHETIC_SHEET = "{}/labels/clinical_information.{}".format(
    SYNTHETIC_DIR, config["synthetic"]["sheet_format"]
)
FOLDS = list(range(config["folds"]["n_folds"]))


PAINTED_DIR = f"{SYNTHETIC_DIR}/painted"
S1_NNUNET = "results/stage1/nnunet"
S1_RAW = f"{S1_NNUNET}/raw/{stage1.DATASET_NAME}"
S2_RAW = f"results/stage2/nnunet/raw/{stage2.DATASET_NAME}"


def raw_data():
    """Where the raw data set lives: the user's download, the generated demo data, or CT painted onto a
    real labels repository (images made here, labels and sheet the user's)."""
    syn = config["synthetic"]
    if not syn["enabled"]:
        return config["data"]
    if syn["mode"] == "painted":
        return {
            "images": [PAINTED_DIR],
            "labels": syn["painted_labels"],
            "clinical": f"{syn['painted_labels']}/clinical_information.xlsx",
        }
    return {
        "images": [f"{SYNTHETIC_DIR}/images/*"],
        "labels": f"{SYNTHETIC_DIR}/labels",
        "clinical": SYNTHETIC_SHEET,
    }


def index_inputs(wildcards):
    """The clinical sheet and the manifest of the files in the data folders (list_raw_files)."""
    return {
        "clinical": raw_data()["clinical"],
        "raw_files": "results/dataset/raw_files.tsv",
    }


def raw_files_inputs(wildcards):
    """Nothing for a user's data; the demo data's maker, a checkpoint: its files are listed after it ran, so
    that the first run records the same manifest signature as every later run."""
    syn = config["synthetic"]
    if not syn["enabled"]:
        return {}
    if syn["mode"] == "painted":
        return {"made": checkpoints.paint_label_images.get().output[0]}
    return {"made": checkpoints.generate_synthetic_data.get().output[0]}


def raw_data_folders(wildcards):
    """The image and label folders. Evaluated with the job, so after the demo data's checkpoint has run."""
    return raw_folders(raw_data()["images"], raw_data()["labels"])


def raw_files_signature(wildcards):
    """Path, size and time of every file in the data folders, as one digest: a param of list_raw_files,
    so that a file added, removed or replaced there (by an older one too) reruns it and the ingestion.
    (A param function that takes `input` would be left out of Snakemake's params trigger.)
    """
    return files_signature(raw_data_folders(wildcards))


def painted_labels_signature(wildcards):
    """The label files the painted demo paints, as one digest: a param of paint_label_images, so that a label
    added or changed in the clone is painted (the others are kept: per-case signatures).
    """
    return files_signature(
        list(label_folders(config["synthetic"]["painted_labels"]).values())
    )


def job_resources(family):
    """Executor resources of a job family from config (never numbers inside rules). A retried job (a
    training job killed at its time limit resumes from its checkpoint) asks for runtime x attempt.
    """
    resources = dict(config["resources"][family])
    runtime = resources.pop("runtime")
    return {**resources, "runtime": lambda wildcards, attempt: runtime * attempt}


VARIANTS = list(config["stage2"]["variants"])
STEPS = [1, 2, 3]
# Stage 1's chain first when cores are short: every variant's CV prediction waits for its ROIs, while stage-2
# training (crops from the ground truth by default) does not. Left to itself the scheduler ran stage 1 last, and
# the CV predictions of both variants after it, one after another (measured on the demo).
STAGE1_PRIORITY = 1


def variant_planner(variant):
    return config["stage2"]["variants"][variant].get(
        "planner", config["stage2"]["planner"]
    )


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
        "plans": "results/stage2/{variant}/plans.json".format(**wildcards),
        "dataset_json": "results/stage2/{variant}/dataset.json".format(**wildcards),
        "case_labels": f"{S2_RAW}/case_labels.json",
    }
    if int(wildcards.step) > 1:
        inputs["init"] = "results/stage2/{}/fold_{}/step{}/checkpoint_final.pth".format(
            wildcards.variant, wildcards.fold, int(wildcards.step) - 1
        )
    return inputs


def ensemble_inputs(wildcards):
    """The models of both stages that predict new scans: every fold of stage 1 and of predict.variant's step 3,
    with their model folders' plans.json and dataset.json."""
    variant = config["predict"]["variant"]
    return {
        "stage1_plans": "results/stage1/plans.json",
        "stage1_dataset_json": "results/stage1/dataset.json",
        "stage1_models": expand(
            "results/stage1/fold_{fold}/checkpoint_final.pth", fold=FOLDS
        ),
        "stage2_plans": f"results/stage2/{variant}/plans.json",
        "stage2_dataset_json": f"results/stage2/{variant}/dataset.json",
        "stage2_models": expand(
            "results/stage2/{variant}/fold_{fold}/step3/checkpoint_final.pth",
            variant=variant,
            fold=FOLDS,
        ),
    }


def predict_inputs(wildcards):
    """The scans (every non-hidden file of predict_input: unusable ones are reported per case) and the models of
    both stages. Only a run that asks for predictions needs predict_input; once set, the Snakefile's config
    check has made sure of the folder, its files and predict.variant.
    """
    folder = config["predict_input"]
    if not folder:
        raise ValueError(
            "predict needs a folder of CT scans: --config predict_input=DIR"
        )
    images = sorted(
        str(p)
        for p in Path(folder).iterdir()
        if p.is_file() and not p.name.startswith(".")
    )
    return {"images": images, **ensemble_inputs(wildcards)}


def all_targets():
    return [
        "results/dataset/cases.tsv",
        "results/dataset/splits_final.json",
        "results/dataset/data_summary.html",
        "results/stage1/qa_summary.json",
        "results/stage1/roi_recall.png",
        "results/evaluation/table4.html",
        "results/evaluation/comparison.html",
        "results/evaluation/training_curves.png",
        "results/evaluation/head_learning.html",
        *expand("results/evaluation/{variant}/qa_montage.png", variant=VARIANTS),
        "results/provenance.json",
    ]


wildcard_constraints:
    fold=r"\d+",
    step=r"[123]",
    variant="|".join(VARIANTS),
