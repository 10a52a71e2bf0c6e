# The reproducible PANORAMA pipeline: raw CT + labels -> two-stage nnU-Net -> cross-validated evaluation.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/package.smk"


# The schema is the whole contract: an unknown key (with the nearest valid name), a wrong value, or a
# painted-labels or predict_input folder that is not there stops here, before any job, naming the key and the
# file that set it.
check_workflow_config(workflow, config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/stage1.smk"
include: "workflow/rules/stage2.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/provenance.smk"
include: "workflow/rules/export.smk"


rule all:
    default_target: True
    input:
        all_targets(),
