from pathlib import Path

from panorama_pdac.algorithm import export_algorithm
from panorama_pdac.jobs import run_job


def main(smk):
    return export_algorithm(smk.output.algorithm, (Path(smk.input.stage1_plans).parent, smk.input.stage1_models),
                            (Path(smk.input.stage2_plans).parent, smk.input.stage2_models), smk.params.config,
                            smk.params.code, smk.params.repository)


if __name__ == "__main__":
    run_job(snakemake, main)
