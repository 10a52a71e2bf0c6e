from pathlib import Path

from panorama_pdac.io import read_json
from panorama_pdac.jobs import run_job
from panorama_pdac.nnunet.env import configure_nnunet_env
from panorama_pdac.nnunet.planning import plan_and_preprocess
from panorama_pdac.stage1 import copy_model_files
from panorama_pdac.stage2 import DATASET_ID


def main(smk):
    configure_nnunet_env(smk.params.nnunet_root, threads=smk.threads, raw=smk.params.raw_root)
    plans = plan_and_preprocess(DATASET_ID, smk.params.planner, smk.params.configuration, smk.params.overrides,
                                read_json(smk.input.splits), num_processes=smk.threads)
    copy_model_files(plans, Path(smk.input.dataset_json), Path(smk.output.plans).parent)


# Guarded: nnU-Net spawns worker processes that re-import this file.
if __name__ == "__main__":
    run_job(snakemake, main)
