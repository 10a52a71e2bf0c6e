from pathlib import Path

from panorama_pdac.jobs import run_job
from panorama_pdac.synthetic import generate_dataset


def main(smk):
    generate_dataset(
        Path(smk.output.clinical).parents[1],  # <out>/labels/clinical_information.*
        n_patients=smk.params.n_patients,
        seed=smk.params.seed,
        sheet_format=smk.params.sheet_format,
        threads=smk.threads,
    )


if __name__ == "__main__":
    run_job(snakemake, main)
