"""Stage-2 CV prediction against nnU-Net's own sliding window, from a finished workflow run. Run by hand:

    .venv/bin/python benchmarks/prediction_overhead.py results

Per variant and fold: the cases, the job's wall seconds (Snakemake's benchmark: start-up and model loading
included), the cases' seconds from reading the image to writing the map, and the sliding window's seconds within
them (both recorded per case in results/stage2/<variant>/cv/fold_<k>.tsv). cases_x and job_x are the ratios to
the sliding window (goal: at most 1.3x); start-up is paid once per job, so job_x falls towards cases_x with the
number of cases a fold holds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

TIMING_COLUMNS = ("seconds", "sliding_window_seconds")


def overhead_table(results: Path) -> pd.DataFrame:
    """One row per variant and fold, and a last row ("all") summing them."""
    rows = []
    for table in sorted(results.glob("stage2/*/cv/fold_*.tsv")):
        variant, fold = table.parents[1].name, table.stem.removeprefix("fold_")
        cases = pd.read_csv(table, sep="\t")
        missing = [c for c in TIMING_COLUMNS if c not in cases]
        if missing:
            raise SystemExit(f"{table}: no column {', '.join(missing)}: written before predictions were timed; "
                             "rerun predict_stage2_cv")
        job = results / f"benchmarks/stage2/predict_stage2_cv_{variant}_fold_{fold}.tsv"
        rows.append({"variant": variant, "fold": fold, "cases": len(cases),
                     "job_s": pd.read_csv(job, sep="\t")["s"].iloc[0],
                     "case_s": cases.seconds.sum(), "sliding_window_s": cases.sliding_window_seconds.sum()})
    if not rows:
        raise SystemExit(f"{results}: no stage2/<variant>/cv/fold_<k>.tsv: not a finished workflow run's results")
    table = pd.DataFrame(rows)
    total = table[["cases", "job_s", "case_s", "sliding_window_s"]].sum()
    table = pd.concat([table, pd.DataFrame([{"variant": "all", "fold": "", **total}])], ignore_index=True)
    table["cases_x"] = table.case_s / table.sliding_window_s
    table["job_x"] = table.job_s / table.sliding_window_s
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a workflow's results folder")
    table = overhead_table(parser.parse_args().results)
    table.to_string(sys.stdout, index=False, float_format="{:.2f}".format)
    print()


if __name__ == "__main__":
    main()
