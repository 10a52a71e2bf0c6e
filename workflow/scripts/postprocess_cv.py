from pathlib import Path

import pandas as pd

from panorama_pdac.cases import read_case_table
from panorama_pdac.evaluation import build_detection_maps
from panorama_pdac.io import read_tsv, write_tsv
from panorama_pdac.jobs import run_job


def main(smk):
    cv = pd.concat([read_tsv(f, dtype={"case_id": str}) for f in smk.input.cv], ignore_index=True)
    cases = read_case_table(smk.input.cases)
    scores = build_detection_maps(cv, cases, Path(smk.output.scores).parent / "detection_maps", smk.params.settings,
                                  Path(smk.input.stage1_cv[0]).parent, threads=smk.threads, fusion=smk.params.fusion,
                                  min_component_fraction=smk.params.min_component_fraction)
    write_tsv(scores, smk.output.scores)


if __name__ == "__main__":
    run_job(snakemake, main)
