from panorama_pdac.figures import plot_roi_recall
from panorama_pdac.io import read_json, read_tsv
from panorama_pdac.jobs import run_job
from panorama_pdac.report_tables import write_html_tables


def main(smk):
    qa = read_tsv(smk.input.qa, dtype={"case_id": str})
    plot_roi_recall(qa, smk.output.figure)
    write_html_tables("Stage-1 localisation (cross-validated)",
                      [("Summary", read_json(smk.input.summary)), ("Per case", qa)], smk.output.table)


if __name__ == "__main__":
    run_job(snakemake, main)
