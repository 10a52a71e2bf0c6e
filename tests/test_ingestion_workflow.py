"""Ingestion as a user meets it, through the real workflow (Snakemake, the job script, run_job) on tiny data
sets: what the terminal says, that no traceback reaches it, and that new or replaced raw files rerun it.
Each run stops after ingestion (a few seconds)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pandas as pd
import SimpleITK as sitk
import yaml
from fixtures_data import ct_array, make_dataset, make_planted_dataset, volume, write_case, write_sheet
from workflow_runner import snakemake

SUMMARY = "results/dataset/data_summary.html"


def _user_config(workdir: Path, args: dict, on_invalid: str = "fail") -> Path:
    """A config overlay pointing the workflow at a user's data folders instead of the demo data."""
    overlay = workdir / "user.yaml"
    overlay.write_text(yaml.safe_dump({
        "synthetic": {"enabled": False},
        "data": {"images": args["image_dirs"], "labels": args["labels_dir"], "clinical": args["clinical_path"],
                 "on_invalid": on_invalid},
    }))
    return overlay


def _to_run(dry_run: str) -> set[str]:
    """The rules a dry run would run."""
    return {line.split()[1].rstrip(":") for line in dry_run.splitlines()
            if line.startswith(("rule ", "localrule ", "checkpoint "))}


def test_planted_defects_in_skip_mode_are_listed_on_the_terminal(tmp_path):
    args, expected = make_planted_dataset(tmp_path / "raw")
    workdir = tmp_path / "run"
    run = snakemake(workdir, "--cores", "1", SUMMARY, overlays=(_user_config(tmp_path, args, "skip"),))
    terminal = run.stdout + run.stderr
    assert "Traceback" not in terminal
    assert "rule index_cases: Ingestion (data.on_invalid: skip): 6 cases used" in terminal
    assert f"{len(expected['excluded'])} cases excluded, 2 files without a case id unusable (14 problems, " \
           "every one in results/dataset/excluded.tsv)" in terminal
    for case_id, file in expected["excluded"].items():
        assert f"  {case_id}: {file}: " in terminal
    for file in expected["unparsed"]:
        assert f"  (no case id): {file}: " in terminal
    assert "2 labels without an image (their image batch not downloaded?): 100031_00001, 100044_00001" in terminal
    assert "1 case with files but no clinical sheet row: 100043_00001" in terminal
    # excluded.tsv and the report's data page agree with the terminal
    excluded = pd.read_csv(workdir / "results/dataset/excluded.tsv", sep="\t", dtype=str)
    assert set(excluded["file"]) == set(expected["excluded"].values()) | set(expected["unparsed"])
    page = (workdir / SUMMARY).read_text()
    assert all(f"<td>{f}</td>" in page for f in excluded["file"])
    assert all(c in page for c in expected["labels_without_image"] + expected["not_in_sheet"])


def test_an_empty_sheet_stops_the_run_naming_it(tmp_path):
    args = make_dataset(tmp_path / "raw")
    write_sheet(Path(args["clinical_path"]), {})
    run = snakemake(tmp_path / "run", "--cores", "1", "--until", "index_cases", check=False,
                    overlays=(_user_config(tmp_path, args, "skip"),))
    assert run.returncode != 0
    assert f"ERROR in rule index_cases: {args['clinical_path']}: the clinical sheet has a header but no rows" \
           in run.stderr
    assert "Traceback" not in run.stdout + run.stderr


def test_a_new_or_replaced_raw_file_reruns_the_ingestion_and_only_that(tmp_path):
    args = make_dataset(tmp_path / "raw", extra_sheet_rows={"100040_00001": False})
    workdir, overlay = tmp_path / "run", _user_config(tmp_path, args)
    snakemake(workdir, "--cores", "1", "--until", "index_cases", overlays=(overlay,))

    def would_run() -> set[str]:
        return _to_run(snakemake(workdir, "-n", "--until", "index_cases", overlays=(overlay,)).stdout)

    assert would_run() == set()
    (tmp_path / "raw" / "images" / ".DS_Store").write_text("x")  # not data
    assert would_run() == set()
    # a new case: image, label and (already there) its sheet row
    write_case(tmp_path / "raw", "100040_00001", pdac=False)
    assert would_run() == {"list_raw_files", "index_cases"}
    snakemake(workdir, "--cores", "1", "--until", "index_cases", overlays=(overlay,))
    assert "100040_00001" in (workdir / "results/dataset/cases.tsv").read_text()
    # a file replaced by an older one, as unpacked from an archive: Snakemake's newer-than test misses it
    image = tmp_path / "raw" / "images" / "100040_00001_0000.nii.gz"
    before = image.stat()
    sitk.WriteImage(volume(ct_array(seed=1)), str(image), useCompression=True)
    os.utime(image, ns=(before.st_atime_ns, before.st_mtime_ns - 10**9))
    assert would_run() == {"list_raw_files", "index_cases"}


def test_the_demo_data_are_listed_once_made(tmp_path):
    # The demo's files exist only after its checkpoint ran: a run must record what the next run sees, or that one
    # would redo the ingestion and everything after it. Also when the demo data are made again (here: deleted)
    # while the manifest is there, so that Snakemake reads the raw files' signature before they exist.
    workdir = tmp_path / "run"
    first = snakemake(workdir, "--cores", "2", "--until", "index_cases")
    assert re.search(r"rule index_cases: Ingestion \(data.on_invalid: fail\): \d+ cases used", first.stderr)
    assert _to_run(snakemake(workdir, "-n", "--until", "index_cases").stdout) == set()
    shutil.rmtree(workdir / "results" / "synthetic")
    snakemake(workdir, "--cores", "2", "--until", "index_cases")
    assert _to_run(snakemake(workdir, "-n", "--until", "index_cases").stdout) == set()
