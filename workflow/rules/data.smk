# Raw data: the demo data set, the manifest of the raw files, the validated case table and the
# patient-grouped folds. The demo data are made by checkpoints, so that the manifest lists them after they ran.


checkpoint generate_synthetic_data:
    output:
        clinical=SYNTHETIC_SHEET,
    log:
        "results/logs/generate_synthetic_data.log",
    localrule: True
    conda:
        "../../envs/data.yaml"
    threads: config["threads"]["per_case"]
    resources:
        **job_resources("light"),
    params:
        n_patients=config["synthetic"]["n_patients"],
        seed=config["synthetic"]["seed"],
        sheet_format=config["synthetic"]["sheet_format"],
    script:
        "../scripts/generate_synthetic_data.py"


checkpoint paint_label_images:
    output:
        manifest=f"{PAINTED_DIR}.tsv",
    log:
        "results/logs/paint_label_images.log",
    benchmark:
        "results/benchmarks/paint_label_images.tsv"
    conda:
        "../../envs/data.yaml"
    threads: config["threads"]["per_case"]
    resources:
        **job_resources("light"),
    params:
        labels=config["synthetic"]["painted_labels"],
        label_files=painted_labels_signature,
        seed=config["synthetic"]["seed"],
    script:
        "../scripts/paint_label_images.py"


rule list_raw_files:
    input:
        unpack(raw_files_inputs),
    output:
        manifest="results/dataset/raw_files.tsv",
    log:
        "results/logs/list_raw_files.log",
    localrule: True
    conda:
        "../../envs/data.yaml"
    params:
        folders=raw_data_folders,
        signature=raw_files_signature,
    script:
        "../scripts/list_raw_files.py"


rule index_cases:
    input:
        unpack(index_inputs),
    output:
        cases="results/dataset/cases.tsv",
        excluded="results/dataset/excluded.tsv",
        summary="results/dataset/summary.json",
    log:
        "results/logs/index_cases.log",
    benchmark:
        "results/benchmarks/index_cases.tsv"
    conda:
        "../../envs/data.yaml"
    threads: config["threads"]["per_case"]
    resources:
        **job_resources("light"),
    params:
        images=raw_data()["images"],
        labels=raw_data()["labels"],
        on_invalid=config["data"]["on_invalid"],
    script:
        "../scripts/index_cases.py"


rule make_folds:
    input:
        cases="results/dataset/cases.tsv",
    output:
        splits="results/dataset/splits_final.json",
        table="results/dataset/folds.tsv",
    log:
        "results/logs/make_folds.log",
    localrule: True
    conda:
        "../../envs/data.yaml"
    params:
        n_folds=config["folds"]["n_folds"],
        seed=config["folds"]["seed"],
        official_fold_file=config["folds"]["official_fold_file"],
    script:
        "../scripts/make_folds.py"


rule summarize_data:
    input:
        summary="results/dataset/summary.json",
        excluded="results/dataset/excluded.tsv",
        folds="results/dataset/folds.tsv",
    output:
        report(
            "results/dataset/data_summary.html",
            caption="../report/data_summary.rst",
            category="Data",
            labels={"table": "data summary"},
        ),
    log:
        "results/logs/summarize_data.log",
    localrule: True
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/summarize_data.py"
