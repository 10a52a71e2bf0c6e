"""What exactly a file, a configuration or a checkout is: content digests, the project version, git commits.

Standard library only and quick: the Snakefile calls it when it is parsed (the workflow's commit, the config
digest and the labels commit become params of rule write_provenance, so that a change of any of them reruns
it), and ingestion calls it on every image and label file.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import subprocess
import tomllib
from pathlib import Path

PROJECT = "panorama-pdac"
GIT_TIMEOUT_S = 60  # a labels clone on slow network storage; far above the milliseconds these calls take


def sha256_json(value) -> str:
    """Digest of `value` as canonical JSON (sorted keys, no spaces): equal values give equal digests, whatever
    the order of keys in the YAML files they came from."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def file_digest(path: str | os.PathLike) -> tuple[int, str]:
    """(size in bytes, sha256 of the bytes) of one file."""
    with open(path, "rb") as f:
        return os.fstat(f.fileno()).st_size, hashlib.file_digest(f, "sha256").hexdigest()


class _NoAnswer(Exception):
    """git could not say (not installed, not a checkout, refused): the message says why."""


def _git(folder: Path, *args: str) -> str:
    # --no-optional-locks: a status query must not take the index lock from a user's git command.
    cmd = ["git", "--no-optional-locks", "-C", str(folder), *args]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=GIT_TIMEOUT_S)
    except FileNotFoundError as e:
        raise _NoAnswer("git is not installed") from e
    except subprocess.TimeoutExpired as e:
        raise _NoAnswer(f"git {args[0]} took over {GIT_TIMEOUT_S} s") from e
    if run.returncode:
        said = run.stderr.strip().splitlines()
        raise _NoAnswer(said[0] if said else f"git {args[0]} failed (exit status {run.returncode})")
    return run.stdout.strip()


def git_state(folder: str | os.PathLike, own_repository: bool = False) -> dict:
    """{"commit", "dirty", "reason"} of the git checkout holding `folder`. Where git cannot tell (not a
    checkout, git not installed, ...) commit and dirty are None and reason says why; otherwise reason is None.

    dirty: uncommitted changes, untracked files included (a new rule file not yet committed is code the commit
    does not hold). own_repository: `folder` must be the top of its checkout: the demo's labels folder under
    results/ lies inside the workflow's own checkout, whose commit says nothing about those labels.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return {"commit": None, "dirty": None, "reason": f"{folder} is not a folder"}
    try:
        top = Path(_git(folder, "rev-parse", "--show-toplevel"))
        if own_repository and top.resolve() != folder.resolve():
            return {"commit": None, "dirty": None, "reason": f"{folder} is not a git clone (it lies in the "
                                                             f"checkout {top})"}
        commit = _git(folder, "rev-parse", "HEAD")
        dirty = bool(_git(folder, "status", "--porcelain"))
    except _NoAnswer as e:
        return {"commit": None, "dirty": None, "reason": str(e)}
    return {"commit": commit, "dirty": dirty, "reason": None}


def project_version(workflow_dir: str | os.PathLike) -> str | None:
    """The version in the workflow's pyproject.toml: the code that runs, also where the installed package
    is another checkout's (an editable install of a second clone). The installed package's version where the
    workflow folder has no pyproject.toml; None where neither exists."""
    pyproject = Path(workflow_dir) / "pyproject.toml"
    if pyproject.is_file():
        return tomllib.loads(pyproject.read_text())["project"]["version"]
    try:
        return importlib.metadata.version(PROJECT)
    except importlib.metadata.PackageNotFoundError:
        return None


def code_identity(workflow_dir: str | os.PathLike) -> dict:
    """The workflow's project version and git state."""
    return {"project": PROJECT, "version": project_version(workflow_dir), **git_state(workflow_dir)}


def labels_identity(labels_dir: str | os.PathLike, pinned: str) -> dict:
    """The labels folder's git state beside the commit the config pins ("" for none)."""
    return {"folder": str(labels_dir), **git_state(labels_dir, own_repository=True), "pinned": pinned}


def labels_warnings(labels: dict) -> list[str]:
    """What a reader of the results must know about the labels a `labels_identity` describes: they are not
    the pinned commit, or carry local edits. panorama_labels is live: it fixes labels case by case, so another
    commit means other labels for some cases."""
    folder, commit, pinned = labels["folder"], labels["commit"], labels["pinned"]
    warnings = []
    if pinned and commit is None:
        warnings.append(f"data.labels_commit pins {pinned}, but the commit of the labels at {folder} is unknown "
                        f"({labels['reason']})")
    elif pinned and not commit.startswith(pinned):
        warnings.append(f"the labels at {folder} are commit {commit}, not {pinned} (data.labels_commit): "
                        "panorama_labels fixes labels case by case, so some labels differ from the pinned ones "
                        f"(git -C {folder} checkout {pinned} uses those)")
    if labels["dirty"]:
        warnings.append(f"the labels at {folder} have uncommitted changes (git -C {folder} status)")
    return warnings
