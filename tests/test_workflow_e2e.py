"""The real workflow, end to end, on a tiny synthetic data set (2 folds, both stage-2 variants)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil

import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score
from workflow_runner import REPO, job_counts, snakemake

from panorama_pdac.nnunet.seeding import job_seed

pytestmark = pytest.mark.e2e


@pytest.fixture
def run(workflow_run):
    return workflow_run


def _benchmark(name: str):
    """A script of benchmarks/ as a module (benchmarks/ is no package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_data_and_folds(run):
    cases = pd.read_csv(run / "results/dataset/cases.tsv", sep="\t", dtype={"patient_id": str})
    splits = json.loads((run / "results/dataset/splits_final.json").read_text())
    assert len(splits) == 2
    val = [c for s in splits for c in s["val"]]
    assert sorted(val) == sorted(cases.case_id)
    patient_fold = {p: {i for i, s in enumerate(splits) if set(s["val"]) & set(g.case_id)}
                    for p, g in cases.groupby("patient_id")}
    assert all(len(f) == 1 for f in patient_fold.values())


def test_stage1_outputs(run):
    qa = pd.read_csv(run / "results/stage1/qa.tsv", sep="\t")
    assert len(qa) == len(pd.read_csv(run / "results/dataset/cases.tsv", sep="\t"))
    assert qa["roi_lesion_recall"].dropna().between(0, 1).all()
    for fold in (0, 1):
        assert (run / f"results/stage1/fold_{fold}/checkpoint_final.pth").is_file()
        assert (run / f"results/stage1/fold_{fold}/progress.png").is_file()


def test_every_case_has_cv_outputs_for_both_variants(run):
    cases = pd.read_csv(run / "results/dataset/cases.tsv", sep="\t", dtype={"case_id": str}).set_index("case_id")
    pdac = cases.pdac_voxels.astype(bool)
    for variant in ("ce", "tversky"):
        scores = pd.read_csv(run / f"results/evaluation/{variant}/case_scores.tsv", sep="\t", dtype={"case_id": str})
        assert sorted(scores.case_id) == sorted(cases.index)
        assert scores[["cls_prob", "det_max", "fused"]].apply(lambda c: c.between(0, 1)).all().all()
        # metrics.json (what the report shows) scores these cases, pooled over the folds, against the truth
        metrics = json.loads((run / f"results/evaluation/{variant}/metrics.json").read_text())
        assert {c["case_id"]: c["pdac"] for c in metrics["cases"]} == pdac.to_dict()
        columns = {"cls": "cls_prob", "det": "det_max", "fused": "fused"}
        for score, column in columns.items():
            [pooled] = [r for r in metrics["results"]
                        if r["scope"] == "all" and r["score"] == score and r["iou"] == metrics["iou_thresholds"][0]]
            assert (pooled["n_cases"], pooled["n_pdac"]) == (len(cases), int(pdac.sum()))
            expected = roc_auc_score(pdac[scores.case_id], scores[column])
            assert pooled["metrics"]["auroc"]["value"] == pytest.approx(expected, abs=1e-9)
        # each CV case's seconds hold nnU-Net's sliding window, clocked apart (the overhead benchmark reads both)
        folds = pd.concat([pd.read_csv(t, sep="\t") for t in (run / f"results/stage2/{variant}/cv").glob("fold_*.tsv")])
        assert len(folds) == len(cases)
        assert ((folds.sliding_window_seconds > 0) & (folds.seconds > folds.sliding_window_seconds)).all()


def test_prediction_overhead_benchmark_reads_the_run(run):
    table = _benchmark("prediction_overhead").overhead_table(run / "results")
    n_cases = len(pd.read_csv(run / "results/dataset/cases.tsv", sep="\t"))
    folds, total = table.iloc[:-1], table.iloc[-1]
    assert sorted(zip(folds.variant, folds.fold)) == [(v, f) for v in ("ce", "tversky") for f in ("0", "1")]
    assert total.variant == "all" and total.cases == 2 * n_cases
    # a job holds its cases, and a case its sliding window
    assert (table.job_x >= table.cases_x).all() and (table.cases_x > 1).all()


def test_every_job_logs_its_cpu_time_and_the_utilisation_benchmark_sums_both_records(run):
    table = _benchmark("utilisation").utilisation_table(run / "results", wall_s=10.0, cores=2)
    assert table.attrs["logs_without_line"] == []
    sampled, kernel = table.to_dict("records")
    assert kernel["jobs"] == len(list((run / "results/logs").rglob("*.log"))) > sampled["jobs"] > 0
    # the kernel's record holds every job and, unlike the sampler, the end of each: nnU-Net's worker processes
    # included, it is not below the sampled figure (the e2e jobs are short: sampled every 0.5 s, close to exact)
    assert kernel["cpu_s"] >= 0.95 * sampled["cpu_s"] > 0
    assert table.utilisation.tolist() == [sampled["cpu_s"] / 20.0, kernel["cpu_s"] / 20.0]


def test_every_training_job_is_seeded_from_config_and_its_name(run):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    expected = {f"stage1/fold_{f}": job_seed(config["stage1"]["seed"], "stage1", f) for f in (0, 1)}
    expected |= {f"stage2/{v}/fold_{f}/step{s}": job_seed(config["stage2"]["seed"], "stage2", v, f, s)
                 for v in ("ce", "tversky") for f in (0, 1) for s in (1, 2, 3)}
    recorded = {job: json.loads((run / "results" / job / "training_settings.json").read_text())["seeding"]
                for job in expected}
    assert recorded == {job: {"seed": seed, "deterministic": config["deterministic"]} for job, seed in expected.items()}


def test_variants_are_compared_on_the_same_cases(run):
    n_cases = len(pd.read_csv(run / "results/dataset/cases.tsv", sep="\t"))
    comparison = pd.read_csv(run / "results/evaluation/comparison.tsv", sep="\t")
    assert (comparison[["first", "second"]].drop_duplicates().values.tolist() == [["ce", "tversky"]])
    assert sorted(comparison.metric.value_counts().items()) == [("ap", 2), ("auroc", 3)]
    assert (comparison.n_cases == n_cases).all()


def test_report_says_whether_the_head_learns_on_every_validation_case(run):
    cases = pd.read_csv(run / "results/dataset/cases.tsv", sep="\t")
    table = pd.read_csv(run / "results/evaluation/head_learning.tsv", sep="\t", dtype={"fold": str})
    jobs = table[table.fold != "pooled"]
    assert sorted(zip(jobs.variant, jobs.fold, jobs.step)) == sorted(
        (v, str(f), s) for v in ("ce", "tversky") for f in (0, 1) for s in (1, 2, 3))
    pooled = table[table.fold == "pooled"]
    assert (pooled.n_cases == len(cases)).all() and (pooled.n_pdac == cases.pdac_voxels.sum()).all()
    trained = jobs.step > 1
    assert jobs[trained].cls_loss_last_epoch.notna().all() and jobs[~trained].cls_loss_last_epoch.isna().all()
    assert "after step 3" in (run / "results/evaluation/head_learning.html").read_text()


def test_provenance_names_every_training_job_and_case(run):
    provenance = json.loads((run / "results/provenance.json").read_text())
    training = provenance["devices"]["training"]
    assert len(training["jobs"]) == 2 + 2 * 2 * 3  # stage 1: 2 folds; stage 2: 2 variants x 2 folds x 3 steps
    assert training["devices"] and training["hosts"]
    assert provenance["data"]["cases"] == len(pd.read_csv(run / "results/dataset/cases.tsv", sep="\t"))


def test_rerunning_one_fold_schedules_only_that_fold(run, tmp_path):
    # On a copy: the shared run stays as every other test reads it.
    copy = tmp_path / "run"
    shutil.copytree(run, copy, symlinks=True)
    target = "results/stage1/fold_1/checkpoint_final.pth"
    shared = (run / target).stat().st_mtime_ns
    dry = snakemake(copy, "--dry-run", target, "--forcerun", "train_stage1")
    assert job_counts(dry.stdout) == {"train_stage1": 1}
    other = copy / "results/stage1/fold_0/checkpoint_final.pth"
    before = other.stat().st_mtime_ns
    snakemake(copy, "--cores", "2", target, "--forcerun", "train_stage1")
    assert other.stat().st_mtime_ns == before
    assert (copy / target).stat().st_mtime_ns > before
    assert (run / target).stat().st_mtime_ns == shared




def test_another_fusion_rule_reruns_the_metrics_without_reading_a_detection_map(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy, symlinks=True)
    fusion = tmp_path / "fusion.yaml"
    fusion.write_text("evaluation: {fusion: max}\n")
    rerun = job_counts(snakemake(copy, "--dry-run", "all", overlays=(fusion,)).stdout)
    assert rerun["evaluate_cv"] == 2
    assert not {"postprocess_cv", "match_lesions_cv", "predict_stage2_cv"} & set(rerun)
    # Every map unreadable, its time kept: a metrics job that read one would fail.
    maps = sorted((copy / "results/evaluation").glob("*/detection_maps/*.nii.gz"))
    assert len(maps) == 2 * len(pd.read_csv(run / "results/dataset/cases.tsv", sep="\t"))
    for path in maps:
        times = path.stat()
        path.write_bytes(b"not an image")
        os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))
    variants = ("ce", "tversky")
    snakemake(copy, "--cores", "2", "results/evaluation/comparison.tsv",
              *[f"results/evaluation/{v}/metrics.json" for v in variants], overlays=(fusion,))
    for variant in variants:
        scores = pd.read_csv(copy / f"results/evaluation/{variant}/case_scores.tsv", sep="\t", dtype={"case_id": str})
        assert scores["fused"].tolist() == scores[["cls_prob", "det_max"]].max(axis=1).tolist()
        metrics = json.loads((copy / f"results/evaluation/{variant}/metrics.json").read_text())
        [pooled] = [r for r in metrics["results"]
                    if r["scope"] == "all" and r["score"] == "fused" and r["iou"] == metrics["iou_thresholds"][0]]
        truth = {c["case_id"]: c["pdac"] for c in metrics["cases"]}
        expected = roc_auc_score([truth[c] for c in scores.case_id], scores["fused"])
        assert pooled["metrics"]["auroc"]["value"] == pytest.approx(expected, abs=1e-9)
