"""Detection maps: constant-valued candidates, pancreas masking in mm, pasting without resampling."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from picai_eval.analysis_utils import parse_detection_map

from panorama_pdac.detection import (
    detect_lesions,
    detection_map,
    full_size_detection_map,
    restrict_to_pancreas,
)
from panorama_pdac.geometry import Roi
from panorama_pdac.io import read_image_header, write_image
from panorama_pdac.stage1 import localise


def _two_blobs() -> np.ndarray:
    prob = np.zeros((4, 20, 20), dtype=np.float32)
    prob[1:3, 2:6, 2:6] = 0.8  # 32 voxels
    prob[1, 3, 3] = 0.9  # the peak sets the candidate's confidence
    prob[1:3, 12:16, 12:16] = 0.5  # 32 voxels, above 0.9 / 2.5
    prob[0, 18, 18] = 0.6  # a single voxel: fewer than min_voxels_detection
    return prob


def test_candidates_are_constant_valued_blobs_at_their_peak():
    det = detection_map(_two_blobs())
    assert det.dtype == np.float32
    confidences, _ = parse_detection_map(det)  # raises if a blob is not constant-valued
    assert sorted(confidences.values()) == pytest.approx([0.5, 0.9])
    assert np.all(det[1:3, 2:6, 2:6] == pytest.approx(0.9))
    assert det[0, 18, 18] == 0  # too small a candidate


def test_threshold_and_min_voxels_are_passed_on():
    det = detection_map(_two_blobs(), threshold=0.7)
    assert np.unique(det).tolist() == pytest.approx([0, 0.9])
    assert not detection_map(_two_blobs(), min_voxels_detection=40).any()
    assert not detection_map(np.zeros((2, 3, 3))).any()


def test_masking_removes_candidates_outside_the_pancreas_before_extraction():
    prob = _two_blobs()
    prob[1:3, 11, 12:16] = 0.3  # a rim of 8 voxels: below 0.9 / 2.5, above 0.5 / 2.5
    assert (detection_map(prob) == np.float32(0.5)).sum() == 32
    pancreas = np.zeros(prob.shape, dtype=np.uint8)
    pancreas[:, 10:18, 10:18] = 1  # holds the weaker blob only
    det = detection_map(prob, pancreas_mask_zyx=pancreas)
    # The 0.9 blob is gone, and the dynamic threshold now follows the pancreas' own maximum.
    assert np.unique(det).tolist() == pytest.approx([0, 0.5])
    assert (det == np.float32(0.5)).sum() == 40


def test_masking_to_the_localised_pancreas_drops_the_specks_the_roi_dropped():
    # The stage-1 mask on a grid twice as coarse as the lesion map's: a pancreas of 50 voxels under the weaker
    # blob, and a speck of 8 (less than a quarter of it) under the stronger one.
    lesion = sitk.GetImageFromArray(_two_blobs())
    pancreas = np.zeros((2, 10, 10), dtype=np.uint8)
    pancreas[:, 5:10, 5:10] = 1
    pancreas[:, 1:3, 1:3] = 1
    pancreas = sitk.GetImageFromArray(pancreas)
    pancreas.SetSpacing((2.0, 2.0, 2.0))
    settings = {"threshold": "dynamic-fast", "dynamic_threshold_factor": 2.5, "min_voxels_detection": 10,
                "mask_to_pancreas": True, "pancreas_dilation_mm": 0}
    every_piece = detect_lesions(lesion, settings, pancreas)
    assert np.unique(every_piece).tolist() == pytest.approx([0, 0.5, 0.9])
    main_piece = detect_lesions(lesion, settings, localise(pancreas, lesion, (0, 0, 0), 0.25).pancreas)
    assert np.unique(main_piece).tolist() == pytest.approx([0, 0.5])


def test_dilation_is_in_millimetres_on_anisotropic_grids():
    prob = np.ones((5, 1, 11), dtype=np.float32)
    pancreas = np.zeros(prob.shape, dtype=np.uint8)
    pancreas[2, 0, 5] = 1
    spacing_zyx = (3.0, 1.0, 1.0)
    kept = restrict_to_pancreas(prob, pancreas, dilate_mm=3.0, spacing_zyx=spacing_zyx) > 0
    assert kept[2, 0].tolist() == [False] * 2 + [True] * 7 + [False] * 2  # +-3 voxels of 1 mm along x
    assert kept[:, 0, 5].tolist() == [False, True, True, True, False]  # +-1 voxel of 3 mm along z
    exact = restrict_to_pancreas(prob, pancreas)
    assert exact.sum() == 1


def test_empty_pancreas_mask_leaves_the_map_alone():
    prob = _two_blobs()
    np.testing.assert_array_equal(restrict_to_pancreas(prob, np.zeros(prob.shape)), prob)


def test_masking_errors():
    prob = _two_blobs()
    with pytest.raises(ValueError, match="spacing_zyx"):
        restrict_to_pancreas(prob, prob > 0, dilate_mm=5)
    with pytest.raises(ValueError, match="shape"):
        restrict_to_pancreas(prob, prob[0] > 0)
    with pytest.raises(ValueError, match="3D"):
        detection_map(prob[0])


def _reference() -> sitk.Image:
    ref = sitk.Image([10, 8, 6], sitk.sitkInt16)  # (x, y, z)
    ref.SetSpacing((0.7, 0.8, 2.5))
    ref.SetOrigin((-10.0, 20.0, 30.0))
    ref.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    return ref


def _check_pasted(full: sitk.Image, ref: sitk.Image, crop: np.ndarray) -> None:
    assert full.GetPixelID() == sitk.sitkFloat32
    assert full.GetSize() == ref.GetSize()
    assert full.GetSpacing() == pytest.approx(ref.GetSpacing())
    assert full.GetOrigin() == pytest.approx(ref.GetOrigin())
    assert full.GetDirection() == pytest.approx(ref.GetDirection())
    arr = sitk.GetArrayFromImage(full)
    np.testing.assert_array_equal(arr[1:4, 2:4, 5:9], crop)  # start (x, y, z) = (5, 2, 1), size (4, 2, 3)
    assert arr.sum() == pytest.approx(crop.sum())


def _box(start_xyz, size_xyz) -> Roi:
    return Roi(start_xyz, size_xyz, (0, 0, 0), (1, 1, 1), (0, 0, 0))


def test_full_size_map_pastes_at_the_box_with_the_reference_geometry():
    ref = _reference()
    crop = np.zeros((3, 2, 4), dtype=np.float64)
    crop[1, :, 1:3] = 0.75
    _check_pasted(full_size_detection_map(crop, _box((5, 2, 1), (4, 2, 3)), ref), ref, crop)


def test_full_size_map_from_a_header_only(tmp_path):
    ref = _reference()
    write_image(ref, tmp_path / "ct.nii.gz")
    crop = np.full((3, 2, 4), 0.5, dtype=np.float32)
    header = read_image_header(tmp_path / "ct.nii.gz")
    _check_pasted(full_size_detection_map(crop, _box((5, 2, 1), (4, 2, 3)), header), ref, crop)


def test_full_size_map_refuses_a_wrong_box():
    ref = _reference()
    with pytest.raises(ValueError, match="does not match"):
        full_size_detection_map(np.zeros((2, 2, 4)), _box((5, 2, 1), (4, 2, 3)), ref)
    with pytest.raises(ValueError, match="does not fit"):
        full_size_detection_map(np.zeros((3, 2, 4)), _box((7, 2, 1), (4, 2, 3)), ref)
    with pytest.raises(ValueError, match="does not fit"):
        full_size_detection_map(np.zeros((3, 2, 4)), _box((-1, 2, 1), (4, 2, 3)), ref)


def test_predicting_needs_no_plotting_library():
    # predict runs in a container with no display: its imports must not reach matplotlib (figures.py)
    import subprocess
    import sys

    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "import panorama_pdac.predict\n"
            "assert 'panorama_pdac.figures' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
