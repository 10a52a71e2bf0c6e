"""Run the real workflow (this repository's Snakefile) in a scratch directory, as users do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from panorama_pdac.config_check import merged_config_files

REPO = Path(__file__).resolve().parents[1]
E2E_CONFIG = REPO / "tests" / "e2e" / "config.yaml"


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 1800,
              overlays: tuple[Path, ...] = ()) -> subprocess.CompletedProcess:
    """`overlays`: config files loaded after the end-to-end test's (--configfile takes them all at once)."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(REPO / "config" / "config.yaml"), str(E2E_CONFIG), *map(str, overlays), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({out.returncode}):\n{out.stderr[-6000:]}")
    return out


def e2e_config() -> dict:
    """config/config.yaml with the end-to-end test's overrides, merged by Snakemake's own rule for --configfile."""
    return merged_config_files([REPO / "config" / "config.yaml", E2E_CONFIG])


def job_counts(dry_run_output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run, as {rule: count}."""
    lines = dry_run_output.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("Job stats")) + 3
    counts = {}
    for ln in lines[start:]:
        parts = ln.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts
