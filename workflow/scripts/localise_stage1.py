from pathlib import Path

from panorama_pdac.cases import read_case_table
from panorama_pdac.io import write_json, write_tsv
from panorama_pdac.jobs import run_job
from panorama_pdac.stage1 import localise_cases, qa_summary, roi_dir_of


def main(smk):
    cases = read_case_table(smk.input.cases)
    roi_dir = roi_dir_of(smk.output.rois)
    qa = localise_cases(cases, Path(smk.input.cv[0]).parent, Path(smk.input.raw_dataset).parent, roi_dir,
                        smk.params.margin_mm_xyz, smk.params.min_component_fraction, threads=smk.threads)
    write_tsv(qa, smk.output.qa)
    rois = qa[["case_id", "roi_fallback"]].assign(roi=[str(roi_dir / f"{c}.json") for c in qa.case_id])
    write_tsv(rois, smk.output.rois)
    write_json(qa_summary(qa), smk.output.summary)


if __name__ == "__main__":
    run_job(snakemake, main)
