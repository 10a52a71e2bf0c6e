"""The raw data's layout (DATA.md): which file in an image folder or a label folder is what.

Every file there is accounted for: an image or a label the pipeline reads; a file that looks like image data
but cannot be read as one (another format, an archive, a second channel, a name that does not parse), which
ingestion names as a problem; or anything else (notes, spreadsheets), which it lists as ignored.

Standard library only and quick: the Snakefile lists the raw files with it when it builds the DAG (rule
list_raw_files keeps their sizes and times in a manifest that rule index_cases reads, so that a file added,
removed or replaced reruns the ingestion).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

# What SimpleITK reads and the PANORAMA challenge hands out (.mha), longest first: a name ends in one at most.
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha")
LABEL_FOLDERS = {"manual": "manual_labels", "automatic": "automatic_labels"}
CHANNEL = "0000"  # nnU-Net's channel tag: PANORAMA images are single-channel CT
# Files that hold (or pack) image data in a form ingestion does not read: named, never passed over, so that no
# case drops out without a word. Longest first, so that .nii.bz2 is not taken for .bz2.
_ARCHIVES = (".tar.gz", ".tar.bz2", ".tar.xz", ".zip", ".tar", ".tgz", ".7z", ".rar")
_OTHER_IMAGE_FORMATS = (".nii.bz2", ".nii.xz", ".nii.zst", ".mha.gz", ".nrrd.gz", ".nhdr", ".nrrd", ".mhd",
                        ".raw", ".dcm", ".ima", ".img", ".hdr", ".mgz", ".mgh", ".npy", ".npz", ".h5", ".hdf5",
                        ".gz", ".bz2", ".xz")
_DICOM_MAGIC_OFFSET = 128  # DICOM Part 10 files (often without a suffix) carry "DICM" after a 128-byte preamble

_CASE = r"\d{6}_\d{5}"  # <6-digit patient>_<5-digit study>
_IMAGE_STEM = re.compile(rf"^({_CASE})_(\d{{4}})$")
_LABEL_STEM = re.compile(rf"^({_CASE})$")
_CASE_PREFIX = re.compile(rf"^({_CASE})(?!\d)")
FORMATS = f"{', '.join(IMAGE_SUFFIXES[:-1])} or {IMAGE_SUFFIXES[-1]}"
EXPECTED = {"image": f"<6-digit patient>_<5-digit study>_{CHANNEL}.nii.gz (or {', '.join(IMAGE_SUFFIXES[1:])})",
            "label": f"<6-digit patient>_<5-digit study>.nii.gz (or {', '.join(IMAGE_SUFFIXES[1:])})"}

Kind = Literal["image", "label", "problem", "ignored"]


@dataclass(frozen=True)
class RawFile:
    """One file of a data folder: what it is, its case where the name gives one, and what is wrong with it."""

    path: Path
    kind: Kind
    case_id: str | None = None
    problem: str | None = None


def _ending(name: str, endings: Sequence[str]) -> str | None:
    lower = name.lower()
    return next((e for e in endings if lower.endswith(e)), None)


def _is_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(_DICOM_MAGIC_OFFSET)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def classify(path: str | os.PathLike, role: Literal["image", "label"]) -> RawFile:
    """What a file directly inside an image folder (`role` "image") or a label folder ("label") is."""
    path = Path(path)
    name = path.name
    case = _CASE_PREFIX.match(name)
    case_id = case[1] if case else None
    suffix = _ending(name, IMAGE_SUFFIXES)
    if suffix:
        stem = name[: -len(suffix)]
        if role == "image" and (m := _IMAGE_STEM.match(stem)):
            if m[2] == CHANNEL:
                return RawFile(path, "image", m[1])
            return RawFile(path, "problem", m[1], f"channel _{m[2]}: PANORAMA images are single-channel CT, read "
                                                  f"from {m[1]}_{CHANNEL}{suffix}; move other channels or phases "
                                                  "out of the image folders")
        if role == "label" and (m := _LABEL_STEM.match(stem)):
            return RawFile(path, "label", m[1])
        return RawFile(path, "problem", None, f"file name does not parse as {EXPECTED[role]}")
    if archive := _ending(name, _ARCHIVES):
        return RawFile(path, "problem", case_id, f"an archive ({archive}): unpack it; {role}s are read from "
                                                 f"{FORMATS} files")
    other = _ending(name, _OTHER_IMAGE_FORMATS)
    if other or _is_dicom(path):
        target = f"{case_id or '<case>'}{'_' + CHANNEL if role == 'image' else ''}.nii.gz"
        return RawFile(path, "problem", case_id, f"unsupported format ({other or 'DICOM'}): {role}s are read from "
                                                 f"{FORMATS} files; convert it (e.g. SimpleITK.ReadImage, then "
                                                 f"WriteImage to {target})")
    return RawFile(path, "ignored", case_id)


def folder_files(folder: str | os.PathLike) -> list[Path]:
    """The files directly in `folder`, sorted; hidden ones (the ._* copies macOS leaves in unpacked archives,
    .DS_Store, .gitkeep) are not data."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file())


def image_folders(entries: str | Sequence[str]) -> dict[str, list[Path]]:
    """Each entry of data.images (a folder or a glob pattern of folders) -> the folders it reaches."""
    entries = [entries] if isinstance(entries, str) else list(entries)
    return {e: [Path(m) for m in sorted(glob.glob(os.path.expanduser(e))) if Path(m).is_dir()] for e in entries}


def label_folders(labels_dir: str | os.PathLike) -> dict[str, Path]:
    """Label source (manual, automatic) -> its folder under the labels repository, where present."""
    return {src: Path(labels_dir) / sub for src, sub in LABEL_FOLDERS.items() if (Path(labels_dir) / sub).is_dir()}


def raw_folders(image_dirs: str | Sequence[str], labels_dir: str | os.PathLike) -> list[str]:
    """The folders whose files ingestion reads: every image folder data.images reaches, and the label folders.
    Folders that do not exist give nothing here; the ingestion job then says what is missing."""
    folders = {f.resolve(): f for fs in image_folders(image_dirs).values() for f in fs}
    folders.update({f.resolve(): f for f in label_folders(labels_dir).values()})
    return [str(f) for f in folders.values()]


def file_stats(folders: Sequence[str | os.PathLike]) -> list[dict]:
    """Path, size and modification time (ns) of every file in `folders` (images, labels and whatever lies
    beside them), sorted by path."""
    paths = sorted({p for f in folders for p in folder_files(f)})
    return [{"path": str(p), "bytes": (s := p.stat()).st_size, "mtime_ns": s.st_mtime_ns} for p in paths]


def files_signature(folders: Sequence[str | os.PathLike]) -> str:
    """A digest of file_stats: it changes when a file is added, removed or replaced, by an older file too
    (unpacked from an archive, copied with its times), where Snakemake's own test, an input newer than the
    outputs, does not fire."""
    return hashlib.sha256(json.dumps(file_stats(folders)).encode()).hexdigest()
