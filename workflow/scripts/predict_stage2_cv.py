from panorama_pdac.io import read_json, read_tsv, write_tsv
from panorama_pdac.jobs import run_job
from panorama_pdac.nnunet.env import resolve_device
from panorama_pdac.nnunet.inference import load_predictor
from panorama_pdac.stage2 import predict_cv_fold


def main(smk):
    from panorama_pdac.nnunet.multitask_trainers import Step3JointTrainer

    fold = int(smk.wildcards.fold)
    predictor = load_predictor(smk.params.model_dir, [smk.input.checkpoint], resolve_device(smk.params.device),
                               mirroring=smk.params.mirroring, trainer_class=Step3JointTrainer)
    cases = read_tsv(smk.input.cases, dtype={"case_id": str}).set_index("case_id")
    val = cases.loc[read_json(smk.input.splits)[fold]["val"]].reset_index()
    write_tsv(predict_cv_fold(predictor, val, smk.params.roi_dir, smk.params.out_dir, fold), smk.output.table)


# Guarded: nnU-Net spawns worker processes that re-import this file.
if __name__ == "__main__":
    run_job(snakemake, main)
