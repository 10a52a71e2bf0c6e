from pathlib import Path

from panorama_pdac.jobs import run_job
from panorama_pdac.synthetic import generate_dataset


def main(smk):
    generate_dataset(
        Path(smk.params.out_dir),
        n_patients=smk.params.n_patients,
        seed=smk.params.seed,
        sheet_format=smk.params.sheet_format,
    )


# Guarded: nnU-Net spawns worker processes that re-import this file.
if __name__ == "__main__":
    run_job(snakemake, main)
