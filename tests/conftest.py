"""Shared fixtures: one run of the real workflow on the tiny synthetic data set, reused by every test that
needs trained models or workflow outputs (it takes minutes)."""

from __future__ import annotations

import pytest
from workflow_runner import snakemake


@pytest.fixture(scope="session")
def workflow_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("e2e")
    snakemake(workdir, "--cores", "2", "all")
    return workdir


@pytest.fixture(scope="session")
def workflow_report(workflow_run):
    snakemake(workflow_run, "--report", "results/report.html")
    return workflow_run / "results" / "report.html"
