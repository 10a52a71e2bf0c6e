"""Venous-phase CT painted from a PANORAMA label map.

Both demo generators (the toy anatomy of `synthetic` and the real label maps of `painted`) turn labels
into CT here, so the two kinds of demo data share one intensity model: per-structure portal-venous HU,
a fat / soft-tissue mix inside the body, air outside it, smooth organ texture, partial-volume blur and
scanner noise.

Axis order: label and CT arrays are SimpleITK's (z, y, x); spacings are (x, y, z).
Memory: beyond the caller's labels, the peak is two float32 working arrays (8 bytes a voxel; the
element-wise steps run a slab of slices at a time), about 5.6 GB for the largest real label map
(1024x1024x663).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .labels import N_LABELS

_SLAB = 16  # slices per chunk of the element-wise steps, so their temporaries stay small


@dataclass(frozen=True)
class PaintParams:
    """Venous-phase intensities (HU) and image-formation settings."""

    air: float = -1000.0  # outside the body
    fat: float = -100.0  # retroperitoneal and subcutaneous fat
    soft_tissue: float = 45.0  # unlabelled organs, bowel wall and muscle
    lesion: float = 70.0  # label 1: PDAC, hypo-attenuating: about 40 HU below the enhancing parenchyma
    vein: float = 170.0  # label 2: portal, splenic and mesenteric veins, enhanced in the venous phase
    artery: float = 190.0  # label 3: aorta and its branches, still bright in the venous phase
    pancreas: float = 110.0  # label 4: normally enhancing parenchyma
    duct: float = 10.0  # label 5: pancreatic duct, fluid
    bile_duct: float = 10.0  # label 6: common bile duct, fluid
    tissue_scale_mm: float = 15.0  # size of the fat / soft-tissue patches and of the organ texture
    texture_sd: float = 8.0  # HU: slow intensity variation inside labelled structures
    blur_mm: float = 0.8  # Gaussian sigma of the scanner's point-spread function (partial volume)
    noise_sd: float = 12.0  # HU: quantum noise of a standard-dose venous-phase scan
    body_margin_mm: float = 60.0  # default body outline: this far beyond the labelled region
    hu_range: tuple[float, float] = (-1024.0, 3071.0)  # the 12-bit range CT scanners store

    def label_hu(self) -> np.ndarray:
        """HU indexed by label value; background starts as fat, soft tissue is mixed in by `paint_ct`."""
        return np.array([self.fat, self.lesion, self.vein, self.artery, self.pancreas, self.duct,
                         self.bile_duct], dtype=np.float32)


VENOUS_PHASE = PaintParams()


def smooth_field(shape_zyx: Sequence[int], spacing_xyz: Sequence[float], scale_mm: float,
                 rng: np.random.Generator) -> sitk.Image:
    """Zero-mean, unit-SD float32 random field varying over about `scale_mm`, as an image of `shape_zyx`.

    White noise on a coarse grid (one node per `scale_mm`), smoothed and linearly upsampled: cheap for
    any volume size, unlike filtering full-resolution noise with a wide kernel. SimpleITK upsamples
    (twice as fast as scipy's zoom); read the result with `sitk.GetArrayViewFromImage`, no copy.
    The image lives in voxel units (origin 0, spacing 1, identity direction).
    """
    shape = np.array(shape_zyx)
    extent_mm = shape * np.array(spacing_xyz, dtype=float)[::-1]
    coarse_shape = np.maximum(2, np.ceil(extent_mm / scale_mm).astype(int) + 1)
    coarse = ndimage.gaussian_filter(rng.standard_normal(tuple(coarse_shape)), sigma=1.0, mode="wrap")
    coarse = sitk.GetImageFromArray(((coarse - coarse.mean()) / coarse.std()).astype(np.float32))
    # Node spacing in full-grid voxels, so that the first and last nodes land on the first and last voxels.
    coarse.SetSpacing(((np.maximum(shape, 2) - 1) / (coarse_shape - 1))[::-1].tolist())
    return sitk.Resample(coarse, shape[::-1].tolist(), sitk.Transform(), sitk.sitkLinear, (0.0, 0.0, 0.0),
                         (1.0, 1.0, 1.0), np.eye(3).ravel().tolist(), 0.0, sitk.sitkFloat32)


def default_body_mask_yx(labels_zyx: np.ndarray, spacing_xyz: Sequence[float], margin_mm: float) -> np.ndarray:
    """In-plane (y, x) elliptic body outline enclosing every labelled voxel with `margin_mm` to spare.

    The ellipse through the corners of the labelled box (semi-axes sqrt(2) x half the box) plus the
    margin; real label maps only cover the upper abdomen's organs, well inside the body. Without any
    label the ellipse fills 90% of the slice.
    """
    ny, nx = labels_zyx.shape[1:]
    sx, sy = float(spacing_xyz[0]), float(spacing_xyz[1])
    occupied = np.flatnonzero(labels_zyx.any(axis=0).ravel())
    if occupied.size:
        ys, xs = np.unravel_index(occupied, (ny, nx))
        centre = np.array([ys.min() + ys.max(), xs.min() + xs.max()]) / 2.0
        half_mm = (np.array([ys.max() - ys.min(), xs.max() - xs.min()]) + 1) / 2.0 * np.array([sy, sx])
        semi_mm = np.sqrt(2.0) * half_mm + margin_mm
    else:
        centre = (np.array([ny, nx]) - 1) / 2.0
        semi_mm = 0.45 * np.array([ny * sy, nx * sx])
    y = (np.arange(ny) - centre[0]) * sy / semi_mm[0]
    x = (np.arange(nx) - centre[1]) * sx / semi_mm[1]
    return y[:, None] ** 2 + x[None, :] ** 2 <= 1.0


def paint_ct(labels_zyx: np.ndarray, spacing_xyz: Sequence[float], rng: np.random.Generator,
             body_mask: np.ndarray | None = None, params: PaintParams = VENOUS_PHASE) -> np.ndarray:
    """Venous-phase CT (int16 HU, same (z, y, x) shape) from a label map with values 0-6.

    `body_mask` is a boolean (z, y, x) or in-plane (y, x) mask of the patient's body (air outside it);
    by default an elliptic cylinder around the labelled voxels (`default_body_mask_yx`). The same
    labels, spacing and generator state give the same image.
    """
    if not np.issubdtype(labels_zyx.dtype, np.integer):
        raise TypeError(f"labels must be an integer array (got {labels_zyx.dtype}); check and cast first")
    if labels_zyx.size and (labels_zyx.min() < 0 or labels_zyx.max() >= N_LABELS):
        raise ValueError(f"label values must lie in 0-{N_LABELS - 1}")
    if body_mask is None:
        body_mask = default_body_mask_yx(labels_zyx, spacing_xyz, params.body_margin_mm)
    body_mask = np.broadcast_to(body_mask, labels_zyx.shape)

    field_image = smooth_field(labels_zyx.shape, spacing_xyz, params.tissue_scale_mm, rng)
    field = sitk.GetArrayViewFromImage(field_image)  # a view: valid while field_image lives
    hu = np.empty(labels_zyx.shape, dtype=np.float32)
    lut = params.label_hu()
    tissue_gain = params.soft_tissue - params.fat
    for z in range(0, labels_zyx.shape[0], _SLAB):
        sl = slice(z, z + _SLAB)
        lab, f = labels_zyx[sl], field[sl]
        # Unlabelled body: fat where the field is low, soft tissue where high (organs separated by fat);
        # labelled structures take the same field as their slow texture.
        hu[sl] = lut[lab] + np.where(lab == 0, tissue_gain * np.clip(f + 0.5, 0.0, 1.0),
                                     params.texture_sd * f)
        hu[sl][~body_mask[sl]] = params.air
    del field, field_image

    sigma_zyx = params.blur_mm / np.array(spacing_xyz, dtype=float)[::-1]
    ndimage.gaussian_filter(hu, sigma=sigma_zyx, output=hu, mode="nearest")

    ct = np.empty(labels_zyx.shape, dtype=np.int16)
    for z in range(0, labels_zyx.shape[0], _SLAB):
        sl = slice(z, z + _SLAB)
        noisy = hu[sl] + params.noise_sd * rng.standard_normal(hu[sl].shape, dtype=np.float32)
        ct[sl] = np.rint(np.clip(noisy, *params.hu_range))
    return ct
