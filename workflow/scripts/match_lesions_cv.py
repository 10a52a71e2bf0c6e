from panorama_pdac.cases import read_case_table
from panorama_pdac.io import read_tsv, write_json
from panorama_pdac.jobs import per_case_workers, run_job
from panorama_pdac.metrics import case_lesion_results


def main(smk):
    detections = read_tsv(smk.input.detections, dtype={"case_id": str})
    labels = read_case_table(smk.input.cases).set_index("case_id")["label"]
    lesions = case_lesion_results(dict(zip(detections.case_id, detections.detection_map)),
                                  {c: labels[c] for c in detections.case_id},
                                  iou_thresholds=smk.params.iou_thresholds, threads=per_case_workers(smk))
    write_json(lesions, smk.output.lesions)


if __name__ == "__main__":
    run_job(snakemake, main)
