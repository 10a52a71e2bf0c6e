"""The install lock (requirements.lock) and the check `make install` ends with (tools/check_venv.py)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"

_spec = importlib.util.spec_from_file_location("check_venv", REPO / "tools" / "check_venv.py")
check_venv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_venv)


def _entries() -> list[tuple[Requirement, int]]:
    """Each requirement of the lock with its number of hashes."""
    blocks = re.split(r"\n(?=[^\s#])", LOCK.read_text())
    entries = []
    for block in blocks:
        first = block.splitlines()[0]
        if first.startswith("#"):
            continue
        entries.append((Requirement(first.rstrip(" \\")), block.count("--hash=sha256:")))
    return entries


def test_every_locked_package_is_an_exact_version_with_hashes():
    entries = _entries()
    assert len(entries) > 100
    for req, hashes in entries:
        assert len(req.specifier) == 1 and next(iter(req.specifier)).operator == "==", req
        assert hashes >= 1, req


def test_the_torch_build_is_left_to_torch_index():
    names = {req.name for req, _ in _entries()}
    assert not {n for n in names if n in ("torch", "torchvision", "triton") or n.startswith(("nvidia-", "cuda-"))}
    # torch's pure-Python requirements are locked like everything else
    assert {"sympy", "networkx", "jinja2", "filelock", "fsspec", "setuptools"} <= names


def test_the_install_tools_and_test_extra_are_locked():
    names = {req.name for req, _ in _entries()}
    assert {"pip", "setuptools", "wheel", "pytest", "snakefmt"} <= names
    assert "pytest-benchmark" not in names


def test_picai_eval_is_not_a_broken_release():
    (version,) = [next(iter(r.specifier)).version for r, _ in _entries() if r.name == "picai-eval"]
    assert Version(version) >= Version("1.4.10")  # 1.4.8-1.4.9: IoU == threshold assertion, zero-candidate crash


def _dist(site: Path, name: str, version: str, *requires: str) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    info.joinpath("METADATA").write_text("\n".join(lines + [f"Requires-Dist: {r}" for r in requires]) + "\n")


@pytest.fixture
def site(tmp_path):
    """A GPU-like environment: torch needs cuda-toolkit[cublas], whose nvidia packages are extra-only."""
    site = tmp_path / "site"
    _dist(site, "torch", "2.13.0+cu130", "filelock", 'cuda-toolkit[cublas]==13.0.3; python_version >= "3"',
          'optree>=0.13; extra == "optree"')
    _dist(site, "torchvision", "0.28.0+cu130", "torch==2.13.0", "numpy")
    _dist(site, "cuda-toolkit", "13.0.3", 'nvidia-cublas==13.1; extra == "cublas"', 'nvidia-cufft; extra == "cufft"')
    _dist(site, "nvidia-cublas", "13.1")
    _dist(site, "filelock", "4.3.1")
    _dist(site, "numpy", "2.4.6")
    _dist(site, "panorama-pdac", "0.1.0")
    return site


def _lock(tmp_path, text):
    lock = tmp_path / "requirements.lock"
    lock.write_text(text)
    return check_venv.locked_pins(lock)


def test_environment_of_the_lock_and_a_gpu_torch_build_matches(site, tmp_path):
    pins = _lock(tmp_path, "# header\nfilelock==4.3.1 \\\n    --hash=sha256:00\n    # via torch\nnumpy==2.4.6 \\\n"
                           "    --hash=sha256:11\ncolorama==0.4.6 ; python_version < '3' \\\n    --hash=sha256:22\n")
    assert set(pins) == {"filelock", "numpy"}  # colorama's marker does not apply
    dists = check_venv.installed([str(site)])
    assert check_venv.torch_build(dists, pins) == {"torch", "torchvision", "cuda-toolkit", "nvidia-cublas"}
    assert check_venv.differences(pins, dists) == ([], [])


def test_other_versions_missing_and_unlocked_packages_are_reported(site, tmp_path):
    _dist(site, "pytest-benchmark", "5.3.1")  # left by an older lock
    _dist(site, "nvidia-cufft", "12.0")  # torch's cuda-toolkit does not ask for the cufft extra
    pins = _lock(tmp_path, "filelock==4.3.0 \\\n    --hash=sha256:00\nnumpy==2.4.6 \\\n    --hash=sha256:11\n"
                           "pyyaml==6.0.4 \\\n    --hash=sha256:33\n")
    wrong, extra = check_venv.differences(pins, check_venv.installed([str(site)]))
    assert wrong == ["filelock==4.3.0: 4.3.1 installed", "pyyaml==6.0.4: not installed"]
    assert extra == ["nvidia-cufft", "pytest-benchmark"]
