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
    configure_nnunet_env(nnunet_root_beside(smk.input.plans), smk.threads, smk.params.augmentation_workers,
                         raw=Path(smk.input.case_labels).parents[1])
    from panorama_pdac.nnunet.multitask_trainers import STEP_TRAINERS, MultiTaskOptions

    options = MultiTaskOptions.from_config({**smk.params.options, "case_labels": smk.input.case_labels})
    variant, fold, step = smk.wildcards.variant, int(smk.wildcards.fold), int(smk.wildcards.step)
    seeding = Seeding(job_seed(smk.params.seed, "stage2", variant, fold, step), smk.params.deterministic)
    train_fold(STEP_TRAINERS[step], smk.input.plans, smk.input.dataset_json, smk.params.configuration, fold,
               Path(smk.output.checkpoint).parent, Schedule(**smk.params.schedule), resolve_device(smk.params.device),
               seeding, init_weights=smk.input.get("init"), options=options)


if __name__ == "__main__":
    run_job(snakemake, main)
