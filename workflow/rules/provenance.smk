# Provenance: which code, configuration, software, machines and data made the results.
from panorama_pdac.identity import (
    code_identity,
    labels_identity,
    labels_warnings,
    sha256_json,
)
from snakemake.logging import logger

# Taken when the workflow is parsed: as params of write_provenance, a new commit, config value or labels
# checkout reruns it. Labels that are not the pinned commit are warned about on every run.
CODE = code_identity(workflow.basedir)
LABELS = labels_identity(raw_data()["labels"], config["data"]["labels_commit"])
for warning in labels_warnings(LABELS):
    logger.warning(f"WARNING: {warning}")


rule write_provenance:
    input:
        cases="results/dataset/cases.tsv",
        summary="results/dataset/summary.json",
        stage1_debug=expand("results/stage1/fold_{fold}/debug.json", fold=FOLDS),
        stage2_debug=expand(
            "results/stage2/{variant}/fold_{fold}/step{step}/debug.json",
            variant=VARIANTS,
            fold=FOLDS,
            step=STEPS,
        ),
    output:
        json="results/provenance.json",
        html=report(
            "results/provenance.html",
            caption="../report/provenance.rst",
            category="Provenance",
            labels={"table": "provenance"},
        ),
    log:
        "results/logs/write_provenance.log",
    localrule: True
    conda:
        "../../envs/nnunet.yaml"
    params:
        code=CODE,
        config_sha256=sha256_json(config),
        labels=LABELS,
    script:
        "../scripts/write_provenance.py"
