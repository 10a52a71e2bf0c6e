from panorama_pdac.io import read_tsv, write_tsv
from panorama_pdac.jobs import run_job
from panorama_pdac.splits import fold_table, import_official_folds, make_folds, write_splits


def main(smk):
    cases = read_tsv(smk.input.cases, dtype={"case_id": str, "patient_id": str})
    if smk.params.official_fold_file:
        splits, warnings = import_official_folds(smk.params.official_fold_file, cases)
        for w in warnings:
            print(f"WARNING: {w}")
    else:
        splits = make_folds(cases, n_folds=smk.params.n_folds, seed=smk.params.seed)
    write_splits(splits, smk.output.splits)
    write_tsv(fold_table(cases, splits), smk.output.table)


# Guarded: nnU-Net spawns worker processes that re-import this file.
if __name__ == "__main__":
    run_job(snakemake, main)
