import subprocess
import sys
import textwrap


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
