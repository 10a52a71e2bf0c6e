"""results/provenance.json: every field a reader needs, digests that follow the config and the data's bytes
(not its location), labels checked against the pinned commit, and the record on the report's first page."""

from __future__ import annotations

import copy
import json
import platform
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import jinja2
import numpy as np
import openpyxl
import pytest
import SimpleITK as sitk
import yaml
from docutils.core import publish_parts
from fixtures_data import make_dataset, volume

from panorama_pdac.cases import index_cases, write_case_index
from panorama_pdac.errors import DataError
from panorama_pdac.identity import code_identity, git_state, labels_identity, labels_warnings, sha256_json
from panorama_pdac.provenance import (
    build_provenance,
    cpu_model,
    data_identity,
    labels_record,
    read_ingestion,
    write_provenance,
)

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
# What the issue asks the record to hold; a dotted path per field (its value may be null where unknown).
REQUIRED_FIELDS = [
    "code.project", "code.version", "code.commit", "code.dirty", "code.reason",
    "config.sha256", "config.values",
    *(f"software.packages.{p}.{k}" for p in ("python", "torch", "nnunetv2", "picai_eval", "report-guided-annotation",
                                             "SimpleITK", "snakemake") for k in ("name", "version")),
    "devices.configured", "devices.training.devices", "devices.training.gpus", "devices.training.hosts",
    "devices.training.jobs", "devices.provenance_job.hostname", "devices.provenance_job.platform",
    "devices.provenance_job.cpu",
    "data.cases", "data.sha256", "data.clinical_sheet.sha256",
    "data.labels.commit", "data.labels.dirty", "data.labels.pinned", "data.labels.commit_now",
    "warnings", "written",
]
CPU_DEBUG = {"hostname": "node1", "device": "cpu", "torch_version": "2.13.0", "cudnn_version": "None",
             "network": "PlainConvUNet"}  # nnU-Net writes its settings too
CUDA_DEBUG = {"hostname": "gpu7", "device": "cuda:0", "gpu_name": "NVIDIA RTX A6000", "torch_version": "2.13.0",
              "cudnn_version": 90100}

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _missing(record: dict, fields: list[str]) -> list[str]:
    missing = []
    for field in fields:
        node = record
        for key in field.split("."):
            if not isinstance(node, dict) or key not in node:
                missing.append(field)
                break
            node = node[key]
    return missing


def _ingested(root: Path) -> tuple[Path, Path]:
    """Ingest the raw data set under `root`; returns its cases.tsv and summary.json."""
    data = root / "raw"
    index = index_cases(image_dirs=[str(data / "images")], labels_dir=data / "labels",
                        clinical_path=data / "labels" / "clinical_information.xlsx")
    out = root / "dataset"
    write_case_index(index, out / "cases.tsv", out / "excluded.tsv", out / "summary.json")
    return out / "cases.tsv", out / "summary.json"


def _debug_files(root: Path) -> list[Path]:
    files = []
    for job, debug in (("stage1/fold_0", CPU_DEBUG), ("stage2/ce/fold_0/step1", CUDA_DEBUG)):
        path = root / job / "debug.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(debug))
        files.append(path)
    return files


@pytest.fixture
def record(tmp_path):
    make_dataset(tmp_path / "raw")
    cases, summary = _ingested(tmp_path)
    return build_provenance(code_identity(REPO), CONFIG, sha256_json(CONFIG),
                            labels_identity(tmp_path / "raw" / "labels", ""), cases, summary,
                            _debug_files(tmp_path / "results"))


def test_record_holds_every_required_field(record, tmp_path):
    assert _missing(record, REQUIRED_FIELDS) == []
    assert _missing(record, [*REQUIRED_FIELDS, "devices.training.tpu"]) == ["devices.training.tpu"]  # the check bites
    write_provenance(record, tmp_path / "provenance.json", tmp_path / "provenance.html")
    assert _missing(json.loads((tmp_path / "provenance.json").read_text()), REQUIRED_FIELDS) == []
    assert record["software"]["packages"]["SimpleITK"]["name"].lower() == "simpleitk"
    assert all(p["version"] for p in record["software"]["packages"].values())  # all installed here
    assert record["data"]["cases"] == 4 and record["devices"]["configured"] == CONFIG["device"]


def test_training_machines_are_summarised_from_debug_json(record):
    training = record["devices"]["training"]
    assert training["devices"] == ["cpu", "cuda:0"]
    assert training["gpus"] == ["NVIDIA RTX A6000"]
    assert training["hosts"] == ["gpu7", "node1"]
    jobs = {Path(j["job"]).parts[-1]: j for j in training["jobs"]}
    assert jobs["fold_0"]["gpu_name"] is None and jobs["step1"]["cudnn_version"] == 90100
    assert "network" not in jobs["fold_0"]  # nnU-Net's settings are not machine facts


def test_a_changed_config_value_changes_the_digest():
    changed = copy.deepcopy(CONFIG)
    changed["stage1"]["schedule"]["num_epochs"] += 1
    assert sha256_json(changed) != sha256_json(CONFIG)
    reordered = dict(reversed(list(CONFIG.items())))
    assert sha256_json(reordered) == sha256_json(CONFIG)


def test_data_digest_ignores_the_location_but_not_the_bytes(tmp_path):
    make_dataset(tmp_path / "here" / "raw")
    shutil.copytree(tmp_path / "here" / "raw", tmp_path / "elsewhere" / "raw")
    digests, images = {}, {}
    for place in ("here", "elsewhere"):
        cases, summary = read_ingestion(*_ingested(tmp_path / place))
        digests[place], images[place] = data_identity(cases, summary["clinical_sheet"])["sha256"], cases["image"][0]
    assert images["here"] != images["elsewhere"] and digests["here"] == digests["elsewhere"]

    # The same table saved again (an xlsx file records when and by whom): other bytes, the same data.
    sheet = tmp_path / "elsewhere" / "raw" / "labels" / "clinical_information.xlsx"
    workbook = openpyxl.load_workbook(sheet)
    workbook.properties.creator = "re-saved"
    workbook.save(sheet)
    cases, summary = read_ingestion(*_ingested(tmp_path / "elsewhere"))
    first_bytes = read_ingestion(*_ingested(tmp_path / "here"))[1]["clinical_sheet"]["sha256"]
    assert summary["clinical_sheet"]["sha256"] != first_bytes
    assert data_identity(cases, summary["clinical_sheet"])["sha256"] == digests["here"]

    image = next((tmp_path / "elsewhere" / "raw" / "images").glob("*.nii.gz"))
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(image)))
    sitk.WriteImage(volume(arr + np.ones_like(arr)), str(image), useCompression=True)  # still a valid image
    cases, summary = read_ingestion(*_ingested(tmp_path / "elsewhere"))
    assert data_identity(cases, summary["clinical_sheet"])["sha256"] != digests["here"]


def test_a_case_table_without_digests_is_named(tmp_path):
    make_dataset(tmp_path / "raw")
    cases_tsv, summary_json = _ingested(tmp_path)
    table = cases_tsv.read_text().splitlines()
    cases_tsv.write_text("\n".join("\t".join(line.split("\t")[:10]) for line in table) + "\n")
    with pytest.raises(DataError, match=r"cases\.tsv: no image_bytes.*older version.*index_cases"):
        read_ingestion(cases_tsv, summary_json)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def labels_repo(tmp_path):
    repo = tmp_path / "panorama_labels"
    (repo / "manual_labels").mkdir(parents=True)
    (repo / "manual_labels" / "README").write_text("v1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "labels v1")
    return repo


@needs_git
def test_labels_at_another_commit_than_the_pin_are_warned_about(labels_repo):
    head = _git(labels_repo, "rev-parse", "HEAD")
    assert labels_warnings(labels_identity(labels_repo, head)) == []
    assert labels_warnings(labels_identity(labels_repo, head[:12])) == []  # a short pin
    assert labels_warnings(labels_identity(labels_repo, "")) == []  # no pin
    pinned = "0123456789abcdef0123456789abcdef01234567"
    [warning] = labels_warnings(labels_identity(labels_repo, pinned))
    assert head in warning and pinned in warning and "case by case" in warning

    (labels_repo / "manual_labels" / "100001_00001.nii.gz").write_bytes(b"fixed locally")
    [dirty] = labels_warnings(labels_identity(labels_repo, head))
    assert "uncommitted changes" in dirty


@needs_git
def test_labels_moved_since_ingestion_are_warned_about(labels_repo):
    ingested = git_state(labels_repo, own_repository=True)
    (labels_repo / "manual_labels" / "README").write_text("v2\n")
    _git(labels_repo, "commit", "-q", "-am", "labels v2")
    now = labels_identity(labels_repo, ingested["commit"])
    record, warnings = labels_record(ingested, now)
    assert record["commit"] == ingested["commit"] != record["commit_now"]
    assert len(warnings) == 1 and "moved from commit" in warnings[0]  # the ingested commit is the pinned one


@needs_git
def test_a_folder_inside_another_checkout_is_no_labels_clone(labels_repo):
    state = git_state(labels_repo / "manual_labels", own_repository=True)
    assert state["commit"] is None and "not a git clone" in state["reason"]
    assert git_state(labels_repo / "manual_labels")["commit"] == _git(labels_repo, "rev-parse", "HEAD")
    [warning] = labels_warnings(labels_identity(labels_repo / "manual_labels", "abcdef0"))
    assert "unknown" in warning


def test_no_git_or_no_checkout_is_recorded_not_raised(tmp_path, monkeypatch):
    if shutil.which("git"):
        assert git_state(tmp_path)["reason"].startswith("fatal: not a git repository")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert git_state(tmp_path) == {"commit": None, "dirty": None, "reason": "git is not installed"}
    assert git_state(tmp_path / "absent")["reason"].endswith("is not a folder")


def test_cpu_model_from_proc_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6338\n")
    assert cpu_model(cpuinfo) == "Intel(R) Xeon(R) Gold 6338"
    assert cpu_model(tmp_path / "absent") == (platform.processor() or None)


@pytest.mark.filterwarnings("ignore:Argument \"writer_name\":PendingDeprecationWarning")  # as Snakemake calls it
def test_report_first_page_embeds_the_provenance_table(record, tmp_path):
    html = tmp_path / "provenance.html"
    write_provenance(record, tmp_path / "provenance.json", html)
    # As Snakemake renders workflow/report/workflow.rst: Jinja (config, report items), then docutils.
    template = (REPO / "workflow" / "report" / "workflow.rst").read_text()
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    links = "\n\n.. _provenance.html: javascript:app.showResultInfo('results%2Fprovenance.html')\n"
    rst = env.from_string(template + links).render(snakemake=SimpleNamespace(config=CONFIG),
                                                  files=[SimpleNamespace(target="provenance.html", path=html)])
    page = publish_parts(rst, writer_name="html")["html_body"]
    assert '<div class="provenance">' in page and record["data"]["sha256"] in page
    assert record["config"]["sha256"] in page and "System Message" not in page
    without = env.from_string(template).render(snakemake=SimpleNamespace(config=CONFIG), files=[])
    assert "no provenance record" in publish_parts(without, writer_name="html")["html_body"]
