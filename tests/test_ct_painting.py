"""Painting CT from labels: venous-phase HU per structure, air outside the body, blur in millimetres."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from panorama_pdac.ct_painting import VENOUS_PHASE, default_body_mask_yx, paint_ct

SPACING_XYZ = (1.0, 1.2, 2.5)


def _blocks() -> np.ndarray:
    """One 16 x 16 x 8 voxel block of every label 1-6 in a row, inside a 24 x 64 x 140 (z, y, x) volume."""
    labels = np.zeros((24, 64, 140), dtype=np.uint8)
    for value in range(1, 7):
        x0 = 10 + 20 * (value - 1)
        labels[8:16, 24:40, x0:x0 + 16] = value
    return labels


def _interior_means(ct: np.ndarray, labels: np.ndarray) -> dict[int, float]:
    """Mean HU per label away from the edges, where blur mixes in the neighbours."""
    return {v: float(ct[ndimage.binary_erosion(labels == v, iterations=2)].mean()) for v in range(1, 7)}


def test_structures_get_venous_phase_intensities():
    labels = _blocks()
    ct = paint_ct(labels, SPACING_XYZ, np.random.default_rng(0))
    assert ct.dtype == np.int16 and ct.shape == labels.shape
    means = _interior_means(ct, labels)
    expected = VENOUS_PHASE.label_hu()
    for value, mean in means.items():
        assert abs(mean - expected[value]) < 20, (value, mean)
    # Enhancing vessels > parenchyma > hypo-attenuating lesion > fluid-filled ducts.
    assert min(means[2], means[3]) > means[4] + 25
    assert means[4] > means[1] + 25
    assert means[1] > max(means[5], means[6]) + 15


def test_air_outside_the_default_body_outline():
    labels = _blocks()
    params = dataclasses.replace(VENOUS_PHASE, body_margin_mm=5.0)  # the default margin fills this small volume
    ct = paint_ct(labels, SPACING_XYZ, np.random.default_rng(0), params=params)
    body = default_body_mask_yx(labels, SPACING_XYZ, params.body_margin_mm)
    assert body[labels.any(axis=0)].all(), "every labelled voxel lies inside the body"
    assert not body.all(), "the outline leaves air around the body"
    far_outside = ~ndimage.binary_dilation(body, iterations=3)
    assert np.abs(ct[:, far_outside].mean() - VENOUS_PHASE.air) < 10
    inside = ndimage.binary_erosion(body, iterations=3) & ~labels.any(axis=0)
    assert VENOUS_PHASE.fat - 40 < ct[:, inside].mean() < VENOUS_PHASE.soft_tissue + 40


def test_given_body_mask_is_used_and_values_stay_in_the_stored_range():
    labels = _blocks()
    body = np.zeros(labels.shape, dtype=bool)
    body[:, 10:54, 5:135] = True
    ct = paint_ct(labels, SPACING_XYZ, np.random.default_rng(1), body_mask=body)
    assert ct[:, :5, :].max() < -900
    assert ct.min() >= VENOUS_PHASE.hu_range[0] and ct.max() <= VENOUS_PHASE.hu_range[1]


def test_same_generator_state_same_image():
    labels = _blocks()
    first = paint_ct(labels, SPACING_XYZ, np.random.default_rng(5))
    assert np.array_equal(first, paint_ct(labels, SPACING_XYZ, np.random.default_rng(5)))
    assert not np.array_equal(first, paint_ct(labels, SPACING_XYZ, np.random.default_rng(6)))


def _edge_width_mm(profile: np.ndarray, spacing_mm: float) -> float:
    """10-90% width of a rising step profile, in mm."""
    low, high = profile.min(), profile.max()
    rising = (profile > low + 0.1 * (high - low)) & (profile < low + 0.9 * (high - low))
    return float(np.count_nonzero(rising) * spacing_mm)


def test_partial_volume_blur_is_isotropic_in_millimetres():
    # No noise, texture or fat/soft-tissue mix: only the blur shapes an edge.
    params = dataclasses.replace(VENOUS_PHASE, noise_sd=0.0, texture_sd=0.0, fat=45.0, blur_mm=3.0)
    spacing_xyz = (0.5, 0.5, 2.0)
    body = np.ones((40, 8, 160), dtype=bool)
    x_edge = np.zeros(body.shape, dtype=np.uint8)
    x_edge[:, :, 80:] = 3
    z_edge = np.zeros(body.shape, dtype=np.uint8)
    z_edge[20:] = 3
    rng = np.random.default_rng(0)
    width_x = _edge_width_mm(paint_ct(x_edge, spacing_xyz, rng, body, params)[20, 4, :].astype(float), 0.5)
    width_z = _edge_width_mm(paint_ct(z_edge, spacing_xyz, rng, body, params)[:, 4, 80].astype(float), 2.0)
    # A Gaussian of sigma 3 mm rises from 10% to 90% over 7.7 mm, whatever the voxel size.
    assert 6.0 < width_x < 9.5
    assert abs(width_x - width_z) <= 2.0


def test_rejects_unchecked_labels():
    with pytest.raises(TypeError):
        paint_ct(np.zeros((2, 4, 4)), SPACING_XYZ, np.random.default_rng(0))
    with pytest.raises(ValueError):
        paint_ct(np.full((2, 4, 4), 7, dtype=np.uint8), SPACING_XYZ, np.random.default_rng(0))
