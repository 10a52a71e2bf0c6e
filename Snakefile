# The reproducible PANORAMA pipeline: raw CT + labels -> two-stage nnU-Net -> cross-validated evaluation.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/stage1.smk"
include: "workflow/rules/stage2.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/provenance.smk"


rule all:
    default_target: True
    input:
        all_targets(),
