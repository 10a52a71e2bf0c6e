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
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import SimpleITK as sitk

from .errors import DataError
from .labels import MAX_LABEL, invalid_values

# Voxels read at once: 256 MiB of float64, the widest label type seen. Small slabs of a .nii.gz cost time
# (a 1024x1024x600 float64 label: 31 s in 75 slabs, 15 s in 19, 32 s whole, one machine, one run).
SLAB_VOXELS = 32 * 1024**2


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


def read_slabs(reader: sitk.ImageFileReader, case_id: str | None = None) -> Iterator[np.ndarray]:
    """The volume as (z, y, x) arrays of at most SLAB_VOXELS voxels each, and always at least two: ITK
    reads a whole-volume region through a path that zero-fills a truncated or corrupt .nii.gz without a
    word, while a sub-region read fails on it."""
    nx, ny, nz = reader.GetSize()
    step = max(1, min(SLAB_VOXELS // (nx * ny), (nz + 1) // 2))
    for z0 in range(0, nz, step):
        n = min(step, nz - z0)
        reader.SetExtractIndex((0, 0, z0))
        reader.SetExtractSize((nx, ny, n))
        try:
            slab = reader.Execute()
        except RuntimeError as e:
            raise DataError(reader.GetFileName(), f"truncated or corrupt voxel data (slices {z0}-{z0 + n - 1} "
                                                  f"of {nz} unreadable)", case_id) from e
        yield sitk.GetArrayViewFromImage(slab)  # valid while `slab` lives, i.e. until the next step


def read_label(path: str | os.PathLike, case_id: str | None = None) -> sitk.Image:
    """A label map as uint8 with its geometry, read a slab at a time, each value checked to be a whole number
    in 0-6 before the cast (which would turn 2.5 or 300 silently into valid-looking labels). Label files are
    float64 or uint16 as often as uint8: a 1024x1024x600 float64 map is 5 GB whole, 0.6 GB as uint8."""
    reader = read_image_header(path, case_id)
    if reader.GetDimension() != 3 or reader.GetNumberOfComponents() != 1:
        raise DataError(path, "expected a 3-D scalar label map", case_id)
    labels = np.empty(reader.GetSize()[::-1], dtype=np.uint8)
    z = 0
    for slab in read_slabs(reader, case_id):
        bad = invalid_values(slab)
        if bad.size:
            raise DataError(path, f"label values must be integers in 0-{MAX_LABEL}; found {bad[:5].tolist()}",
                            case_id)
        labels[z: z + len(slab)] = slab
        z += len(slab)
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing(reader.GetSpacing())
    image.SetOrigin(reader.GetOrigin())
    image.SetDirection(reader.GetDirection())
    return image


def check_box_fits(start_xyz: Sequence[int], size_xyz: Sequence[int], image_size_xyz: Sequence[int]) -> None:
    """ValueError unless the box `start_xyz` + `size_xyz` lies inside an image of `image_size_xyz` voxels."""
    stop = [a + n for a, n in zip(start_xyz, size_xyz)]
    if min(start_xyz) < 0 or any(e > n for e, n in zip(stop, image_size_xyz)):
        raise ValueError(
            f"box {tuple(start_xyz)}+{tuple(size_xyz)} does not fit an image of size {tuple(image_size_xyz)}"
        )


def read_region(source: str | os.PathLike | sitk.ImageFileReader, start_xyz: Sequence[int], size_xyz: Sequence[int],
                case_id: str | None = None) -> sitk.Image:
    """Only the voxels of the box `start_xyz` + `size_xyz` of a file (its path or header reader), with their
    physical placement: a crop without the whole volume in memory, the same image as `geometry.crop_to_roi`
    of the whole one."""
    reader = source if isinstance(source, sitk.ImageFileReader) else read_image_header(source, case_id)
    path = reader.GetFileName()
    try:
        check_box_fits(start_xyz, size_xyz, reader.GetSize())
    except ValueError as e:
        raise DataError(path, str(e), case_id) from e
    reader.SetExtractIndex([int(v) for v in start_xyz])
    reader.SetExtractSize([int(v) for v in size_xyz])
    try:
        return reader.Execute()
    except RuntimeError as e:
        raise DataError(path, "truncated or corrupt voxel data", case_id) from e
