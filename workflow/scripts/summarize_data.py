from panorama_pdac.io import read_json, read_tsv
from panorama_pdac.jobs import run_job
from panorama_pdac.report_tables import write_html_tables


def main(smk):
    write_html_tables(
        "PANORAMA data set",
        [
            ("Ingestion", read_json(smk.input.summary)),
            ("Excluded cases", read_tsv(smk.input.excluded)),
            ("Folds (patient-grouped, PDAC-stratified)", read_tsv(smk.input.folds)),
        ],
        smk.output[0],
    )


if __name__ == "__main__":
    run_job(snakemake, main)
