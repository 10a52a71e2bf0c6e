"""Time the workflow's DAG for a PANORAMA-sized data set (2238 cases, 5 folds, two stage-2 variants) as a
dry run. Run by hand:  .venv/bin/python benchmarks/dag_dry_run.py  (goal: under 15 s on 2 cores).

Rules work per fold and per variant, with per-case work inside jobs, so the DAG does not grow with the
number of cases; the case table is written at full size anyway, so that any input function that starts
reading it would show up here."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sheet = tmp / "clinical_information.csv"
        ids = [f"{100000 + i}_00001" for i in range(2238)]
        pd.DataFrame({"PANORAMA_study_id": ids, "label": ["PDAC" if i % 3 == 0 else "non-PDAC" for i in range(2238)]}
                     ).to_csv(sheet, index=False)
        config = yaml.safe_load((REPO / "config/config.yaml").read_text())
        config["synthetic"]["enabled"] = False
        config["data"].update(images=[str(tmp / "images")], labels=str(tmp), clinical=str(sheet))
        (tmp / "config.yaml").write_text(yaml.safe_dump(config))
        cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp),
               "--configfile", str(tmp / "config.yaml"), "--dry-run", "--quiet", "rules", "all"]
        start = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if out.returncode:
            sys.exit(out.stderr[-3000:])
        jobs = [ln for ln in out.stdout.splitlines() if ln.strip().startswith("total")]
        print(f"dry run of {jobs[0].split()[-1] if jobs else '?'} jobs for 2238 cases, "
              f"{config['folds']['n_folds']} folds, {len(config['stage2']['variants'])} variants: {seconds:.1f} s")


if __name__ == "__main__":
    main()
