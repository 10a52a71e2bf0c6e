"""Which code, configuration, software, machines and data made a run's results.

results/provenance.json holds the record for programs, results/provenance.html the same for readers (the
report shows it on its first page). The code's commit, the config digest and the labels clone's state are
taken when the Snakefile is parsed (identity.py) and arrive here as values; the rest is read here: the
training jobs' machines from nnU-Net's debug.json files, the data's identity from the ingestion's outputs,
the software from this job's environment.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import socket
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from .cases import CASE_COLUMNS, read_case_table
from .errors import DataError
from .identity import labels_warnings, sha256_json
from .io import read_json, write_json
from .report_tables import write_html_fragment

PACKAGES = ["torch", "nnunetv2", "picai_eval", "report-guided-annotation", "SimpleITK", "snakemake"]
# What nnU-Net's trainer records about its machine in debug.json when training starts; the rest of that file
# is its settings, which training_settings.json and the plans already hold.
MACHINE_KEYS = ["hostname", "device", "gpu_name", "torch_version", "cudnn_version"]
INGESTION_SUMMARY_KEYS = {"clinical_sheet", "labels_git"}


def software_versions() -> dict:
    """Python and the packages the results depend on, as installed in this job's environment (the name as
    installed, e.g. simpleitk for SimpleITK); name and version None for one the environment lacks."""
    packages = {"python": {"name": platform.python_implementation(), "version": platform.python_version()}}
    for package in PACKAGES:
        try:
            dist = importlib.metadata.distribution(package)
            packages[package] = {"name": dist.metadata["Name"], "version": dist.version}
        except importlib.metadata.PackageNotFoundError:
            packages[package] = {"name": None, "version": None}
    return {"environment": sys.prefix, "packages": packages}


def cpu_model(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str | None:
    """The CPU's model name from /proc/cpuinfo (Linux); elsewhere what platform knows, None if nothing."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def this_machine() -> dict:
    return {"hostname": socket.gethostname(), "platform": platform.platform(), "cpu": cpu_model(),
            "cpus": os.cpu_count()}


def training_machines(debug_files: Sequence[str | os.PathLike]) -> dict:
    """Where each training job ran, as nnU-Net recorded it when the job started (a resumed job: where it
    resumed), and the devices, GPU models and hosts over all of them."""
    jobs = []
    for path in debug_files:
        debug = read_json(path)
        jobs.append({"job": str(Path(path).parent), **{k: debug.get(k) for k in MACHINE_KEYS}})

    def used(key: str) -> list:
        return sorted({str(job[key]) for job in jobs if job[key] is not None})

    return {"devices": used("device"), "gpus": used("gpu_name"), "hosts": used("hostname"), "jobs": jobs}


def read_ingestion(cases_tsv, summary_json) -> tuple[pd.DataFrame, dict]:
    """The ingestion's case table and summary, with the identities it records."""
    cases, summary = read_case_table(cases_tsv), read_json(summary_json)
    for path, missing in ((cases_tsv, set(CASE_COLUMNS) - set(cases.columns)),
                          (summary_json, INGESTION_SUMMARY_KEYS - set(summary))):
        if missing:
            raise DataError(path, f"no {', '.join(sorted(missing))}: written by an older version of the "
                                  "ingestion; rerun it (snakemake --forcerun index_cases)")
    return cases, summary


def data_identity(cases: pd.DataFrame, clinical_sheet: dict) -> dict:
    """The ingested data (read_ingestion): the number of cases and one digest of every case's image and label
    files (path within the data folders, size, sha256) and of the clinical sheet's content as read (not its
    bytes: an xlsx file records when it was saved).

    Paths are taken within the data folders as ingestion finds the files (an image directly in one of the
    image folders, a label in manual_labels/ or automatic_labels/ of the labels folder): the same data in
    another place gives the same digest, one changed byte another."""
    files = [[c.case_id, Path(c.image).name, int(c.image_bytes), c.image_sha256,
              "/".join(Path(c.label).parts[-2:]), int(c.label_bytes), c.label_sha256]
             for c in cases.sort_values("case_id").itertuples()]
    return {"cases": len(cases),
            "sha256": sha256_json({"files": files, "clinical_sheet": clinical_sheet["content_sha256"]}),
            "clinical_sheet": clinical_sheet}


def labels_record(ingested: dict, now: dict) -> tuple[dict, list[str]]:
    """The labels clone as ingestion read it (`ingested`: its git state then) beside its state now and the
    pinned commit (`now`: identity.labels_identity), with what a reader must be warned of."""
    record = {"folder": now["folder"], "commit": ingested["commit"], "dirty": ingested["dirty"],
              "reason": ingested["reason"], "pinned": now["pinned"], "commit_now": now["commit"]}
    warnings = labels_warnings({**ingested, "folder": now["folder"], "pinned": now["pinned"]})
    if None not in (ingested["commit"], now["commit"]) and ingested["commit"] != now["commit"]:
        warnings.append(f"the labels at {now['folder']} moved from commit {ingested['commit']} (read by the "
                        f"ingestion) to {now['commit']}: these results use the former "
                        "(snakemake --forcerun index_cases reads the new ones)")
    return record, warnings


def build_provenance(code: dict, config: dict, config_sha256: str, labels_now: dict, cases_tsv, summary_json,
                     debug_files: Sequence[str | os.PathLike]) -> dict:
    """The provenance record. `code`: identity.code_identity of the workflow; `config`: the merged config
    (every --configfile and --config applied) and `config_sha256` its identity.sha256_json; `labels_now`:
    identity.labels_identity of the labels folder; the ingestion's cases.tsv and summary.json; the training
    jobs' debug.json files."""
    cases, summary = read_ingestion(cases_tsv, summary_json)
    data = data_identity(cases, summary["clinical_sheet"])
    data["labels"], warnings = labels_record(summary["labels_git"], labels_now)
    if code["dirty"]:
        warnings.append("the workflow's checkout has uncommitted changes: its commit does not hold all the "
                        "code that ran")
    return {
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "warnings": warnings,
        "code": code,
        "config": {"sha256": config_sha256, "values": config},
        "software": software_versions(),
        "devices": {"configured": config["device"], "training": training_machines(debug_files),
                    "provenance_job": this_machine()},
        "data": data,
    }


def _known(value, reason: str | None) -> str:
    return str(value) if value is not None else f"unknown ({reason})"


def _sections(record: dict) -> list[tuple[str, object]]:
    """The record as the tables a reader sees, most asked-for first."""
    code, data, devices = record["code"], record["data"], record["devices"]
    labels, training, here = data["labels"], devices["training"], devices["provenance_job"]
    software = record["software"]
    return [
        ("Warnings", pd.DataFrame({"warning": record["warnings"]})),
        ("Code and configuration", {
            code["project"]: code["version"],
            "workflow commit": _known(code["commit"], code["reason"]),
            "uncommitted changes": _known(code["dirty"], code["reason"]),
            "config sha256 (merged, canonical JSON)": record["config"]["sha256"],
            "written": record["written"],
        }),
        ("Data", {
            "cases": data["cases"],
            "data sha256 (image and label files, clinical sheet)": data["sha256"],
            "clinical sheet sha256": data["clinical_sheet"]["sha256"],
            "labels commit (at ingestion)": _known(labels["commit"], labels["reason"]),
            "labels commit pinned (data.labels_commit)": labels["pinned"] or "none",
            "labels commit now": labels["commit_now"] or "unknown",
        }),
        ("Machines", {
            "configured device": devices["configured"],
            "training devices": training["devices"],
            "training GPU models": training["gpus"] or "none",
            "training hosts": training["hosts"],
            "this job's host": here["hostname"],
            "this job's platform": here["platform"],
            "this job's CPU": f"{here['cpu']} ({here['cpus']} logical CPUs)",
        }),
        (f"Software ({software['environment']})",
         {k: f"{v['version']} ({v['name']})" if v["version"] else "not installed"
          for k, v in software["packages"].items()}),
        ("Training jobs (nnU-Net's debug.json)", pd.DataFrame(training["jobs"])),
    ]


def write_provenance(record: dict, json_path, html_path) -> None:
    write_json(record, json_path)
    write_html_fragment(_sections(record), html_path, css_class="provenance")
