from pathlib import Path

import pandas as pd

from panorama_pdac.io import read_json, write_tsv
from panorama_pdac.jobs import run_job
from panorama_pdac.nnunet.env import (
    configure_nnunet_env,
    nnunet_root_of,
    resolve_device,
)
from panorama_pdac.nnunet.inference import load_predictor
from panorama_pdac.stage1 import predict_validation_cases


def main(smk):
    fold = int(smk.wildcards.fold)
    configure_nnunet_env(nnunet_root_of(smk.input.raw_dataset), smk.threads)
    predictor = load_predictor(Path(smk.input.plans).parent, [smk.input.checkpoint],
                               resolve_device(smk.params.device), mirroring=smk.params.mirroring)
    cases = read_json(smk.input.splits)[fold]["val"]
    files = predict_validation_cases(predictor, cases, Path(smk.input.raw_dataset).parent,
                                     Path(smk.output.table).parent)
    write_tsv(pd.DataFrame({"case_id": cases, "fold": fold, "prediction": [str(f) for f in files]}), smk.output.table)


if __name__ == "__main__":
    run_job(snakemake, main)
