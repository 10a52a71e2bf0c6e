# Predict: the trained two-stage ensemble on a folder of new CT scans, in the grand-challenge output format.
# Not part of `all`: run it as  snakemake predict --config predict_input=DIR


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
        mirroring=config["predict"]["mirroring"],
        settings=predict_settings(config),
    script:
        "../scripts/predict_cases.py"
