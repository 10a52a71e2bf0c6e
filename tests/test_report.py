"""The report a user opens: built by `snakemake --report`, rendered by a real browser, and its numbers
equal to the metrics JSON they come from."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pandas as pd
import pytest

from panorama_pdac.metrics import SCORE_NAMES

pytestmark = pytest.mark.e2e


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe:
        return exe
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("Chromium is not installed, and installing it needs root and apt-get")
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
    if subprocess.run(install, capture_output=True).returncode:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, check=True)
        subprocess.run(install, capture_output=True, check=True)
    return shutil.which("chromium")


def _rendered_dom(html, tmp_path) -> str:
    # As root and offline: no sandbox, no background connections that the closed network would refuse.
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=15000", "--dump-dom", html.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True).stdout


def test_report_renders_in_a_browser_with_its_categories_and_provenance(workflow_report, tmp_path):
    dom = _rendered_dom(workflow_report, tmp_path)
    # What the page shows: the rendered elements' text. The report's own data and code sit in <script>
    # elements, which hold every name and number whether or not anything rendered.
    shown = re.sub(r"<(script|style)\b[^>]*>.*?</\1>", " ", dom, flags=re.S | re.I)
    text = re.sub(r"<[^>]+>", " ", shown)
    for expected in ("Evaluation", "Stage 1", "Data", "Provenance"):
        assert expected in text, f"category {expected} not rendered"
    # The first page shows the provenance table.
    provenance = json.loads((workflow_report.parent / "provenance.json").read_text())
    assert provenance["config"]["sha256"] in text and provenance["data"]["sha256"] in text


def test_table4_numbers_are_the_metrics_json_numbers(workflow_run):
    evaluation = workflow_run / "results" / "evaluation"
    table = pd.read_csv(evaluation / "table4.tsv", sep="\t")
    html = (evaluation / "table4.html").read_text()
    checked = 0
    for row in table.itertuples():
        metrics = json.loads((evaluation / row.variant / "metrics.json").read_text())
        score = {name: key for key, name in SCORE_NAMES.items()}[row.case_score]
        pooled = _pooled(metrics, score)
        for name in ("auroc", "ap"):
            value = pooled[name]["value"]
            assert str(getattr(row, name)) == str(value) or float(getattr(row, name)) == pytest.approx(value)
            if not isinstance(value, str):
                assert f"{value:.4g}" in html
                checked += 1
    assert checked > 0


def _pooled(metrics: dict, score: str) -> dict:
    """The pooled (all out-of-fold cases) metrics at IoU 0.10 of one case score."""
    return next(r for r in metrics["results"]
                if r["score"] == score and r["scope"] == "all" and r["iou"] == pytest.approx(0.10))["metrics"]
