from panorama_pdac.cases import read_case_table
from panorama_pdac.figures import plot_qa_montage, qa_panels
from panorama_pdac.io import read_tsv
from panorama_pdac.jobs import run_job


def main(smk):
    scores = read_tsv(smk.input.scores, dtype={"case_id": str})
    cases = read_case_table(smk.input.cases)
    plot_qa_montage(qa_panels(scores, cases, threshold=0.5), smk.output[0])


if __name__ == "__main__":
    run_job(snakemake, main)
