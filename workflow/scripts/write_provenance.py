from panorama_pdac.jobs import run_job
from panorama_pdac.provenance import build_provenance, write_provenance


def main(smk):
    record = build_provenance(
        smk.params.code,
        smk.config,
        smk.params.config_sha256,
        smk.params.labels,
        smk.input.cases,
        smk.input.summary,
        [*smk.input.stage1_debug, *smk.input.stage2_debug],
    )
    for warning in record["warnings"]:
        print(f"WARNING: {warning}")
    write_provenance(record, smk.output.json, smk.output.html)


if __name__ == "__main__":
    run_job(snakemake, main)
