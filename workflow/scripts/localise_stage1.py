from pathlib import Path

import pandas as pd

from panorama_pdac.cases import read_case_table
from panorama_pdac.io import read_tsv, write_json, write_tsv
from panorama_pdac.jobs import per_case_workers, run_job
from panorama_pdac.stage1 import localise_cases, qa_summary


def main(smk):
    cases = read_case_table(smk.input.cases)
    cv = pd.concat([read_tsv(f, dtype={"case_id": str}) for f in smk.input.cv], ignore_index=True)
    rois, qa = localise_cases(cases, dict(zip(cv.case_id, cv.prediction)), Path(smk.input.raw_dataset).parent,
                              Path(smk.output.rois).parent / "roi", **smk.params.localisation,
                              threads=per_case_workers(smk))
    write_tsv(qa, smk.output.qa)
    write_tsv(rois, smk.output.rois)
    write_json(qa_summary(qa), smk.output.summary)


if __name__ == "__main__":
    run_job(snakemake, main)
