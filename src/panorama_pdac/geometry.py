"""Grids for the two-stage method: resampling, the pancreas ROI, and crop/paste between grids.

Stage 1 works on a coarse copy of the CT; its pancreas prediction is turned into a box in the
full-resolution image (`roi_from_mask`), stage 2 runs on that crop, and its detection map is pasted
back into the full image (`paste_box`). Every mapping between grids goes through physical
coordinates, because CT direction matrices are not always identity (flips, slight obliquity) and the
two grids have different spacings.

Axis order: SimpleITK arrays are (z, y, x); spacings, sizes, indices and margins here are (x, y, z),
as SimpleITK and the config use them.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np
import SimpleITK as sitk

from .io import check_box_fits, read_region
from .labels import PANCREAS

AIR_HU = -1024.0

_VOXEL_TOLERANCE = 1e-6  # allowance for float noise, in voxels
# Input slices beyond a slab's own, each side: the cubic B-spline prefilter's reach decays as 0.268^n.
_BSPLINE_MARGIN = 8
_SLAB_INPUT_VOXELS = 64 * 1024**2  # input voxels resampled at once: 0.5 GB of B-spline coefficients (double)


def _grid_at_spacing(source: sitk.Image | sitk.ImageFileReader, spacing_xyz: Sequence[float]) -> sitk.Image:
    """An empty (uint8) grid with `source`'s origin and direction at `spacing_xyz`, with enough voxels to cover
    its physical extent."""
    spacing_out = np.array(spacing_xyz, dtype=float)
    extent = np.array(source.GetSize()) * np.array(source.GetSpacing())
    # The tolerance keeps float noise (e.g. 9.0000001 voxels) from adding a padded slab.
    size_out = np.maximum(1, np.ceil(extent / spacing_out - _VOXEL_TOLERANCE)).astype(int)
    grid = sitk.Image([int(s) for s in size_out], sitk.sitkUInt8)
    grid.SetOrigin(source.GetOrigin())
    grid.SetSpacing(tuple(spacing_out))
    grid.SetDirection(source.GetDirection())
    return grid


def resample_to_spacing(
    image: sitk.Image, spacing_xyz: Sequence[float], is_label: bool, pad_value: float | None = None
) -> sitk.Image:
    """Resample to `spacing_xyz` keeping origin, direction and pixel type.

    Images use B-spline interpolation and pad with air (-1024 HU); labels use nearest neighbour and
    pad with 0. The output has enough voxels to cover the input's physical extent.
    """
    if pad_value is None:
        pad_value = 0.0 if is_label else AIR_HU
    return sitk.Resample(image, _grid_at_spacing(image, spacing_xyz), sitk.Transform(),
                         sitk.sitkNearestNeighbor if is_label else sitk.sitkBSpline, float(pad_value),
                         image.GetPixelID())


def resample_image_in_slabs(source: sitk.Image | sitk.ImageFileReader, spacing_xyz: Sequence[float]) -> sitk.Image:
    """`resample_to_spacing(image, spacing_xyz, is_label=False)`, a slab of output slices at a time from only
    the input slices they need: ITK's B-spline holds a double coefficient per input voxel, 5 GB for a
    1024x1024x600 CT. `source`: an image, or a file's header (`io.read_image_header`), which then is read a
    slab at a time. Identical to resampling the whole volume when it fits one slab; otherwise equal up to the
    prefilter's reach beyond the margin (2.7e-5 of the local contrast).
    """
    grid = _grid_at_spacing(source, spacing_xyz)
    nx, ny, nz = source.GetSize()

    def slices(z0: int, z1: int) -> sitk.Image:
        if isinstance(source, sitk.Image):
            return source if (z0, z1) == (0, nz) else sitk.RegionOfInterest(source, (nx, ny, z1 - z0), (0, 0, z0))
        return read_region(source, (0, 0, z0), (nx, ny, z1 - z0))

    if nx * ny * nz <= _SLAB_INPUT_VOXELS:
        return resample_to_spacing(slices(0, nz), spacing_xyz, is_label=False)
    ratio = grid.GetSpacing()[2] / source.GetSpacing()[2]  # same origin and direction: index k -> k * ratio
    per_slab = max(1, int((_SLAB_INPUT_VOXELS // (nx * ny) - 2 * _BSPLINE_MARGIN) // ratio))
    slabs = []
    for k0 in range(0, grid.GetSize()[2], per_slab):
        k1 = min(grid.GetSize()[2], k0 + per_slab)
        z0 = max(0, int(np.floor(k0 * ratio)) - _BSPLINE_MARGIN)
        z1 = min(nz, int(np.ceil((k1 - 1) * ratio)) + _BSPLINE_MARGIN + 1)
        part = slices(z0, z1)
        slabs.append(sitk.GetArrayFromImage(sitk.Resample(part, grid[:, :, k0:k1], sitk.Transform(),
                                                          sitk.sitkBSpline, AIR_HU, part.GetPixelID())))
    out = sitk.GetImageFromArray(np.concatenate(slabs))
    out.CopyInformation(grid)
    return out


def resample_to_reference(
    image: sitk.Image, reference: sitk.Image, is_label: bool, pad_value: float = 0.0
) -> sitk.Image:
    """Resample `image` onto `reference`'s grid (size, spacing, origin, direction).

    Labels use nearest neighbour; anything else is linear, which, unlike B-spline, cannot push a
    probability map outside [0, 1].
    """
    interpolator = sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear
    return sitk.Resample(image, reference, sitk.Transform(), interpolator, float(pad_value), image.GetPixelID())


def pancreas_mask(label: sitk.Image | np.ndarray, values: Iterable[int] = PANCREAS) -> sitk.Image | np.ndarray:
    """Binary (uint8) pancreas mask from a label map; an image stays an image with the same geometry."""
    values = list(values)
    if isinstance(label, sitk.Image):
        # A uint8 view of the boolean mask, not a copy: full-resolution labels have up to 1.6 G voxels.
        mask = sitk.GetImageFromArray(np.isin(sitk.GetArrayViewFromImage(label), values).view(np.uint8))
        mask.CopyInformation(label)
        return mask
    return np.isin(label, values).astype(np.uint8)


@dataclass(frozen=True)
class Roi:
    """A box of voxels in a full-resolution image.

    `index_start_xyz` / `index_size_xyz` index that image; `physical_min_xyz` / `physical_max_xyz`
    are the world-coordinate (mm) bounds of the box's 8 outer corners (voxel edges), kept so a report
    can show where the box is without the image. `fallback` marks a box that is the whole image
    because no usable mask was given, with the reason.
    """

    index_start_xyz: tuple[int, int, int]
    index_size_xyz: tuple[int, int, int]
    physical_min_xyz: tuple[float, float, float]
    physical_max_xyz: tuple[float, float, float]
    margin_mm_xyz: tuple[float, float, float]
    fallback: bool = False
    fallback_reason: str | None = None

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict) -> Roi:
        return cls(
            index_start_xyz=tuple(int(v) for v in data["index_start_xyz"]),
            index_size_xyz=tuple(int(v) for v in data["index_size_xyz"]),
            physical_min_xyz=tuple(float(v) for v in data["physical_min_xyz"]),
            physical_max_xyz=tuple(float(v) for v in data["physical_max_xyz"]),
            margin_mm_xyz=tuple(float(v) for v in data["margin_mm_xyz"]),
            fallback=bool(data["fallback"]),
            fallback_reason=data["fallback_reason"],
        )


def _box_corners(lo_xyz: Sequence[float], hi_xyz: Sequence[float]) -> list[tuple[float, ...]]:
    return list(itertools.product(*zip(lo_xyz, hi_xyz)))


def _make_roi(
    reference: sitk.Image, start_xyz: np.ndarray, stop_xyz: np.ndarray, margin_mm_xyz, reason: str | None = None
) -> Roi:
    """Roi for voxels [start, stop) of `reference`, with its world bounds taken at the voxel edges."""
    corners = np.array(
        [reference.TransformContinuousIndexToPhysicalPoint(c) for c in _box_corners(start_xyz - 0.5, stop_xyz - 0.5)]
    )
    return Roi(
        index_start_xyz=tuple(int(v) for v in start_xyz),
        index_size_xyz=tuple(int(v) for v in stop_xyz - start_xyz),
        physical_min_xyz=tuple(float(v) for v in corners.min(axis=0)),
        physical_max_xyz=tuple(float(v) for v in corners.max(axis=0)),
        margin_mm_xyz=tuple(float(m) for m in margin_mm_xyz),
        fallback=reason is not None,
        fallback_reason=reason,
    )


def whole_image_roi(reference: sitk.Image, reason: str, margin_mm_xyz: Sequence[float] = (0.0, 0.0, 0.0)) -> Roi:
    """The whole image as a fallback Roi, recording why no smaller box could be used."""
    return _make_roi(reference, np.zeros(3, dtype=int), np.array(reference.GetSize()), margin_mm_xyz, reason)


def main_components(mask: sitk.Image, min_fraction: float) -> sitk.Image:
    """The foreground's connected components (26-connected) of at least `min_fraction` times the largest one's
    voxel count, as a 0/1 mask; `min_fraction` 0 keeps every foreground voxel."""
    if min_fraction <= 0:
        return mask != 0
    components = sitk.RelabelComponent(sitk.ConnectedComponent(mask != 0, True), sortByObjectSize=True)
    sizes = np.bincount(sitk.GetArrayViewFromImage(components).ravel())[1:]
    if sizes.size == 0:
        return mask != 0
    # Relabelled by decreasing size: the kept components are labels 1..n.
    n_kept = int(np.count_nonzero(sizes >= min_fraction * sizes[0]))
    return sitk.And(components > 0, components <= n_kept)


def roi_from_mask(mask: sitk.Image, reference: sitk.Image, margin_mm_xyz: Sequence[float] = (100.0, 50.0, 15.0)) -> Roi:
    """Box in `reference` around all foreground voxels of `mask`, grown by `margin_mm_xyz`, clipped.

    `mask` may lie on any grid (the coarse stage-1 prediction, or the full-resolution ground truth):
    the corners of its foreground bounding box (voxel edges) go to world coordinates with the mask's
    geometry and from there to continuous indices of `reference`. The margin is in mm along each of
    `reference`'s index axes. An empty mask, or one entirely outside `reference`, gives the whole
    image with `fallback=True`.
    """
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask != 0)
    if not stats.HasLabel(1):
        return whole_image_roi(reference, "empty mask: no foreground voxel", margin_mm_xyz)
    bbox = stats.GetBoundingBox(1)  # (x0, y0, z0, size_x, size_y, size_z)
    lo = np.array(bbox[:3]) - 0.5
    hi = lo + np.array(bbox[3:])
    cindex = np.array(
        [
            reference.TransformPhysicalPointToContinuousIndex(mask.TransformContinuousIndexToPhysicalPoint(c))
            for c in _box_corners(lo, hi)
        ]
    )
    grow = np.asarray(margin_mm_xyz, dtype=float) / np.array(reference.GetSpacing())
    # Voxel i spans [i - 0.5, i + 0.5]: keep every voxel that overlaps the grown box, except by the
    # float noise of the round trip through world coordinates (which would add a voxel on a shared edge).
    start = np.floor(cindex.min(axis=0) - grow + 0.5 + _VOXEL_TOLERANCE).astype(int)
    stop = np.ceil(cindex.max(axis=0) + grow - 0.5 - _VOXEL_TOLERANCE).astype(int) + 1
    start = np.clip(start, 0, None)
    stop = np.minimum(stop, reference.GetSize())
    if np.any(stop <= start):
        return whole_image_roi(reference, "mask lies entirely outside the image", margin_mm_xyz)
    return _make_roi(reference, start, stop, margin_mm_xyz)


def crop_to_roi(image: sitk.Image, roi: Roi) -> sitk.Image:
    """The ROI's voxels of `image`, keeping their physical placement (origin moves, direction stays)."""
    check_box_fits(roi.index_start_xyz, roi.index_size_xyz, image.GetSize())
    return sitk.RegionOfInterest(image, roi.index_size_xyz, roi.index_start_xyz)


def paste_box(reference: sitk.Image | sitk.ImageFileReader, crop_zyx: np.ndarray, start_xyz: Sequence[int],
              size_xyz: Sequence[int]) -> sitk.Image:
    """Full-size image with `reference`'s exact geometry: the (z, y, x) array `crop_zyx` in the box
    `start_xyz` + `size_xyz`, zero elsewhere. No resampling, so a detection map keeps its constant-valued
    blobs. `reference` may be an image or only its header (`io.read_image_header`)."""
    check_box_fits(start_xyz, size_xyz, reference.GetSize())
    expected_shape = tuple(reversed(tuple(size_xyz)))
    if crop_zyx.shape != expected_shape:
        raise ValueError(f"crop shape (z, y, x) {crop_zyx.shape} does not match the box's {expected_shape}")
    # np.zeros leaves the pages it does not write unallocated until SimpleITK's copy below: one full-size
    # volume in memory rather than two (a 1024x1024x600 float32 map is 2.5 GB).
    full = np.zeros(tuple(reversed(reference.GetSize())), dtype=crop_zyx.dtype)
    (x0, y0, z0), (x1, y1, z1) = start_xyz, [a + n for a, n in zip(start_xyz, size_xyz)]
    full[z0:z1, y0:y1, x0:x1] = crop_zyx
    out = sitk.GetImageFromArray(full)
    out.SetSpacing(reference.GetSpacing())
    out.SetOrigin(reference.GetOrigin())
    out.SetDirection(reference.GetDirection())
    return out
