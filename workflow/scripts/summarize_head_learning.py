from panorama_pdac.head_learning import head_learning_summary, head_learning_table
from panorama_pdac.io import read_json, write_tsv
from panorama_pdac.jobs import run_job
from panorama_pdac.report_tables import write_html_tables


def main(smk):
    validations = {tuple(job): read_json(f) for job, f in zip(smk.params.jobs, smk.input)}
    table = head_learning_table(validations)
    write_tsv(table, smk.output.table)
    summary = head_learning_summary(table)
    write_html_tables("Does the classification head learn?",
                      [("Pooled case-level AUROC of the head on the folds' validation cases", " | ".join(summary)),
                       ("Per job", table)], smk.output.html)
    return "pooled case-level AUROC of the classification head: " + " | ".join(summary)


if __name__ == "__main__":
    run_job(snakemake, main)
