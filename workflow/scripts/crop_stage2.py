from panorama_pdac.cases import read_case_table
from panorama_pdac.io import read_tsv
from panorama_pdac.jobs import per_case_workers, run_job
from panorama_pdac.nnunet.env import nnunet_root_of
from panorama_pdac.stage2 import build_stage2_dataset


def main(smk):
    cases = read_case_table(smk.input.cases)
    rois = read_tsv(smk.input.rois, dtype={"case_id": str}) if "rois" in smk.input.keys() else None
    build_stage2_dataset(cases, nnunet_root_of(smk.output.dataset_json), smk.params.source, smk.params.margin_mm_xyz,
                         smk.params.pancreas_labels, rois=rois, threads=per_case_workers(smk))


if __name__ == "__main__":
    run_job(snakemake, main)
