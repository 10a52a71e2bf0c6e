import signal
import subprocess
import sys
import textwrap
import time


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
    assert log.read_text() == "checked 3/3 cases\n3 cases used\n1 case excluded\n"


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
