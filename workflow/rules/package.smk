# Our package on the path, before anything else: the Snakefile's config check and the rules use it.
import os
import sys
from pathlib import Path

# Scripts import our package from src/ whether or not it was pip-installed (e.g. in --sdm conda envs).
# Every job, local or on a cluster node, re-reads this file, so the setting reaches them all.
SRC = str(Path(workflow.basedir) / "src")
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
)
# This process too: the config check, and the rules compute the code's and the labels' identity with the
# package (provenance.smk).
sys.path.insert(0, SRC)

from panorama_pdac.config_check import check_workflow_config
