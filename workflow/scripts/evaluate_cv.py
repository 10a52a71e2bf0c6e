from panorama_pdac.cases import read_case_table
from panorama_pdac.io import read_tsv, write_json, write_tsv
from panorama_pdac.jobs import run_job
from panorama_pdac.metrics import evaluate_cases, metrics_table
from panorama_pdac.scores import score_dicts


def main(smk):
    scores = read_tsv(smk.input.scores, dtype={"case_id": str})
    labels = read_case_table(smk.input.cases).set_index("case_id")["label"]
    result = evaluate_cases(
        dict(zip(scores.case_id, scores.detection_map)),
        {c: labels[c] for c in scores.case_id},
        score_dicts(scores),
        iou_thresholds=tuple(smk.params.iou_thresholds),
        n_bootstrap=smk.params.n_bootstrap,
        seed=smk.params.seed,
        folds=dict(zip(scores.case_id, scores.fold.astype(int))),
        variant=smk.wildcards.variant,
        threads=smk.threads,
    )
    write_json(result, smk.output.metrics)
    write_tsv(metrics_table(result), smk.output.table)


if __name__ == "__main__":
    run_job(snakemake, main)
