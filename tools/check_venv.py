"""Check that the running environment holds exactly what requirements.lock says (run by `make install`).

    python tools/check_venv.py requirements.lock [--remove-extra]

Every lock entry whose marker applies to this interpreter must be installed at exactly its version. Besides them
only these may be installed: the project itself, torch and torchvision (the Makefile installs them from TORCH_SPEC,
TORCHVISION_SPEC and TORCH_INDEX, outside the lock) and what those two need that the lock leaves out (the CUDA
packages of a GPU build: nvidia-*, triton, cuda-*). With --remove-extra anything else (left over from an older
lock) is uninstalled first. Exit status 1, with each difference listed, when the environment differs from the lock.

Reads installed distributions with importlib.metadata, so it also sees what `pip freeze` leaves out (pip,
setuptools, and argparse, which unittest2 pulls in).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PROJECT = "panorama-pdac"
TORCH_BUILD = ("torch", "torchvision")


def locked_pins(lock: Path) -> dict[str, Version]:
    """Name -> version of each `name==version` entry of a pip requirements lock whose marker applies here."""
    pins = {}
    for line in lock.read_text().splitlines():
        if not line or line[0] in " #-":
            continue  # hash lines, comments, options
        req = Requirement(line.rstrip(" \\"))
        if req.marker is not None and not req.marker.evaluate():
            continue
        (spec,) = req.specifier
        if spec.operator != "==":
            raise SystemExit(f"{lock}: {line!r} is not an exact pin")
        pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def installed(path: list[str] | None = None) -> dict[str, metadata.Distribution]:
    dists = metadata.distributions(path=path) if path is not None else metadata.distributions()
    return {canonicalize_name(d.metadata["Name"]): d for d in dists if d.metadata["Name"]}


def torch_build(dists: dict[str, metadata.Distribution], pins: dict[str, Version]) -> set[str]:
    """torch, torchvision and, transitively, what they require that the lock does not hold.

    Follows extras: a CUDA torch requires cuda-toolkit[cublas,...], whose nvidia-* requirements are extra-only.
    """
    found, seen = set(), set()
    todo = [(n, frozenset()) for n in TORCH_BUILD if n in dists]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        found.add(name)
        for text in dists[name].requires or []:
            req = Requirement(text)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in {"", *extras}):
                continue
            dep = canonicalize_name(req.name)
            if dep in dists and dep not in pins:
                todo.append((dep, frozenset(canonicalize_name(e) for e in req.extras)))
    return found


def differences(pins: dict[str, Version], dists: dict[str, metadata.Distribution]) -> tuple[list[str], list[str]]:
    """(lock entries missing or at another version, installed distributions the lock does not allow)."""
    allowed = torch_build(dists, pins) | {PROJECT}
    wrong = []
    for name, version in sorted(pins.items()):
        if name not in dists:
            wrong.append(f"{name}=={version}: not installed")
        elif Version(dists[name].version) != version:
            wrong.append(f"{name}=={version}: {dists[name].version} installed")
    extra = sorted(n for n in dists if n not in pins and n not in allowed)
    return wrong, extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lock", type=Path)
    parser.add_argument("--remove-extra", action="store_true",
                        help="uninstall what neither the lock nor the torch build accounts for")
    args = parser.parse_args(argv)
    pins = locked_pins(args.lock)
    wrong, extra = differences(pins, installed())
    if extra and args.remove_extra:
        print(f"removing what {args.lock} no longer holds: {' '.join(extra)}")
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "--yes", *extra], check=True)
        wrong, extra = differences(pins, installed())
    for line in wrong:
        print(f"{args.lock}: {line}", file=sys.stderr)
    for name in extra:
        print(f"{args.lock}: {name} is installed but not locked", file=sys.stderr)
    if wrong or extra:
        return 1
    dists = installed()
    torch = ", ".join(f"{n} {dists[n].version}" for n in sorted(torch_build(dists, pins)))
    print(f"environment matches {args.lock}: {len(pins)} locked packages; beside the lock: {torch or 'no torch'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
