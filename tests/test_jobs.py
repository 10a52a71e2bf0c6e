import signal
import subprocess
import sys
import textwrap
import time

from panorama_pdac.jobs import RESOURCES, logged_cpu_time


def test_a_data_error_is_one_sentence_on_the_terminal_and_the_traceback_goes_to_the_log(tmp_path):
    log = tmp_path / "job.log"
    script = textwrap.dedent(f"""
        from types import SimpleNamespace
        from panorama_pdac.errors import DataError
        from panorama_pdac.jobs import run_job

        def main(smk):
            print("working")
            raise DataError("/data/x.nii.gz", "label values outside 0-6", "100000_00001")

        run_job(SimpleNamespace(log=[{str(log)!r}], rule="index_cases"), main)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.strip() == ("ERROR in rule index_cases: case 100000_00001: /data/x.nii.gz: label values "
                                  f"outside 0-6 (log: {log})")
    assert "working" in log.read_text() and "label values outside 0-6" in log.read_text()


def test_what_main_returns_reaches_the_terminal_and_the_log(tmp_path):
    log = tmp_path / "job.log"
    script = textwrap.dedent(f"""
        from types import SimpleNamespace
        from panorama_pdac.jobs import run_job

        def main(smk):
            print("checked 3/3 cases")
            return "3 cases used\\n1 case excluded"

        run_job(SimpleNamespace(log=[{str(log)!r}], rule="index_cases"), main)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stderr == f"rule index_cases: 3 cases used\n1 case excluded\n(log: {log})\n"
    *told, resources = log.read_text().splitlines()
    assert told == ["checked 3/3 cases", "3 cases used", "1 case excluded"]
    assert resources.startswith(RESOURCES)


def test_the_log_ends_with_the_cpu_time_of_the_job_and_of_the_children_it_waited_for(tmp_path):
    log = tmp_path / "job.log"
    script = textwrap.dedent(f"""
        import subprocess, sys, time
        from types import SimpleNamespace
        from panorama_pdac.jobs import run_job

        def burn(seconds):
            end = time.process_time() + seconds
            while time.process_time() < end:
                pass

        def main(smk):
            burn(0.5)
            subprocess.run([sys.executable, "-c", "import time\\nend = time.process_time() + 1.5\\n"
                            "while time.process_time() < end: pass"], check=True)

        run_job(SimpleNamespace(log=[{str(log)!r}], rule="train_stage1"), main)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    cpu = logged_cpu_time(log)
    # the parent's 0.5 s (and its interpreter's start) plus the child's 1.5 s; a CPU-bound job and its
    # child take no more than their own CPU (2 s) and the interpreters' starts
    assert 2.0 <= cpu < 6.0


def test_logged_cpu_time_reads_the_last_resources_line(tmp_path):
    log = tmp_path / "job.log"
    log.write_text(f"{RESOURCES} cpu_time 1.50 s, peak rss 10 MiB\nrerun\n{RESOURCES} cpu_time 2.25 s, peak\n")
    assert logged_cpu_time(log) == 2.25
    log.write_text("killed before the end\n")
    assert logged_cpu_time(log) is None


def test_a_job_stopped_by_sigterm_leaves_every_threads_stack_in_its_log(tmp_path):
    log = tmp_path / "job.log"
    script = textwrap.dedent(f"""
        import threading, time
        from types import SimpleNamespace
        from panorama_pdac.jobs import run_job

        def waiting_worker():
            time.sleep(60)

        def main(smk):
            threading.Thread(target=waiting_worker, daemon=True).start()
            print("started", flush=True)
            time.sleep(60)

        run_job(SimpleNamespace(log=[{str(log)!r}], rule="evaluate_cv"), main)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(300):  # up to 30 s for the interpreter to start and main to run
        if log.is_file() and "started" in log.read_text():
            break
        time.sleep(0.1)
    proc.terminate()
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM  # the dump does not swallow the signal
    text = log.read_text()
    assert "started" in text and "waiting_worker" in text and "in main" in text
