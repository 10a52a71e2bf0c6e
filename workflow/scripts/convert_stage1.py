from panorama_pdac.io import read_tsv
from panorama_pdac.jobs import run_job
from panorama_pdac.stage1 import build_stage1_dataset


def main(smk):
    cases = read_tsv(smk.input.cases, dtype={"case_id": str})
    build_stage1_dataset(cases, smk.params.nnunet_root, smk.params.spacing_xyz, smk.params.pancreas_labels,
                         threads=smk.threads)


# Guarded: nnU-Net spawns worker processes that re-import this file.
if __name__ == "__main__":
    run_job(snakemake, main)
