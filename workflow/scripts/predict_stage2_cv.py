from pathlib import Path

from panorama_pdac.cases import read_case_table
from panorama_pdac.io import read_json, read_tsv, write_tsv
from panorama_pdac.jobs import run_job
from panorama_pdac.nnunet.env import resolve_device
from panorama_pdac.nnunet.inference import load_predictor
from panorama_pdac.stage2 import predict_cv_fold


def main(smk):
    from panorama_pdac.nnunet.multitask_trainers import Step3JointTrainer

    fold = int(smk.wildcards.fold)
    predictor = load_predictor(Path(smk.input.plans).parent, [smk.input.checkpoint],
                               resolve_device(smk.params.device), mirroring=smk.params.mirroring,
                               trainer_class=Step3JointTrainer)
    cases = read_case_table(smk.input.cases).set_index("case_id")
    val = cases.loc[read_json(smk.input.splits)[fold]["val"]].reset_index()
    rois = read_tsv(smk.input.rois, dtype={"case_id": str})
    table = predict_cv_fold(predictor, val, rois, Path(smk.output.table).parent, fold)
    write_tsv(table, smk.output.table)


if __name__ == "__main__":
    run_job(snakemake, main)
