from pathlib import Path

import pandas as pd

from panorama_pdac.cases import read_case_table
from panorama_pdac.detection import build_detection_maps
from panorama_pdac.io import read_tsv, write_tsv
from panorama_pdac.jobs import per_case_workers, run_job


def main(smk):
    cv = pd.concat([read_tsv(f, dtype={"case_id": str}) for f in smk.input.cv], ignore_index=True)
    cases = read_case_table(smk.input.cases)
    rois = read_tsv(smk.input.rois, dtype={"case_id": str})
    detections = build_detection_maps(cv, cases, rois, Path(smk.output.detections).parent / "detection_maps",
                                      smk.params.settings, threads=per_case_workers(smk))
    write_tsv(detections, smk.output.detections)


if __name__ == "__main__":
    run_job(snakemake, main)
