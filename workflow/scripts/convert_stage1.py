from panorama_pdac.cases import read_case_table
from panorama_pdac.jobs import per_case_workers, run_job
from panorama_pdac.nnunet.env import nnunet_root_of
from panorama_pdac.stage1 import build_stage1_dataset


def main(smk):
    cases = read_case_table(smk.input.cases)
    build_stage1_dataset(cases, nnunet_root_of(smk.output.dataset_json), smk.params.spacing_xyz,
                         smk.params.pancreas_labels, threads=per_case_workers(smk))


if __name__ == "__main__":
    run_job(snakemake, main)
