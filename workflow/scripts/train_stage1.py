from pathlib import Path

from panorama_pdac.jobs import run_job
from panorama_pdac.nnunet.env import (
    configure_nnunet_env,
    nnunet_root_beside,
    resolve_device,
)
from panorama_pdac.nnunet.seeding import Seeding, job_seed
from panorama_pdac.nnunet.training import Schedule, train_fold


def main(smk):
    configure_nnunet_env(nnunet_root_beside(smk.input.plans), smk.threads, smk.params.augmentation_workers)
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    fold = int(smk.wildcards.fold)
    seeding = Seeding(job_seed(smk.params.seed, "stage1", fold), smk.params.deterministic)
    train_fold(nnUNetTrainer, smk.input.plans, smk.input.dataset_json, smk.params.configuration, fold,
               Path(smk.output.checkpoint).parent, Schedule(**smk.params.schedule), resolve_device(smk.params.device),
               seeding)


if __name__ == "__main__":
    run_job(snakemake, main)
