from panorama_pdac.comparison import comparison_sections, paired_comparison, read_paired_results
from panorama_pdac.io import write_tsv
from panorama_pdac.jobs import run_job
from panorama_pdac.report_tables import write_html_tables


def main(smk):
    results = read_paired_results(dict(zip(smk.params.variants, smk.input.metrics)))
    table = paired_comparison(results, smk.params.n_bootstrap, smk.params.seed)
    write_tsv(table, smk.output.table)
    write_html_tables(
        "Paired comparison of the stage-2 variants (same cases, difference = second minus first)",
        comparison_sections(table, list(results), smk.params.n_bootstrap, smk.params.seed),
        smk.output.html,
    )


if __name__ == "__main__":
    run_job(snakemake, main)
