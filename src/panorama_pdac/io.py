"""Atomic writers and checked readers.

Every file the pipeline produces is written under a temporary name in the same folder and renamed
into place, so an interrupted job never leaves a file that looks finished.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

import pandas as pd
import SimpleITK as sitk

from .errors import DataError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds.

    `suffix` defaults to the target's full suffix (".nii.gz" stays ".nii.gz") so writers that pick a
    format from the file name still see the right one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name.split('.')[0]}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    # mkstemp creates owner-only files; results on shared cluster storage should follow the umask.
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(obj, path: str | os.PathLike) -> None:
    write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", path)


def read_json(path: str | os.PathLike):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(path, f"cannot read JSON ({e})") from e


def write_tsv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False)


def read_tsv(path: str | os.PathLike, **kwargs) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", **kwargs)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(path, f"cannot read table ({e})") from e


def write_image(image: sitk.Image, path: str | os.PathLike, compress: bool = True) -> None:
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=compress)


def read_image(path: str | os.PathLike, case_id: str | None = None) -> sitk.Image:
    """Read an image, turning ITK's multi-line errors into one sentence naming the file."""
    if not Path(path).is_file():
        raise DataError(path, "file does not exist", case_id)
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as e:
        first = next((ln.strip() for ln in str(e).splitlines() if "rror" in ln), str(e).strip())
        raise DataError(path, f"unreadable or corrupt image ({first[:200]})", case_id) from e


def read_image_header(path: str | os.PathLike, case_id: str | None = None) -> sitk.ImageFileReader:
    """Read only the header (size, spacing, origin, direction, pixel type): fast on large volumes."""
    if not Path(path).is_file():
        raise DataError(path, "file does not exist", case_id)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as e:
        raise DataError(path, "unreadable or corrupt image header", case_id) from e
    return reader
