from panorama_pdac.cases import ingestion_report, index_cases, write_case_index
from panorama_pdac.jobs import per_case_workers, run_job


def main(smk):
    index = index_cases(
        smk.params.images,
        smk.params.labels,
        smk.input.clinical,
        on_invalid=smk.params.on_invalid,
        threads=per_case_workers(smk),
    )
    write_case_index(index, smk.output.cases, smk.output.excluded, smk.output.summary)
    return ingestion_report(index.summary, index.excluded, smk.output.excluded)


if __name__ == "__main__":
    run_job(snakemake, main)
