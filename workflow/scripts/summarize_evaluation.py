from panorama_pdac.figures import plot_froc, plot_pr, plot_roc
from panorama_pdac.io import read_json, write_tsv
from panorama_pdac.jobs import run_job
from panorama_pdac.metrics import curve_sets, metrics_table, table4
from panorama_pdac.report_tables import write_html_tables


def main(smk):
    results = {v: read_json(f) for v, f in zip(smk.params.variants, smk.input.metrics)}
    # evaluation.iou_thresholds, as evaluate_cv recorded them; the first (the official 0.10) leads
    thresholds = next(iter(results.values()))["iou_thresholds"]
    tables = {iou: table4(results, iou=iou) for iou in thresholds}
    write_tsv(tables[thresholds[0]], smk.output.table4_tsv)
    write_html_tables(
        "Table 4: classification head, detection map and fused score (cross-validation)",
        [(f"Hit criterion IoU >= {iou:.2f}", t) for iou, t in tables.items()]
        + [("Published values", "The published columns are the winner's figures on the hidden validation set "
                                "(100 cases, Table 4 of the paper), not a cross-validation: compare with care.")],
        smk.output.table4,
    )
    write_html_tables("All metrics", [(v, metrics_table(r)) for v, r in results.items()], smk.output.metrics)
    curves = curve_sets(results, iou=thresholds[0])
    plot_roc(curves["roc"], smk.output.roc)
    plot_pr(curves["pr"], smk.output.pr)
    plot_froc(curves["froc"], smk.output.froc)


if __name__ == "__main__":
    run_job(snakemake, main)
