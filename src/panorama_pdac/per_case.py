"""Per-case batch work: parallel, with progress, and incremental.

A Snakemake job that converts or crops every case reruns when its inputs table changes; the work inside
it only redoes the cases whose own inputs or settings changed. Each case's signature (input paths, sizes,
modification times, settings) is kept in a manifest beside the outputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from .errors import PanoramaError
from .io import read_tsv, write_tsv


# The peak memory one worker of a per-case step may reach: tests/test_memory_bound.py holds ingestion, stage-1
# conversion and stage-2 cropping of a 1024x1024x600 float64 label under it (2.7 GB measured).
WORKER_PEAK_MB = 4000


def workers_within(threads: int, mem_mb: int | None, worker_mb: int = WORKER_PEAK_MB) -> int:
    """Workers of a job's per-case pool: its threads, fewer where its memory (`mem_mb`, the job's resource) holds
    fewer workers' peaks, so that a job given many threads and little memory is slowed, not killed in hour three."""
    workers = max(1, threads if mem_mb is None else min(threads, mem_mb // worker_mb))
    if workers < threads:
        print(f"{workers} of {threads} threads work on cases: mem_mb {mem_mb} holds {workers} workers of "
              f"{worker_mb} MB", flush=True)
    return workers


@dataclass
class CaseJob:
    """One case's work: its input and output files by name, and the settings that decide its outputs."""

    case_id: str
    inputs: dict[str, str]
    outputs: dict[str, str]
    args: dict = field(default_factory=dict)


def signature(job: CaseJob) -> str:
    parts = {name: [str(p), os.stat(p).st_size, os.stat(p).st_mtime_ns] for name, p in job.inputs.items()}
    blob = json.dumps([parts, job.args], sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()


def run_per_case(
    jobs: list[CaseJob],
    work: Callable[[CaseJob], dict | None],
    manifest: str | os.PathLike,
    threads: int = 1,
    label: str = "cases",
) -> pd.DataFrame:
    """Run `work(job)` for every job whose signature changed; return the manifest (one row per case,
    plus whatever columns `work` returns). Cases that fail are reported together after the others finish,
    and the manifest keeps the finished ones so a rerun does not redo them."""
    manifest = Path(manifest)
    old = read_tsv(manifest, dtype={"case_id": str}).set_index("case_id") if manifest.is_file() else None
    rows, todo = {}, []
    for job in jobs:
        sig = signature(job)
        if (old is not None and job.case_id in old.index and old.at[job.case_id, "signature"] == sig
                and all(Path(o).is_file() for o in job.outputs.values())):
            rows[job.case_id] = old.loc[job.case_id].to_dict()
        else:
            todo.append((job, sig))
    print(f"{label}: {len(jobs) - len(todo)} up to date, {len(todo)} to do", flush=True)
    start, done, failures = time.time(), 0, []
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        futures = {pool.submit(work, job): (job, sig) for job, sig in todo}
        for fut in as_completed(futures):
            job, sig = futures[fut]
            done += 1
            try:
                rows[job.case_id] = {"signature": sig, **(fut.result() or {})}
            except Exception as e:  # noqa: BLE001 - collected, then raised together below
                failures.append((job.case_id, e))
            if done == len(todo) or done % max(1, len(todo) // 20) == 0:
                rate = (time.time() - start) / done
                print(f"{label}: {done}/{len(todo)} ({rate:.1f} s/case, ~{rate * (len(todo) - done):.0f} s left)",
                      file=sys.stdout, flush=True)
    table = pd.DataFrame([{"case_id": c, **r} for c, r in sorted(rows.items())])
    write_tsv(table, manifest)
    if failures:
        if len(failures) == 1:
            raise failures[0][1]
        raise PanoramaError(f"{len(failures)} {label} failed:\n" + "\n".join(f"  {c}: {e}" for c, e in failures))
    return table
