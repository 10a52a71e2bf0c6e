# Export: the trained ensemble as a grand-challenge algorithm (models of both stages, the run's config, the
# package's source at its commit, a Dockerfile). Not part of `all`: snakemake export_algorithm; then README,
# "Submit to grand-challenge".


rule export_algorithm:
    input:
        unpack(ensemble_inputs),
    output:
        algorithm=directory("results/algorithm"),
    log:
        "results/logs/export_algorithm.log",
    localrule: True
    conda:
        "../../envs/predict.yaml"
    resources:
        **job_resources("light"),
    params:
        config=config,
        code=CODE,
        repository=workflow.basedir,
    script:
        "../scripts/export_algorithm.py"
