"""How busy a finished workflow run kept its cores: jobs' CPU time over wall time x cores. Run by hand:

    start=$(date +%s); make demo; end=$(date +%s)
    .venv/bin/python benchmarks/utilisation.py results --cores 2 --wall $((end - start))

Two sums of the jobs' CPU time: Snakemake's `cpu_time` over results/benchmarks/ (sampled every 0.5 s for a job's
first 15 s, then every 30 s: the last up to 30 s of each job go uncounted, and rules without a benchmark are
missing), and the kernel's own accounting that every job writes as the last line of its log (`jobs.resources_line`,
results/logs/). Jobs whose log holds no such line (written before it existed, or killed) are counted apart.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from panorama_pdac.jobs import logged_cpu_time


def utilisation_table(results: Path, wall_s: float, cores: int) -> pd.DataFrame:
    """One row per source of CPU time: jobs counted, their CPU seconds, and the share of wall x cores."""
    benchmarks = sorted(results.glob("benchmarks/**/*.tsv"))
    logs = sorted(results.glob("logs/**/*.log"))
    if not benchmarks and not logs:
        raise SystemExit(f"{results}: no benchmarks/**/*.tsv nor logs/**/*.log: not a workflow run's results")
    logged = [logged_cpu_time(log) for log in logs]
    rows = [
        {"source": "Snakemake cpu_time (results/benchmarks)", "jobs": len(benchmarks),
         "cpu_s": sum(pd.read_csv(b, sep="\t")["cpu_time"].sum() for b in benchmarks)},
        {"source": "kernel accounting (results/logs)", "jobs": sum(c is not None for c in logged),
         "cpu_s": sum(c for c in logged if c is not None)},
    ]
    table = pd.DataFrame(rows)
    table["utilisation"] = table.cpu_s / (wall_s * cores)
    table.attrs["logs_without_line"] = [str(log) for log, c in zip(logs, logged) if c is None]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a workflow's results folder")
    parser.add_argument("--wall", type=float, required=True, help="the run's wall time, seconds")
    parser.add_argument("--cores", type=int, required=True, help="the cores it was given (--cores)")
    args = parser.parse_args()
    table = utilisation_table(args.results, args.wall, args.cores)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    missing = table.attrs["logs_without_line"]
    if missing:
        print(f"{len(missing)} logs without a resources line (not counted): " + ", ".join(missing[:5]))


if __name__ == "__main__":
    main()
