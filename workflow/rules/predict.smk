# Predict: the trained two-stage ensemble on a folder of new CT scans, in the grand-challenge output format.
# Not part of `all`: run it as  snakemake predict --config predict_input=DIR
from snakemake.exceptions import WorkflowError

PREDICT = config["predict"]


def predict_inputs(wildcards):
    """The scans (every non-hidden file of predict_input: unusable ones are reported per case) and the models of
    both stages. Checked here, so that only a run that asks for predictions needs predict_input.
    """
    folder = Path(config["predict_input"])
    if not config["predict_input"] or not folder.is_dir():
        raise WorkflowError(
            f"predict needs a folder of CT scans: --config predict_input=DIR "
            f"(predict_input is '{config['predict_input']}', not a folder)"
        )
    if PREDICT["variant"] not in VARIANTS:
        raise WorkflowError(
            f"predict.variant '{PREDICT['variant']}' is not one of stage2.variants {VARIANTS}"
        )
    images = sorted(
        str(p) for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
    )
    if not images:
        raise WorkflowError(f"predict_input {folder} holds no files")
    model = f"results/stage2/{PREDICT['variant']}"
    return {
        "images": images,
        "stage1_plans": "results/stage1/plans.json",
        "stage1_dataset_json": "results/stage1/dataset.json",
        "stage1_models": expand(
            "results/stage1/fold_{fold}/checkpoint_final.pth", fold=FOLDS
        ),
        "stage2_plans": f"{model}/plans.json",
        "stage2_dataset_json": f"{model}/dataset.json",
        "stage2_models": expand(
            "{model}/fold_{fold}/step3/checkpoint_final.pth", model=model, fold=FOLDS
        ),
    }


rule predict:
    input:
        unpack(predict_inputs),
    output:
        predictions="results/predict/predictions.csv",
        failures="results/predict/failures.tsv",
    log:
        "results/logs/predict/predict.log",
    benchmark:
        "results/benchmarks/predict/predict.tsv"
    conda:
        "../../envs/predict.yaml"
    threads: config["threads"]["predict"]
    resources:
        **job_resources("predict"),
    params:
        device=config["device"],
        mirroring=PREDICT["mirroring"],
        settings={
            "spacing_xyz": S1["spacing_xyz"],
            "margin_mm_xyz": S1["margin_mm_xyz"],
            "postprocess": EV["postprocess"],
            "fusion": EV["fusion"],
        },
    script:
        "../scripts/predict_cases.py"
