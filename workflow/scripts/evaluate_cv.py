from panorama_pdac.io import read_json, read_tsv, write_json, write_tsv
from panorama_pdac.jobs import run_job
from panorama_pdac.metrics import evaluate_lesion_results, metrics_table
from panorama_pdac.scores import score_dicts, with_fused


def main(smk):
    scores = with_fused(read_tsv(smk.input.detections, dtype={"case_id": str}), smk.params.fusion)
    result = evaluate_lesion_results(
        read_json(smk.input.lesions),
        score_dicts(scores),
        n_bootstrap=smk.params.n_bootstrap,
        seed=smk.params.seed,
        folds=dict(zip(scores.case_id, scores.fold.astype(int))),
        variant=smk.wildcards.variant,
    )
    write_tsv(scores, smk.output.scores)
    write_json(result, smk.output.metrics)
    write_tsv(metrics_table(result), smk.output.table)


if __name__ == "__main__":
    run_job(snakemake, main)
