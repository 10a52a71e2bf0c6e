"""Resampling, ROI and crop/paste on grids like real PANORAMA scans: flipped and oblique directions,
anisotropic spacing, and a stage-1 mask on a coarser grid than the image it crops."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import SimpleITK as sitk

from panorama_pdac.geometry import (
    Roi,
    crop_to_roi,
    main_components,
    pancreas_mask,
    paste_box,
    resample_to_reference,
    resample_to_spacing,
    roi_from_mask,
)
from panorama_pdac.stage1 import localise

STAGE1_SPACING = (4.5, 4.5, 9.0)
SIZE_XYZ = (80, 70, 40)
SPACING_XYZ = (0.8, 0.7, 2.5)


def _stop(roi: Roi) -> tuple[int, ...]:
    """Exclusive end index per axis (x, y, z)."""
    return tuple(a + n for a, n in zip(roi.index_start_xyz, roi.index_size_xyz))


def _rotation(deg_z: float, deg_x: float) -> np.ndarray:
    cz, sz = np.cos(np.radians(deg_z)), np.sin(np.radians(deg_z))
    cx, sx = np.cos(np.radians(deg_x)), np.sin(np.radians(deg_x))
    return np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]) @ np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])


DIRECTIONS = {
    "identity": np.eye(3),
    "flip_xy": np.diag([-1.0, -1.0, 1.0]),
    "flip_oblique": np.diag([-1.0, -1.0, 1.0]) @ _rotation(4.0, 3.0),
}


def _image(arr_zyx: np.ndarray, spacing_xyz, direction: np.ndarray, origin_xyz=(-30.0, 12.0, -150.0)) -> sitk.Image:
    img = sitk.GetImageFromArray(arr_zyx)
    img.SetSpacing(spacing_xyz)
    img.SetDirection(tuple(direction.ravel()))
    img.SetOrigin(origin_xyz)
    return img


def _label(direction: np.ndarray) -> sitk.Image:
    """Off-centre pancreas (4) with a lesion (1) well inside it, so a mirrored ROI would miss the lesion."""
    arr = np.zeros(SIZE_XYZ[::-1], dtype=np.uint8)
    arr[12:26, 10:30, 40:66] = 4
    arr[17:22, 15:22, 50:58] = 1
    arr[0:3, 60:65, 0:5] = 3  # artery far away: not pancreas, must not enter the ROI
    return _image(arr, SPACING_XYZ, direction)


def _foreign_grid(reference: sitk.Image, spacing_xyz=STAGE1_SPACING) -> sitk.Image:
    """An identity-direction grid with its own origin that covers `reference`'s world bounding box."""
    size = np.array(reference.GetSize())
    corners = np.array(
        [reference.TransformContinuousIndexToPhysicalPoint(c) for c in itertools.product(*zip([-0.5] * 3, size - 0.5))]
    )
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    grid = sitk.Image([int(n) for n in np.ceil((hi - lo) / spacing_xyz) + 2], sitk.sitkUInt8)
    grid.SetSpacing(spacing_xyz)
    grid.SetOrigin(tuple(lo - np.array(spacing_xyz) / 3))
    return grid


def _coarse_mask(label: sitk.Image, grid: str) -> sitk.Image:
    mask = pancreas_mask(label)
    if grid == "stage1":
        return resample_to_spacing(mask, STAGE1_SPACING, is_label=True)
    return resample_to_reference(mask, _foreign_grid(label), is_label=True)


def _inside(crop: sitk.Image, point_xyz, tol: float = 1e-6) -> bool:
    """Whether a world point falls inside the crop's voxels (continuous index within the voxel edges)."""
    ci = np.array(crop.TransformPhysicalPointToContinuousIndex(tuple(float(v) for v in point_xyz)))
    return bool(np.all(ci >= -0.5 - tol) and np.all(ci <= np.array(crop.GetSize()) - 0.5 + tol))


@pytest.mark.parametrize("grid", ["stage1", "foreign"])
@pytest.mark.parametrize("direction", DIRECTIONS.values(), ids=DIRECTIONS.keys())
def test_roi_from_coarse_mask_keeps_every_lesion_voxel_physically(direction, grid):
    label = _label(direction)
    mask = _coarse_mask(label, grid)
    assert mask.GetSpacing() != label.GetSpacing()
    roi = roi_from_mask(mask, label, margin_mm_xyz=(5.0, 4.0, 6.0))
    crop = crop_to_roi(label, roi)

    assert not roi.fallback
    assert crop.GetDirection() == label.GetDirection()
    assert np.allclose(crop.GetOrigin(), label.TransformIndexToPhysicalPoint(roi.index_start_xyz))
    lesion_zyx = np.argwhere(sitk.GetArrayViewFromImage(label) == 1)
    assert len(lesion_zyx) == 5 * 7 * 8
    for z, y, x in lesion_zyx:
        assert _inside(crop, label.TransformIndexToPhysicalPoint((int(x), int(y), int(z))))
    # The ROI is a box around the pancreas, not the whole image (which would pass the above trivially).
    assert np.prod(roi.index_size_xyz) < 0.5 * np.prod(SIZE_XYZ)
    artery_zyx = np.argwhere(sitk.GetArrayViewFromImage(label) == 3)
    assert not any(
        _inside(crop, label.TransformIndexToPhysicalPoint((int(x), int(y), int(z)))) for z, y, x in artery_zyx
    )


@pytest.mark.parametrize("grid", ["stage1", "foreign"])
@pytest.mark.parametrize("direction", DIRECTIONS.values(), ids=DIRECTIONS.keys())
def test_roi_honours_margin_in_mm_along_the_image_axes(direction, grid):
    label = _label(direction)
    mask = _coarse_mask(label, grid)
    margin = np.array([6.0, 3.0, 5.0])
    roi = roi_from_mask(mask, label, margin_mm_xyz=margin)
    crop = crop_to_roi(label, roi)
    assert roi.margin_mm_xyz == tuple(margin)

    # Every corner of every mask voxel, pushed by the margin along each image axis, stays inside the crop
    # (the box chosen here does not touch the image border, so nothing is clipped).
    assert min(roi.index_start_xyz) > 0 and all(e < n for e, n in zip(_stop(roi), SIZE_XYZ))
    axes = np.array(label.GetDirection()).reshape(3, 3).T  # rows: world direction of index axes x, y, z
    offsets = [np.array(s) @ (margin[:, None] * axes) for s in itertools.product([-1, 0, 1], repeat=3)]
    for z, y, x in np.argwhere(sitk.GetArrayViewFromImage(mask) != 0):
        for corner in itertools.product(*[(v - 0.5, v + 0.5) for v in (x, y, z)]):
            p = np.array(mask.TransformContinuousIndexToPhysicalPoint(corner))
            assert all(_inside(crop, p + o, tol=1e-4) for o in offsets)


@pytest.mark.parametrize("direction", DIRECTIONS.values(), ids=DIRECTIONS.keys())
def test_roi_from_fullres_mask_without_margin_is_the_tight_bounding_box(direction):
    label = _label(direction)
    roi = roi_from_mask(pancreas_mask(label), label, margin_mm_xyz=(0, 0, 0))
    assert roi.index_start_xyz == (40, 10, 12)
    assert roi.index_size_xyz == (26, 20, 14)
    corners = np.array(
        [
            label.TransformContinuousIndexToPhysicalPoint(c)
            for c in itertools.product((39.5, 65.5), (9.5, 29.5), (11.5, 25.5))
        ]
    )
    assert np.allclose(roi.physical_min_xyz, corners.min(axis=0))
    assert np.allclose(roi.physical_max_xyz, corners.max(axis=0))


def test_roi_margin_in_voxels_rounds_outward():
    label = _label(np.eye(3))
    roi = roi_from_mask(pancreas_mask(label), label, margin_mm_xyz=(2.0, 1.0, 2.6))
    # 2.0 / 0.8 = 2.5 -> 3 voxels; 1.0 / 0.7 = 1.43 -> 2; 2.6 / 2.5 = 1.04 -> 2
    assert roi.index_start_xyz == (37, 8, 10)
    assert _stop(roi) == (69, 32, 28)


def test_roi_is_clipped_at_the_image_border():
    label = _label(DIRECTIONS["flip_oblique"])
    roi = roi_from_mask(_coarse_mask(label, "stage1"), label, margin_mm_xyz=(100.0, 50.0, 15.0))
    assert not roi.fallback
    # The x and y margins reach past both borders; z (15 mm = 6 slices) stays inside.
    assert roi.index_start_xyz[:2] == (0, 0) and _stop(roi)[:2] == SIZE_XYZ[:2]
    assert 0 < roi.index_start_xyz[2] and _stop(roi)[2] < SIZE_XYZ[2]
    assert crop_to_roi(label, roi).GetSize() == roi.index_size_xyz


def _speckled_prediction(direction: np.ndarray) -> tuple[sitk.Image, sitk.Image]:
    """The full-resolution label and a prediction: its pancreas, a second piece of half its size (a pancreas
    split in two), and a 4-voxel false-positive speck in the far corner of the scan."""
    label = _label(direction)
    arr = sitk.GetArrayFromImage(pancreas_mask(label))
    arr[30:37, 40:60, 5:31] = 1  # 7 x 20 x 26 voxels: half the pancreas's 14 x 20 x 26
    arr[38:40, 68:70, 78:79] = 1  # the speck
    prediction = sitk.GetImageFromArray(arr)
    prediction.CopyInformation(label)
    return label, prediction


@pytest.mark.parametrize("direction", DIRECTIONS.values(), ids=DIRECTIONS.keys())
def test_localise_drops_a_far_speck_but_keeps_a_split_pancreas(direction):
    label, prediction = _speckled_prediction(direction)
    everything = localise(prediction, label, (0, 0, 0), 0.0)
    assert _stop(everything.roi) == (79, 70, 40)  # METHOD.md's box reaches the speck
    assert everything.roi == roi_from_mask(prediction, label, margin_mm_xyz=(0, 0, 0))
    main = localise(prediction, label, (0, 0, 0), 0.25)
    assert main.roi.index_start_xyz == (5, 10, 12) and _stop(main.roi) == (66, 60, 37)
    speck = sitk.GetArrayFromImage(main.pancreas)[38:40, 68:70, 78:79]
    kept = sitk.GetArrayFromImage(main.pancreas).sum()
    assert not speck.any() and kept == sitk.GetArrayFromImage(prediction).sum() - 4
    largest = localise(prediction, label, (0, 0, 0), 0.9)
    assert largest.roi == roi_from_mask(pancreas_mask(label), label, margin_mm_xyz=(0, 0, 0))


def test_main_components_counts_diagonal_neighbours_as_one_component():
    arr = np.zeros((6, 6, 6), dtype=np.uint8)
    arr[1, 1, 1] = arr[2, 2, 2] = 1  # touching at a corner only: one 2-voxel component
    arr[4, 4, 4] = 1  # alone: half the size of the largest
    kept = sitk.GetArrayFromImage(main_components(sitk.GetImageFromArray(arr), 0.75))
    assert kept.sum() == 2 and kept[1, 1, 1] and kept[2, 2, 2]
    assert sitk.GetArrayFromImage(main_components(sitk.GetImageFromArray(arr), 0.5)).sum() == 3
    assert sitk.GetArrayFromImage(main_components(sitk.GetImageFromArray(arr * 0), 0.5)).sum() == 0


def test_empty_mask_falls_back_to_the_whole_image():
    label = _label(DIRECTIONS["flip_xy"])
    empty = resample_to_spacing(label, STAGE1_SPACING, is_label=True) * 0
    roi = roi_from_mask(empty, label)
    assert roi.fallback and "empty" in roi.fallback_reason
    assert roi.index_start_xyz == (0, 0, 0) and roi.index_size_xyz == SIZE_XYZ
    assert crop_to_roi(label, roi).GetSize() == SIZE_XYZ


def test_mask_outside_the_image_falls_back():
    label = _label(np.eye(3))
    mask = resample_to_spacing(pancreas_mask(label), STAGE1_SPACING, is_label=True)
    mask.SetOrigin((5000.0, 0.0, 0.0))
    roi = roi_from_mask(mask, label, margin_mm_xyz=(10, 10, 10))
    assert roi.fallback and "outside" in roi.fallback_reason
    assert roi.index_size_xyz == SIZE_XYZ


def test_roi_json_round_trip():
    label = _label(DIRECTIONS["flip_oblique"])
    for roi in (roi_from_mask(pancreas_mask(label), label), roi_from_mask(label * 0, label)):
        assert Roi.from_json(json.loads(json.dumps(roi.to_json()))) == roi


@pytest.mark.parametrize("direction", DIRECTIONS.values(), ids=DIRECTIONS.keys())
def test_resample_round_trip_keeps_origin_direction_and_extent(direction):
    rng = np.random.default_rng(0)
    image = _image(rng.integers(-200, 300, SIZE_XYZ[::-1]).astype(np.int16), SPACING_XYZ, direction)
    low = resample_to_spacing(image, STAGE1_SPACING, is_label=False)
    back = resample_to_spacing(low, SPACING_XYZ, is_label=False)
    for src, out, spacing in ((image, low, STAGE1_SPACING), (low, back, SPACING_XYZ)):
        assert out.GetOrigin() == image.GetOrigin()
        assert out.GetDirection() == image.GetDirection()
        assert out.GetPixelID() == image.GetPixelID()
        assert np.allclose(out.GetSpacing(), spacing)
        # Covers the source's extent, overshooting by less than one output voxel.
        src_extent = np.array(src.GetSize()) * src.GetSpacing()
        out_extent = np.array(out.GetSize()) * spacing
        assert np.all(out_extent >= src_extent - 1e-6) and np.all(out_extent < src_extent + spacing)
    assert low.GetSize() == (15, 11, 12)  # ceil(64/4.5), ceil(49/4.5), ceil(100/9)


def test_label_round_trip_through_stage1_grid_keeps_values_and_shape():
    label = _label(DIRECTIONS["flip_oblique"])
    low = resample_to_spacing(label, STAGE1_SPACING, is_label=True)
    back = resample_to_reference(low, label, is_label=True)
    assert back.GetSize() == label.GetSize() and back.GetOrigin() == label.GetOrigin()
    assert set(np.unique(sitk.GetArrayViewFromImage(low))) <= {0, 1, 3, 4}
    a = sitk.GetArrayViewFromImage(label) == 4
    b = sitk.GetArrayViewFromImage(back) == 4
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.7


def test_resample_pads_beyond_the_image_with_air_or_background():
    # 10 voxels of 1 mm resampled to 3.3 mm: 4 samples, the last at 9.9 mm, past the last voxel's edge.
    image = _image(np.full((1, 1, 10), 100, dtype=np.int16), (1.0, 1.0, 1.0), np.eye(3))
    low = sitk.GetArrayFromImage(resample_to_spacing(image, (3.3, 1.0, 1.0), is_label=False))
    assert low.shape == (1, 1, 4) and low[0, 0, -1] == -1024
    assert abs(int(low[0, 0, 0]) - 100) <= 1  # interpolated, not padded (B-spline output truncated to int16)
    label = sitk.Cast(image, sitk.sitkUInt8)
    assert sitk.GetArrayFromImage(resample_to_spacing(label, (3.3, 1.0, 1.0), is_label=True))[0, 0, -1] == 0
    padded = resample_to_spacing(image, (3.3, 1.0, 1.0), is_label=False, pad_value=-2000)
    assert sitk.GetArrayViewFromImage(padded)[0, 0, -1] == -2000


def test_pancreas_mask_selects_lesion_parenchyma_and_duct():
    arr = np.arange(7, dtype=np.float64).reshape(1, 1, 7)
    assert pancreas_mask(arr).tolist() == [[[0, 1, 0, 0, 1, 1, 0]]]
    img = _image(arr, (1.0, 2.0, 3.0), DIRECTIONS["flip_xy"])
    mask = pancreas_mask(img)
    assert mask.GetPixelID() == sitk.sitkUInt8
    assert (mask.GetSpacing(), mask.GetOrigin(), mask.GetDirection()) == (
        img.GetSpacing(),
        img.GetOrigin(),
        img.GetDirection(),
    )
    assert sitk.GetArrayViewFromImage(mask).tolist() == [[[0, 1, 0, 0, 1, 1, 0]]]


@pytest.mark.parametrize("direction", DIRECTIONS.values(), ids=DIRECTIONS.keys())
def test_paste_of_crop_reproduces_the_roi_and_fills_the_rest(direction):
    rng = np.random.default_rng(1)
    values = rng.uniform(0.1, 1.0, SIZE_XYZ[::-1]).astype(np.float32)
    image = _image(values, SPACING_XYZ, direction)
    label = _label(direction)
    roi = roi_from_mask(_coarse_mask(label, "stage1"), label, margin_mm_xyz=(5.0, 4.0, 6.0))
    (x0, y0, z0), (x1, y1, z1) = roi.index_start_xyz, _stop(roi)

    crop = crop_to_roi(image, roi)
    pasted = paste_box(image, sitk.GetArrayFromImage(crop), roi.index_start_xyz, roi.index_size_xyz)
    assert pasted.GetSize() == image.GetSize()
    assert pasted.GetOrigin() == image.GetOrigin()
    assert pasted.GetSpacing() == image.GetSpacing()
    assert pasted.GetDirection() == image.GetDirection()
    out = sitk.GetArrayFromImage(pasted)
    assert np.array_equal(out[z0:z1, y0:y1, x0:x1], values[z0:z1, y0:y1, x0:x1])
    out[z0:z1, y0:y1, x0:x1] = 0
    assert not out.any()


def test_paste_and_crop_refuse_a_box_of_the_wrong_size():
    label = _label(DIRECTIONS["flip_oblique"])
    roi = roi_from_mask(pancreas_mask(label), label, margin_mm_xyz=(2, 2, 2))
    with pytest.raises(ValueError, match="shape"):
        paste_box(label, np.zeros((1, 2, 3)), roi.index_start_xyz, roi.index_size_xyz)
    too_big = Roi((70, 0, 0), (20, 10, 10), (0, 0, 0), (1, 1, 1), (0, 0, 0))
    with pytest.raises(ValueError, match="does not fit"):
        crop_to_roi(label, too_big)


@pytest.mark.parametrize("pixel_type", [sitk.sitkInt16, sitk.sitkFloat32])
def test_slab_wise_resampling_matches_the_whole_volume(tmp_path, monkeypatch, pixel_type):
    """Stage 1's low-resolution CT, a slab of output slices at a time (from the image or from its file), is
    the whole-volume B-spline resampling: exactly when one slab holds it, otherwise within 0.05 HU on white
    noise of 300 HU (without the margin of input slices: 165 HU off)."""
    import panorama_pdac.geometry as geometry_module
    from panorama_pdac.geometry import resample_image_in_slabs
    from panorama_pdac.io import read_image_header

    rng = np.random.default_rng(1)
    image = sitk.Cast(sitk.GetImageFromArray(rng.normal(0, 300, (200, 40, 50))), pixel_type)
    image.SetSpacing((0.8, 0.8, 0.7))  # 9 mm: 12.86 input slices, so output slices fall between input ones
    image.SetOrigin((3.0, -2.0, 10.0))
    image.SetDirection((-1, 0, 0, 0, 1, 0, 0, 0, -1))
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(image, str(path))
    image = sitk.ReadImage(str(path))  # the file's geometry, as its header reader gives it
    whole = sitk.GetArrayFromImage(resample_to_spacing(image, STAGE1_SPACING, is_label=False))
    assert np.array_equal(sitk.GetArrayFromImage(resample_image_in_slabs(image, STAGE1_SPACING)), whole)
    monkeypatch.setattr(geometry_module, "_SLAB_INPUT_VOXELS", 40 * 50 * 40)  # 40 input slices: 11 slabs
    for source in (image, read_image_header(path)):
        slabs = resample_image_in_slabs(source, STAGE1_SPACING)
        assert (slabs.GetSize(), slabs.GetOrigin(), slabs.GetSpacing(), slabs.GetDirection()) == (
            tuple(reversed(whole.shape)), image.GetOrigin(), tuple(map(float, STAGE1_SPACING)), image.GetDirection())
        np.testing.assert_allclose(sitk.GetArrayFromImage(slabs), whole, atol=0.05 if pixel_type == sitk.sitkFloat32
                                   else 1)
