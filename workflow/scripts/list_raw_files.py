import pandas as pd

from panorama_pdac.io import write_tsv
from panorama_pdac.jobs import run_job
from panorama_pdac.layout import file_stats


def main(smk):
    write_tsv(
        pd.DataFrame(file_stats(smk.params.folders), columns=["path", "bytes", "mtime_ns"]),
        smk.output.manifest,
    )


if __name__ == "__main__":
    run_job(snakemake, main)
