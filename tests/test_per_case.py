import os

import pytest

from panorama_pdac.errors import PanoramaError
from panorama_pdac.per_case import WORKER_PEAK_MB, CaseJob, run_per_case, workers_within


def _jobs(tmp_path, n=3):
    jobs = []
    for i in range(n):
        src = tmp_path / f"in{i}.txt"
        src.write_text(str(i))
        jobs.append(CaseJob(f"case{i}", {"text": str(src)}, {"copy": str(tmp_path / f"out{i}.txt")}, {"a": 1}))
    return jobs


def _copy(job):
    with open(job.outputs["copy"], "w") as f:
        f.write(open(job.inputs["text"]).read())
    return {"size": os.path.getsize(job.inputs["text"])}


def test_only_changed_or_missing_cases_are_redone(tmp_path):
    jobs, manifest, calls = _jobs(tmp_path), tmp_path / "manifest.tsv", []

    def work(job):
        calls.append(job.case_id)
        return _copy(job)

    table = run_per_case(jobs, work, manifest, threads=2)
    assert sorted(calls) == ["case0", "case1", "case2"] and list(table["size"]) == [1, 1, 1]
    calls.clear()
    (tmp_path / "in1.txt").write_text("changed")
    os.remove(jobs[2].outputs["copy"])
    run_per_case(jobs, work, manifest)
    assert sorted(calls) == ["case1", "case2"]
    calls.clear()
    for job in jobs:
        job.args["a"] = 2
    run_per_case(jobs, work, manifest)  # a changed setting redoes everything
    assert len(calls) == 3


def test_failures_are_reported_together_and_finished_cases_kept(tmp_path):
    jobs, manifest = _jobs(tmp_path), tmp_path / "manifest.tsv"

    def work(job):
        if job.case_id != "case0":
            raise ValueError(f"bad {job.case_id}")
        return _copy(job)

    with pytest.raises(PanoramaError, match=r"2 cases failed:\n.*case1: bad case1"):
        run_per_case(jobs, work, manifest)
    calls = []
    with pytest.raises(PanoramaError):
        run_per_case(jobs, lambda j: calls.append(j.case_id) or work(j), manifest)
    assert "case0" not in calls  # kept from the first run


W = WORKER_PEAK_MB


@pytest.mark.parametrize(("threads", "mem_mb", "workers"), [
    (8, None, 8),  # no memory given: the threads
    (8, 32 * W, 8),  # memory for more workers than threads
    (8, 3 * W + W // 2, 3),  # memory for 3.5 workers' peaks
    (2, W - 1, 1),  # never fewer than one
    (1, 4 * W, 1),
])
def test_a_pool_has_the_job_s_threads_unless_its_memory_holds_fewer_workers(threads, mem_mb, workers, capsys):
    assert workers_within(threads, mem_mb) == workers
    assert ("workers of" in capsys.readouterr().out) == (workers < threads)  # a lowered pool says so
