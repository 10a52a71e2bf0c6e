"""What every workflow script shares: its log file and how it reports a failure.

Scripts stay thin: `run_job(snakemake, main)` sends everything the job prints (ours, nnU-Net's, C
libraries') to the rule's log, and turns a PanoramaError into one sentence on the terminal instead of a
traceback. What a person must read after a job that succeeded (the ingestion's summary: cases used and
excluded) is what `main` returns: a text that goes to the log and to the terminal, Snakemake's console for a
local job (a cluster job's own output file under SLURM). A job stopped by SIGTERM (SLURM at its time limit,
scancel, Snakemake shutting down) first writes the stack of every thread to its log, so that a job that hangs
says where. The log's last line is the job's CPU time and peak memory by the kernel's own accounting
(`resources_line`): Snakemake's benchmark samples them, every 30 s after a job's first 15 s, so it misses up to the
last 30 s of each job and any peak between samples.
Scripts call it under `if __name__ == "__main__":`, because nnU-Net spawns worker processes that re-import
the script file, where Snakemake's `snakemake` object does not exist.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import re
import resource
import signal
import sys
import traceback
from pathlib import Path
from typing import Callable

from .errors import PanoramaError
from .per_case import workers_within


@contextlib.contextmanager
def _fd_redirect(log_path: str):
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "a", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield os.fdopen(os.dup(saved[1]), "w", buffering=1)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


# How the last line of a job's log starts (`resources_line`); benchmarks/utilisation.py reads it back.
RESOURCES = "job resources (kernel accounting):"


def resources_line() -> str:
    """This process's CPU time (user + system, all its threads) with that of the children it has waited for, and
    peak memory, from getrusage: exact where a sampler misses short jobs and the ends of long ones."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    # Linux reports ru_maxrss in KiB; of the children, the largest single one.
    return (f"{RESOURCES} cpu_time {cpu:.2f} s, peak rss {own.ru_maxrss / 1024:.0f} MiB "
            f"(largest child {children.ru_maxrss / 1024:.0f} MiB)")


def logged_cpu_time(log: str | os.PathLike) -> float | None:
    """The CPU seconds of the last `resources_line` in a job's log; None where the job never wrote one."""
    found = re.findall(rf"^{re.escape(RESOURCES)} cpu_time ([0-9.]+) s", Path(log).read_text(errors="replace"), re.M)
    return float(found[-1]) if found else None


def run_job(snakemake, main: Callable[..., str | None]) -> None:
    """Run `main(snakemake)` with output to the rule's first log file (if any); a text it returns is printed
    to the log and to the terminal."""
    log = snakemake.log[0] if len(snakemake.log) else None
    ctx = _fd_redirect(log) if log else contextlib.nullcontext(sys.stderr)
    # Writes to whatever fd 2 is when the signal comes: the log during main, the job's stderr after it
    # (a hang at interpreter exit). chain=True then lets SIGTERM end the process as before.
    faulthandler.register(signal.SIGTERM, file=sys.stderr, all_threads=True, chain=True)
    with ctx as terminal:
        try:
            told = main(snakemake)
            if told:
                if log:
                    print(told, flush=True)
                print(f"rule {snakemake.rule}: {told}" + (f"\n(log: {log})" if log else ""), file=terminal)
                terminal.flush()
        except PanoramaError as e:
            print(f"ERROR: {e}", file=sys.stderr)
            print(f"ERROR in rule {snakemake.rule}: {e}" + (f" (log: {log})" if log else ""), file=terminal)
            terminal.flush()
            sys.exit(1)
        except BaseException:
            traceback.print_exc()
            raise
        finally:
            if log:
                print(resources_line(), flush=True)


def per_case_workers(snakemake) -> int:
    """The workers of a per-case job's pool: its threads, bounded by its memory (per_case.workers_within)."""
    return workers_within(snakemake.threads, getattr(snakemake.resources, "mem_mb", None))
