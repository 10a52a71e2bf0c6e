# Stage 2: the multi-task nnU-Net on pancreas-region crops; one job per (variant, fold, step).

S2 = config["stage2"]
S2_RAW_ROOT = "results/stage2/nnunet/raw"
S2_RAW = f"{S2_RAW_ROOT}/Dataset502_PanoramaStage2"


rule crop_stage2:
    input:
        unpack(stage2_crop_inputs),
    output:
        dataset_json=f"{S2_RAW}/dataset.json",
    params:
        nnunet_root="results/stage2/nnunet",
        source=S2["crop_source"],
        margin_mm_xyz=S1["margin_mm_xyz"],
        pancreas_labels=S1["pancreas_labels"],
        roi_dir="results/stage1/roi",
    log:
        "results/logs/stage2/crop_stage2.log",
    benchmark:
        "results/benchmarks/stage2/crop_stage2.tsv"
    threads: config["threads"]["per_case"]
    resources:
        **job_resources("light"),
    conda:
        "../../envs/nnunet.yaml"
    script:
        "../scripts/crop_stage2.py"


rule plan_stage2:
    input:
        dataset_json=f"{S2_RAW}/dataset.json",
        splits="results/dataset/splits_final.json",
    output:
        plans="results/stage2/{variant}/plans.json",
        dataset_json="results/stage2/{variant}/dataset.json",
    params:
        nnunet_root="results/stage2/{variant}/nnunet",
        raw_root=S2_RAW_ROOT,
        planner=lambda wc: variant_planner(wc.variant),
        configuration=S2["configuration"],
        overrides=S2["plan_overrides"],
    log:
        "results/logs/stage2/plan_stage2_{variant}.log",
    benchmark:
        "results/benchmarks/stage2/plan_stage2_{variant}.tsv"
    threads: config["threads"]["per_case"]
    resources:
        **job_resources("light"),
    conda:
        "../../envs/nnunet.yaml"
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
    params:
        nnunet_root="results/stage2/{variant}/nnunet",
        raw_root=S2_RAW_ROOT,
        case_labels=f"{S2_RAW}/case_labels.json",
        configuration=S2["configuration"],
        schedule=lambda wc: S2["steps"][f"step{wc.step}"]["schedule"],
        options=lambda wc: stage2_options(wc.variant, wc.step),
        device=config["device"],
        augmentation_workers=config["nnunet"]["augmentation_workers"],
    log:
        "results/logs/stage2/train_stage2_{variant}_fold_{fold}_step{step}.log",
    benchmark:
        "results/benchmarks/stage2/train_stage2_{variant}_fold_{fold}_step{step}.tsv"
    threads: config["threads"]["train"]
    resources:
        **job_resources("train"),
    conda:
        "../../envs/nnunet.yaml"
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
    params:
        model_dir="results/stage2/{variant}",
        roi_dir="results/stage1/roi",
        out_dir="results/stage2/{variant}/cv",
        device=config["device"],
        mirroring=S2["mirroring"],
    log:
        "results/logs/stage2/predict_stage2_cv_{variant}_fold_{fold}.log",
    benchmark:
        "results/benchmarks/stage2/predict_stage2_cv_{variant}_fold_{fold}.tsv"
    threads: config["threads"]["predict"]
    resources:
        **job_resources("predict"),
    conda:
        "../../envs/nnunet.yaml"
    script:
        "../scripts/predict_stage2_cv.py"
