from pathlib import Path

from panorama_pdac.io import read_tsv, write_json, write_tsv
from panorama_pdac.jobs import run_job
from panorama_pdac.stage1 import localise_cases, qa_summary


def main(smk):
    cases = read_tsv(smk.input.cases, dtype={"case_id": str})
    qa = localise_cases(cases, Path(smk.params.cv_dir), Path(smk.params.raw_dir), Path(smk.params.roi_dir),
                        smk.params.margin_mm_xyz, threads=smk.threads)
    write_tsv(qa, smk.output.qa)
    rois = qa[["case_id", "roi_fallback"]].assign(roi=[str(Path(smk.params.roi_dir) / f"{c}.json") for c in qa.case_id])
    write_tsv(rois, smk.output.rois)
    write_json(qa_summary(qa), smk.output.summary)


# Guarded: nnU-Net spawns worker processes that re-import this file.
if __name__ == "__main__":
    run_job(snakemake, main)
