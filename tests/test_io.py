"""Checked readers: labels as uint8 a slab at a time, and regions of a file without the whole volume."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from fixtures_data import OBLIQUE, volume

import panorama_pdac.io as io_module
from panorama_pdac.errors import DataError
from panorama_pdac.geometry import Roi, crop_to_roi
from panorama_pdac.io import read_label, read_region


def _label(dtype) -> np.ndarray:
    arr = np.zeros((9, 10, 12), dtype=dtype)
    arr[2:7, 3:7, 2:10] = 4
    arr[8, 0, 0] = 6  # in the last slab only
    arr[4, 4, 4] = 1
    return arr


@pytest.mark.parametrize("dtype", [np.float64, np.uint16, np.uint8])
def test_label_is_read_slab_by_slab_as_uint8_with_its_geometry(tmp_path, monkeypatch, dtype):
    monkeypatch.setattr(io_module, "SLAB_VOXELS", 12 * 10 * 2)  # two slices per slab: five slabs
    path = tmp_path / "label.nii.gz"
    sitk.WriteImage(volume(_label(dtype), OBLIQUE), str(path))
    label = read_label(path, "c")
    assert label.GetPixelID() == sitk.sitkUInt8
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(label), _label(np.uint8))
    written = sitk.ReadImage(str(path))
    assert (label.GetSpacing(), label.GetOrigin(), label.GetDirection()) == (
        written.GetSpacing(), written.GetOrigin(), written.GetDirection())


@pytest.mark.parametrize("bad", [2.5, 7.0, -1.0, 300.0])
def test_a_label_value_a_cast_would_hide_is_an_error_naming_the_file(tmp_path, monkeypatch, bad):
    monkeypatch.setattr(io_module, "SLAB_VOXELS", 12 * 10 * 2)
    arr = _label(np.float64)
    arr[8, 9, 11] = bad  # last slab
    path = tmp_path / "label.nii.gz"
    sitk.WriteImage(volume(arr), str(path))
    with pytest.raises(DataError, match=r"case c: .*label.nii.gz: label values must be integers in 0-6"):
        read_label(path, "c")


def test_a_region_read_is_the_crop_of_the_whole_image(tmp_path):
    image = volume(np.random.default_rng(0).integers(-1024, 400, (9, 10, 12)).astype(np.int16), OBLIQUE)
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(image, str(path))
    whole = sitk.ReadImage(str(path))
    roi = Roi((2, 1, 3), (7, 8, 5), (0, 0, 0), (0, 0, 0), (0, 0, 0))
    region = read_region(path, roi.index_start_xyz, roi.index_size_xyz, "c")
    crop = crop_to_roi(whole, roi)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(region), sitk.GetArrayViewFromImage(crop))
    assert (region.GetOrigin(), region.GetSpacing(), region.GetDirection()) == (
        crop.GetOrigin(), crop.GetSpacing(), crop.GetDirection())
    with pytest.raises(DataError, match=r"ct.nii.gz: box \(6, 1, 3\)\+\(7, 8, 5\) does not fit"):
        read_region(path, (6, 1, 3), (7, 8, 5), "c")
