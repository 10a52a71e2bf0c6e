from pathlib import Path

from panorama_pdac.io import read_json
from panorama_pdac.jobs import run_job
from panorama_pdac.nnunet.datasets import copy_model_files
from panorama_pdac.nnunet.env import configure_nnunet_env, nnunet_root_of
from panorama_pdac.nnunet.planning import plan_and_preprocess
from panorama_pdac.stage1 import DATASET_ID


def main(smk):
    configure_nnunet_env(nnunet_root_of(smk.input.dataset_json), threads=smk.threads)
    plans = plan_and_preprocess(DATASET_ID, smk.params.planner, smk.params.configuration, smk.params.overrides,
                                read_json(smk.input.splits), num_processes=smk.threads)
    copy_model_files(plans, Path(smk.input.dataset_json), Path(smk.output.plans).parent)


if __name__ == "__main__":
    run_job(snakemake, main)
