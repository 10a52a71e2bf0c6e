from panorama_pdac.cases import read_case_table
from panorama_pdac.io import write_tsv
from panorama_pdac.jobs import run_job
from panorama_pdac.splits import (
    fold_table,
    import_official_folds,
    make_folds,
    write_splits,
)


def main(smk):
    cases = read_case_table(smk.input.cases)
    if smk.params.official_fold_file:
        splits, warnings = import_official_folds(smk.params.official_fold_file, cases)
        for w in warnings:
            print(f"WARNING: {w}")
    else:
        splits = make_folds(cases, n_folds=smk.params.n_folds, seed=smk.params.seed)
    write_splits(splits, smk.output.splits)
    write_tsv(fold_table(cases, splits), smk.output.table)


if __name__ == "__main__":
    run_job(snakemake, main)
