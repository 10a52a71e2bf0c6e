# Raw data: the demo data set, the validated case table and the patient-grouped folds.


rule generate_synthetic_data:
    output:
        clinical=raw_data()["clinical"],
    params:
        out_dir=SYNTHETIC_DIR,
        n_patients=config["synthetic"]["n_patients"],
        seed=config["synthetic"]["seed"],
        sheet_format=config["synthetic"]["sheet_format"],
    log:
        "results/logs/generate_synthetic_data.log",
    threads: config["threads"]["per_case"]
    resources:
        **job_resources("light"),
    conda:
        "../../envs/data.yaml"
    localrule: True
    script:
        "../scripts/generate_synthetic_data.py"


rule index_cases:
    input:
        clinical=raw_data()["clinical"],
    output:
        cases="results/dataset/cases.tsv",
        excluded="results/dataset/excluded.tsv",
        summary="results/dataset/summary.json",
    params:
        images=raw_data()["images"],
        labels=raw_data()["labels"],
        on_invalid=config["data"]["on_invalid"],
    log:
        "results/logs/index_cases.log",
    benchmark:
        "results/benchmarks/index_cases.tsv"
    threads: config["threads"]["per_case"]
    resources:
        **job_resources("light"),
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/index_cases.py"


rule make_folds:
    input:
        cases="results/dataset/cases.tsv",
    output:
        splits="results/dataset/splits_final.json",
        table="results/dataset/folds.tsv",
    params:
        n_folds=config["folds"]["n_folds"],
        seed=config["folds"]["seed"],
        official_fold_file=config["folds"]["official_fold_file"],
    log:
        "results/logs/make_folds.log",
    conda:
        "../../envs/data.yaml"
    localrule: True
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
    conda:
        "../../envs/data.yaml"
    localrule: True
    script:
        "../scripts/summarize_data.py"
