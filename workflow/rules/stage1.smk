# Stage 1: low-resolution pancreas nnU-Net, one training job per fold, cross-validated ROIs.


rule convert_stage1:
    input:
        cases="results/dataset/cases.tsv",
    output:
        dataset_json=f"{S1_RAW}/dataset.json",
    log:
        "results/logs/stage1/convert_stage1.log",
    benchmark:
        "results/benchmarks/stage1/convert_stage1.tsv"
    priority: STAGE1_PRIORITY
    conda:
        "../../envs/nnunet.yaml"
    threads: config["threads"]["per_case"]
    resources:
        **job_resources("light"),
    params:
        spacing_xyz=S1["spacing_xyz"],
        pancreas_labels=S1["pancreas_labels"],
    script:
        "../scripts/convert_stage1.py"


rule plan_stage1:
    input:
        dataset_json=f"{S1_RAW}/dataset.json",
        splits="results/dataset/splits_final.json",
    output:
        plans="results/stage1/plans.json",
        dataset_json="results/stage1/dataset.json",
    log:
        "results/logs/stage1/plan_stage1.log",
    benchmark:
        "results/benchmarks/stage1/plan_stage1.tsv"
    priority: STAGE1_PRIORITY
    conda:
        "../../envs/nnunet.yaml"
    threads: config["threads"]["per_case"]
    resources:
        **job_resources("light"),
    params:
        planner=S1["planner"],
        configuration=S1["configuration"],
        overrides=S1["plan_overrides"],
    script:
        "../scripts/plan_stage1.py"


rule train_stage1:
    input:
        plans="results/stage1/plans.json",
        dataset_json="results/stage1/dataset.json",
    output:
        # checkpoint_latest.pth is deliberately not an output: a rerun resumes from it.
        checkpoint="results/stage1/fold_{fold}/checkpoint_final.pth",
        progress="results/stage1/fold_{fold}/progress.png",
        training_log="results/stage1/fold_{fold}/training_log.txt",
        debug="results/stage1/fold_{fold}/debug.json",
    log:
        "results/logs/stage1/train_stage1_fold_{fold}.log",
    benchmark:
        "results/benchmarks/stage1/train_stage1_fold_{fold}.tsv"
    priority: STAGE1_PRIORITY
    conda:
        "../../envs/nnunet.yaml"
    threads: config["threads"]["train"]
    resources:
        **job_resources("train"),
    params:
        configuration=S1["configuration"],
        schedule=S1["schedule"],
        device=config["device"],
        augmentation_workers=config["nnunet"]["augmentation_workers"],
        seed=S1["seed"],
        deterministic=config["deterministic"],
    script:
        "../scripts/train_stage1.py"


rule predict_stage1_cv:
    input:
        checkpoint="results/stage1/fold_{fold}/checkpoint_final.pth",
        plans="results/stage1/plans.json",
        splits="results/dataset/splits_final.json",
        raw_dataset=f"{S1_RAW}/dataset.json",
    output:
        table="results/stage1/cv/fold_{fold}.tsv",
    log:
        "results/logs/stage1/predict_stage1_cv_fold_{fold}.log",
    benchmark:
        "results/benchmarks/stage1/predict_stage1_cv_fold_{fold}.tsv"
    priority: STAGE1_PRIORITY
    conda:
        "../../envs/nnunet.yaml"
    threads: config["threads"]["predict"]
    resources:
        **job_resources("predict"),
    params:
        device=config["device"],
        mirroring=S1["mirroring"],
    script:
        "../scripts/predict_stage1_cv.py"


rule localise_stage1:
    input:
        cases="results/dataset/cases.tsv",
        cv=expand("results/stage1/cv/fold_{fold}.tsv", fold=FOLDS),
        raw_dataset=f"{S1_RAW}/dataset.json",
    output:
        rois="results/stage1/rois.tsv",
        qa="results/stage1/qa.tsv",
        summary="results/stage1/qa_summary.json",
    log:
        "results/logs/stage1/localise_stage1.log",
    benchmark:
        "results/benchmarks/stage1/localise_stage1.tsv"
    priority: STAGE1_PRIORITY
    conda:
        "../../envs/nnunet.yaml"
    threads: config["threads"]["per_case"]
    resources:
        **job_resources("light"),
    params:
        localisation=LOCALISATION,
    script:
        "../scripts/localise_stage1.py"
