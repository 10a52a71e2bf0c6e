"""The workflow through SLURM for real: a local single-node cluster with fake GPUs and profiles/slurm.

One run of the tiny end-to-end workflow answers three questions, each from SLURM's own records (scontrol),
not from our prints: training jobs are SLURM jobs holding a GPU, rerunning one fold submits only that
fold's jobs, and a training job killed mid-run resumes from its last checkpoint when retried. The run goes
through every kind of job (both stages, CV prediction, evaluation) for one variant: the second variant's jobs
are the same rules with another wildcard, and would add a third of the suite's time on CI's two cores.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
import yaml
from workflow_runner import E2E_CONFIG, REPO, job_counts, snakemake

pytestmark = pytest.mark.slurm

PARTITION = "main"
VARIANT = "ce"
TARGETS = ["results/dataset/data_summary.html", "results/stage1/roi_recall.png",
           f"results/evaluation/{VARIANT}/metrics.json"]
KILLED = "rule_train_stage1_wildcards_0"  # the plugin's --comment: rule and wildcard values
# Training long enough to be killed mid-run, and killed epochs away from the next checkpoint write (a kill
# during torch.save would leave a torn file). A GPU requested, as a user's config does on a cluster.
SAVE_EVERY = 4
KILL_AT_EPOCH = SAVE_EVERY  # epochs 0-3 done and checkpointed
# Time limits (minutes, x attempt) far above these jobs' run times here (training <= 2 min, others <= 1 min),
# so that SLURM ends a job that hangs and Snakemake resubmits it, as on a real cluster.
CI_CONFIG = {
    "resources": {"train": {"gpu": 1, "runtime": 10}, "predict": {"runtime": 6}, "light": {"runtime": 4}},
    "stage1": {"schedule": {"num_epochs": 3 * SAVE_EVERY, "save_every": SAVE_EVERY}},
}
# CI only: poll job states every second (the profile waits 40 s for hours-long jobs), squeue since this
# cluster has no accounting database, and few jobs at once on a 2-core machine.
CI_ARGS = ["--jobs", "3", "--slurm-status-command", "squeue",
           "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local cluster from ci/slurm; stopped at the end, but only the daemons this fixture started."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("starting a local SLURM cluster needs root and apt-get (as in CI)")
    env = {**os.environ, "SLURM_CI_STATE": str(tmp_path_factory.mktemp("slurm-state")),
           "SLURM_CI_PARTITION": PARTITION}
    try:
        subprocess.run([REPO / "ci/slurm/start_local_slurm.sh"], env=env, check=True, timeout=600)
        yield
    finally:
        subprocess.run([REPO / "ci/slurm/stop_local_slurm.sh"], env=env, check=False, timeout=120)


def slurm_jobs(workdir: Path) -> list[dict[str, str]]:
    """SLURM's record of every job run from `workdir` (finished ones stay for the cluster's MinJobAge)."""
    out = subprocess.run(["scontrol", "--details", "--oneliner", "show", "job"], capture_output=True, text=True,
                         check=True).stdout
    jobs = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in out.splitlines() if line.strip()]
    return [j for j in jobs if Path(j.get("WorkDir", "")) == workdir]


def cluster_state(workdir: Path) -> str:
    """What a stuck run leaves to look at: SLURM's jobs and node, and the tail of Snakemake's log."""
    queue = subprocess.run(["squeue", "--states=all", "--format=%i %j %T %M %l %k"], capture_output=True,
                           text=True).stdout
    node = subprocess.run(["sinfo", "-N", "--long"], capture_output=True, text=True).stdout
    logs = sorted((workdir / ".snakemake/log").glob("*.log"))
    tail = "\n".join(logs[-1].read_text().splitlines()[-40:]) if logs else "(no Snakemake log)"
    return f"{queue}\n{node}\n{tail}"


def kill_mid_training(workdir: Path, stop: threading.Event, killed: list[str]) -> None:
    """scancel the stage-1 fold-0 training job once it has checkpointed KILL_AT_EPOCH epochs."""
    log = workdir / "results/stage1/fold_0/training_log.txt"
    while not stop.wait(0.5):
        running = [j for j in slurm_jobs(workdir) if j.get("Comment") == KILLED and j["JobState"] == "RUNNING"]
        if running and log.is_file() and f"Epoch {KILL_AT_EPOCH} " in log.read_text():
            subprocess.run(["scancel", running[0]["JobId"]], check=True)
            killed.append(running[0]["JobId"])
            return


@pytest.fixture(scope="module")
def run(cluster, tmp_path_factory):
    """The workflow to TARGETS with the project's profile, its site placeholder filled in as a user would."""
    workdir = tmp_path_factory.mktemp("slurm-e2e")
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    profile["default-resources"]["slurm_partition"] = PARTITION
    (workdir / "profile").mkdir()
    (workdir / "profile/config.yaml").write_text(yaml.safe_dump(profile))
    ci_config = workdir / "ci_config.yaml"
    ci_config.write_text(yaml.safe_dump(CI_CONFIG))
    # --configfile keeps its last occurrence: repeat the runner's files before ours.
    args = ["--configfile", str(REPO / "config/config.yaml"), str(E2E_CONFIG), str(ci_config),
            "--profile", str(workdir / "profile"), *CI_ARGS]

    stop, killed = threading.Event(), []
    killer = threading.Thread(target=kill_mid_training, args=(workdir, stop, killed))
    killer.start()
    try:
        snakemake(workdir, *args, *TARGETS, timeout=1200)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"no result after {e.timeout} s; the cluster's queue and the run's log:\n"
                             f"{cluster_state(workdir)}") from None
    finally:
        stop.set()
        killer.join()
    return workdir, args, killed


def test_workflow_reaches_its_targets_with_training_on_gpus(run):
    workdir, _, _ = run
    jobs = slurm_jobs(workdir)
    done = [j for j in jobs if j["JobState"] == "COMPLETED"]
    training = [j for j in done if j["Comment"].startswith(("rule_train_stage1_", "rule_train_stage2_"))]
    assert len(training) == 2 + 2 * 3  # stage-1 folds; stage-2 folds x steps of one variant
    # requested (TresPerJob) and allocated: JOB_GRES names the node's fake GPU type, which no rule asks for
    assert all(j["TresPerJob"] == "gres:gpu:1" and j["JOB_GRES"] == "gpu:fakegpu:1" for j in training)
    # time limit from config, x attempt: the killed job's retry is the only second attempt
    limit = CI_CONFIG["resources"]["train"]["runtime"]
    first, second = f"00:{limit:02d}:00", f"00:{2 * limit:02d}:00"
    assert sorted(j["TimeLimit"] for j in training) == [first] * (len(training) - 1) + [second]
    others = [j for j in done if j not in training]
    assert {j["Comment"].split("_wildcards")[0] for j in others} >= {"rule_index_cases", "rule_evaluate_cv"}
    assert all(j["JOB_GRES"] == "(null)" for j in others)
    # Light rules run in the Snakemake process, never as SLURM jobs.
    local = ("rule_generate_synthetic_data", "rule_make_folds", "rule_plot_", "rule_summarize_")
    assert not any(j["Comment"].startswith(local) for j in jobs)
    assert all((workdir / target).is_file() for target in TARGETS)


def test_rerunning_one_fold_of_one_variant_submits_only_its_steps(run):
    workdir, args, _ = run
    dry = snakemake(workdir, *args, "--dry-run", f"results/stage2/{VARIANT}/fold_1/step3/checkpoint_final.pth",
                    "--forcerun", "train_stage2")
    assert job_counts(dry.stdout) == {"train_stage2": 3}
    assert dry.stdout.count(f"wildcards: variant={VARIANT}, fold=1, step=") == 3


def test_killed_training_job_resumes_from_its_checkpoint(run):
    workdir, _, killed = run
    assert killed, "the stage-1 fold-0 training job finished before it could be killed"
    attempts = [j for j in slurm_jobs(workdir) if j["Comment"] == KILLED]
    assert [(j["JobId"], j["JobState"]) for j in attempts[:1]] == [(killed[0], "CANCELLED")]
    assert [j["JobState"] for j in attempts[1:]] == ["COMPLETED"]
    # The retry's own training log starts where the killed job's last checkpoint left off and goes on.
    log = (workdir / "results/stage1/fold_0/training_log.txt").read_text()
    assert "Resuming from" in log
    epochs = [int(e) for e in re.findall(r": Epoch (\d+) ", log)]
    assert epochs[0] > 0 and epochs[0] % SAVE_EVERY == 0
    assert epochs == list(range(epochs[0], CI_CONFIG["stage1"]["schedule"]["num_epochs"]))
