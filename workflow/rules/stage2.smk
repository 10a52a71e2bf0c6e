# Stage 2: the multi-task nnU-Net on pancreas-region crops; one job per (variant, fold, step).


rule crop_stage2:
    input:
        unpack(stage2_crop_inputs),
    output:
        dataset_json=f"{S2_RAW}/dataset.json",
        case_labels=f"{S2_RAW}/case_labels.json",
    log:
        "results/logs/stage2/crop_stage2.log",
    benchmark:
        "results/benchmarks/stage2/crop_stage2.tsv"
    conda:
        "../../envs/nnunet.yaml"
    threads: config["threads"]["per_case"]
    resources:
        **job_resources("light"),
    params:
        source=S2["crop_source"],
        margin_mm_xyz=S1["margin_mm_xyz"],
        pancreas_labels=S1["pancreas_labels"],
    script:
        "../scripts/crop_stage2.py"


rule plan_stage2:
    input:
        dataset_json=f"{S2_RAW}/dataset.json",
        splits="results/dataset/splits_final.json",
    output:
        plans="results/stage2/{variant}/plans.json",
        dataset_json="results/stage2/{variant}/dataset.json",
    log:
        "results/logs/stage2/plan_stage2_{variant}.log",
    benchmark:
        "results/benchmarks/stage2/plan_stage2_{variant}.tsv"
    conda:
        "../../envs/nnunet.yaml"
    threads: config["threads"]["per_case"]
    resources:
        **job_resources("light"),
    params:
        planner=lambda wc: variant_planner(wc.variant),
        configuration=S2["configuration"],
        overrides=S2["plan_overrides"],
        head=S2["head"],
    script:
        "../scripts/plan_stage2.py"


rule train_stage2:
    input:
        unpack(stage2_step_inputs),
    output:
        # checkpoint_latest.pth is deliberately not an output: a rerun resumes from it.
        checkpoint="results/stage2/{variant}/fold_{fold}/step{step}/checkpoint_final.pth",
        progress="results/stage2/{variant}/fold_{fold}/step{step}/progress.png",
        training_log="results/stage2/{variant}/fold_{fold}/step{step}/training_log.txt",
        debug="results/stage2/{variant}/fold_{fold}/step{step}/debug.json",
        head_validation="results/stage2/{variant}/fold_{fold}/step{step}/head_validation.json",
    log:
        "results/logs/stage2/train_stage2_{variant}_fold_{fold}_step{step}.log",
    benchmark:
        "results/benchmarks/stage2/train_stage2_{variant}_fold_{fold}_step{step}.tsv"
    conda:
        "../../envs/nnunet.yaml"
    threads: config["threads"]["train"]
    resources:
        **job_resources("train"),
    params:
        configuration=S2["configuration"],
        schedule=lambda wc: S2["steps"][f"step{wc.step}"]["schedule"],
        options=lambda wc: stage2_options(wc.variant, wc.step),
        device=config["device"],
        augmentation_workers=config["nnunet"]["augmentation_workers"],
        seed=S2["seed"],
        deterministic=config["deterministic"],
    script:
        "../scripts/train_stage2.py"


rule predict_stage2_cv:
    input:
        checkpoint="results/stage2/{variant}/fold_{fold}/step3/checkpoint_final.pth",
        plans="results/stage2/{variant}/plans.json",
        cases="results/dataset/cases.tsv",
        splits="results/dataset/splits_final.json",
        rois="results/stage1/rois.tsv",
    output:
        table="results/stage2/{variant}/cv/fold_{fold}.tsv",
    log:
        "results/logs/stage2/predict_stage2_cv_{variant}_fold_{fold}.log",
    benchmark:
        "results/benchmarks/stage2/predict_stage2_cv_{variant}_fold_{fold}.tsv"
    conda:
        "../../envs/nnunet.yaml"
    threads: config["threads"]["predict"]
    resources:
        **job_resources("predict"),
    params:
        device=config["device"],
        mirroring=S2["mirroring"],
    script:
        "../scripts/predict_stage2_cv.py"
