from pathlib import Path

from panorama_pdac.io import read_json
from panorama_pdac.jobs import run_job
from panorama_pdac.nnunet.datasets import copy_model_files
from panorama_pdac.nnunet.env import configure_nnunet_env, nnunet_root_beside
from panorama_pdac.nnunet.planning import plan_and_preprocess
from panorama_pdac.stage2 import DATASET_ID


def main(smk):
    # Each variant plans and preprocesses into its own folder from the shared raw crops, so that parallel
    # jobs never write the same preprocessed files.
    configure_nnunet_env(nnunet_root_beside(smk.output.plans), threads=smk.threads,
                         raw=Path(smk.input.dataset_json).parents[1])
    plans = plan_and_preprocess(DATASET_ID, smk.params.planner, smk.params.configuration, smk.params.overrides,
                                read_json(smk.input.splits), num_processes=smk.threads,
                                classification_head=smk.params.head)
    copy_model_files(plans, Path(smk.input.dataset_json), Path(smk.output.plans).parent)


if __name__ == "__main__":
    run_job(snakemake, main)
