from panorama_pdac.cases import read_case_table
from panorama_pdac.jobs import run_job
from panorama_pdac.nnunet.env import nnunet_root_of
from panorama_pdac.stage1 import roi_dir_of
from panorama_pdac.stage2 import build_stage2_dataset


def main(smk):
    cases = read_case_table(smk.input.cases)
    roi_dir = roi_dir_of(smk.input.rois) if "rois" in smk.input.keys() else None
    build_stage2_dataset(cases, nnunet_root_of(smk.output.dataset_json), smk.params.source, smk.params.margin_mm_xyz,
                         smk.params.pancreas_labels, roi_dir=roi_dir, threads=smk.threads)


if __name__ == "__main__":
    run_job(snakemake, main)
