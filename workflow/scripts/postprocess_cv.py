import pandas as pd

from panorama_pdac.evaluation import build_detection_maps
from panorama_pdac.io import read_tsv, write_tsv
from panorama_pdac.jobs import run_job


def main(smk):
    cv = pd.concat([read_tsv(f, dtype={"case_id": str}) for f in smk.input.cv], ignore_index=True)
    cases = read_tsv(smk.input.cases, dtype={"case_id": str})
    scores = build_detection_maps(cv, cases, smk.params.out_dir, smk.params.settings, smk.params.stage1_cv_dir,
                                  threads=smk.threads, fusion=smk.params.fusion)
    write_tsv(scores, smk.output.scores)


# Guarded: nnU-Net spawns worker processes that re-import this file.
if __name__ == "__main__":
    run_job(snakemake, main)
