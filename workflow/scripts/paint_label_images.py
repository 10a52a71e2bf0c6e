from pathlib import Path

from panorama_pdac.jobs import run_job
from panorama_pdac.painted import paint_labels_folder


def main(smk):
    paint_labels_folder(smk.params.labels, Path(smk.output.manifest).with_suffix(""), seed=smk.params.seed, threads=smk.threads,
                        manifest=smk.output.manifest)


if __name__ == "__main__":
    run_job(snakemake, main)
