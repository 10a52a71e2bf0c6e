from panorama_pdac.cases import data_summary_sections
from panorama_pdac.io import read_json, read_tsv
from panorama_pdac.jobs import run_job
from panorama_pdac.report_tables import write_html_tables


def main(smk):
    write_html_tables(
        "PANORAMA data set",
        [
            *data_summary_sections(
                read_json(smk.input.summary),
                read_tsv(smk.input.excluded, dtype=str),
                smk.input.excluded,
            ),
            ("Folds (patient-grouped, PDAC-stratified)", read_tsv(smk.input.folds)),
        ],
        smk.output[0],
    )


if __name__ == "__main__":
    run_job(snakemake, main)
