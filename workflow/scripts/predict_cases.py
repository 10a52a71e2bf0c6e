from pathlib import Path

from panorama_pdac.io import write_text, write_tsv
from panorama_pdac.jobs import run_job
from panorama_pdac.nnunet.env import resolve_device
from panorama_pdac.predict import (
    PredictSettings,
    TwoStageEnsemble,
    predict_files,
    predictions_table,
)


def main(smk):
    models = TwoStageEnsemble.load(Path(smk.input.stage1_plans).parent, smk.input.stage1_models,
                                   Path(smk.input.stage2_plans).parent, smk.input.stage2_models,
                                   resolve_device(smk.params.device), smk.params.mirroring, threads=smk.threads)
    done, failures = predict_files(smk.input.images, Path(smk.output.predictions).parent, models,
                                   PredictSettings(**smk.params.settings))
    write_text(predictions_table(done).to_csv(index=False), smk.output.predictions)
    write_tsv(failures, smk.output.failures)


if __name__ == "__main__":
    run_job(snakemake, main)
