"""A small synthetic data set in the exact raw PANORAMA layout (DATA.md), for the demo and the tests.

Each patient gets a toy upper abdomen drawn in patient (LPS) millimetres: a curved pancreas (head, body,
tail) with its duct, the common bile duct entering the head, aorta, SMA and splenic artery, and the
portal, splenic and superior mesenteric veins; PDAC patients get an irregular lesion inside the
pancreas. Each study samples its own scanner grid (anisotropic spacing, identity / flipped / slightly
oblique direction, table position), rasterises the anatomy on it and paints venous-phase CT with
`ct_painting`. The traits real downloads have are all here: two image batch folders, manual and
automatic label folders, float64 / uint16 / uint8 label files, multi-study patients, values below
-1024 outside the reconstruction circle on some scanners, an xlsx (or csv) clinical sheet.

Everything is a function of the seed: the data-set plan (ids, diagnoses, study counts, per-case traits)
comes from one stream, and each patient's anatomy and sheet row and each study's scan from streams of
their own, so cases come out the same whether generated one by one or in parallel.

Axis order: arrays (z, y, x); sizes, spacings and physical points (x, y, z).
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy.interpolate import make_interp_spline
from scipy.spatial import cKDTree

from .ct_painting import paint_ct
from .errors import ConfigError, PanoramaError
from .io import atomic_path, write_image
from .layout import LABEL_FOLDERS

SHEET_COLUMNS = ["PANORAMA_patient_id", "PANORAMA_study_id", "anonymized_study_date", "patient_age",
                 "patient_sex", "scanner", "label", "level"]
BATCH_FOLDERS = ("batch1", "batch2")
FIRST_PATIENT_ID = 100000
OUT_OF_FOV_HU = -2048  # what several scanners store outside the reconstruction circle
# The toy anatomy spans about 160 x 110 x 90 mm (x, y, z): grids are enlarged to hold it.
MIN_FOV_MM = 200.0
MIN_Z_EXTENT_MM = 110.0
SCANNERS = {"SIEMENS": 938, "TOSHIBA": 651, "Philips": 319, "GE MEDICAL SYSTEMS": 46, "Canon Medical Systems": 7}
# Reference standards and how often each backs a diagnosis (the real sheet's counts, rounded).
LEVELS = {
    "PDAC": {"histopathology": 260, "pathology": 125, "cytology": 145, "MSD_dataset": 100, "radiology": 50},
    "non-PDAC": {"radiology": 1160, "histopathology": 90, "pathology": 85, "cytology": 40, "MSD_dataset": 95,
                 "NIH_dataset": 80},
}
PUBLIC_SOURCES = ("MSD_dataset", "NIH_dataset")  # no age, sex or scanner; MSD has no date either
DIRECTIONS = {
    "identity": np.eye(3),
    "flipped": np.diag([-1.0, -1.0, 1.0]),
    # A gantry tilt of 0.58 degrees about x, as in the real sample (off-diagonal 0.0101).
    "oblique": np.array([[1.0, 0.0, 0.0], [0.0, np.cos(0.0101), -np.sin(0.0101)],
                         [0.0, np.sin(0.0101), np.cos(0.0101)]]),
}
LABEL_PIXEL_TYPES = {"float64": sitk.sitkFloat64, "uint16": sitk.sitkUInt16, "uint8": sitk.sitkUInt8}


@dataclass(frozen=True)
class Tube:
    """A structure drawn as a tube around a smooth centreline through control points (LPS mm)."""

    label: int
    points_mm: tuple[tuple[float, float, float], ...]
    radii_mm: tuple[float, ...]  # at each control point, interpolated along the curve


# Toy anatomy relative to the body centre, in LPS mm (+x patient left, +y posterior, +z cranial). The
# pancreas (head on the right, low; tail on the left, high; ~120 mm along the curve) and its duct are drawn
# first, then these, in order: later structures win where they touch. Vessels span any field of view in z.
PANCREAS = Tube(4, ((-45, 2, -20), (-40, -6, -4), (-18, -14, 6), (12, -10, 13), (52, 8, 22)), (13, 12, 10, 10, 8))
AROUND_PANCREAS = (
    Tube(6, ((-58, 0, 68), (-55, 0, 38), (-50, 2, 8), (-46, 4, -16)), (3.5, 3.5, 3.5, 3.0)),  # common bile duct
    Tube(2, ((-10, -2, -300), (-10, 0, -12), (-12, 6, 6)), (6, 6, 6)),  # superior mesenteric vein
    Tube(2, ((-12, 6, 6), (-28, 12, 26), (-45, 15, 46)), (7, 7, 7)),  # portal vein
    Tube(2, ((-12, 6, 6), (15, 12, 14), (40, 16, 20), (65, 25, 26)), (4.5, 4.5, 4.5, 4.5)),  # splenic vein
    Tube(3, ((12, 38, -300), (12, 38, 300)), (11, 11)),  # aorta
    Tube(3, ((12, 30, 28), (10, 12, 16), (6, 5, -12), (4, 0, -300)), (4, 4, 4, 4)),  # superior mesenteric artery
    Tube(3, ((12, 30, 38), (35, 20, 40), (70, 25, 38)), (3, 3, 3)),  # splenic artery
)
DUCT_SPAN = (0.04, 0.96)  # part of the pancreas centreline (arc-length fraction) the duct runs along
DUCT_RADII_MM = (2.0, 1.3)  # head, tail
LESION_BULGE_MM = 6.0  # how far a lesion may push out of the pancreas outline (PDAC invades the fat around it)
LESION_LOBES = 4  # waves over the sphere that make a lesion's outline irregular
SAMPLE_STEP_MM = 0.5  # centreline sampling: distance error at most half of this
_ANATOMY, _SHEET, _SCAN = 0, 1, 2  # random streams per patient: [seed, patient id, stream(, study)]


@dataclass(frozen=True)
class Lesion:
    """A PDAC lesion: a lobulated ball centred on the pancreas centreline."""

    position: float  # arc-length fraction along the pancreas, head (0) to tail (1)
    radius_mm: float
    lobe_axes: np.ndarray  # (LESION_LOBES, 3) unit vectors
    lobe_phases: np.ndarray  # (LESION_LOBES,)
    lobe_amplitudes: np.ndarray  # (LESION_LOBES,) fractions of the radius


@dataclass(frozen=True)
class Patient:
    """What stays the same across a patient's studies: anatomy and diagnosis."""

    patient_id: int
    n_studies: int
    scale: float  # of the toy anatomy
    rotation: np.ndarray  # (3, 3), about the cranio-caudal axis
    offset_mm: np.ndarray  # (3,) of the anatomy from the body centre
    body_semi_axes_mm: tuple[float, float]  # x, y
    lesion: Lesion | None  # None: non-PDAC

    @property
    def pdac(self) -> bool:
        return self.lesion is not None


def _curve(tube: Tube, patient: Patient) -> tuple[np.ndarray, np.ndarray]:
    """Dense centreline samples (n, 3) in mm and the radius at each, placed in the patient."""
    pts = patient.scale * np.asarray(tube.points_mm, dtype=float) @ patient.rotation.T + patient.offset_mm
    t = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    spline = make_interp_spline(t, pts, k=min(3, len(pts) - 1))
    s = np.linspace(0.0, t[-1], max(2, int(np.ceil(t[-1] / SAMPLE_STEP_MM)) + 1))
    return spline(s), patient.scale * np.interp(s, t, tube.radii_mm)


def _tube_mask(points: np.ndarray, curve: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Which of `points` (N, 3) lie within the radius of their nearest centreline sample."""
    lo, hi = curve.min(axis=0) - radii.max(), curve.max(axis=0) + radii.max()
    near = np.flatnonzero(np.all((points >= lo) & (points <= hi), axis=1))
    dist, nearest = cKDTree(curve).query(points[near], distance_upper_bound=radii.max())
    inside = np.zeros(len(points), dtype=bool)
    hit = np.isfinite(dist)
    inside[near[hit]] = dist[hit] <= radii[nearest[hit]]
    return inside


def _centreline_voxels(curve: np.ndarray, grid: sitk.Image, centre: np.ndarray) -> np.ndarray:
    """Flat (z, y, x) indices of the voxels the centreline passes through: thin tubes stay connected."""
    direction = np.array(grid.GetDirection()).reshape(3, 3)
    index_xyz = np.rint((curve + centre - grid.GetOrigin()) @ direction / grid.GetSpacing()).astype(int)
    size = np.array(grid.GetSize())
    index_xyz = index_xyz[np.all((index_xyz >= 0) & (index_xyz < size), axis=1)]
    return np.ravel_multi_index(tuple(index_xyz[:, ::-1].T), tuple(size[::-1]))


def _lesion_mask(points: np.ndarray, lesion: Lesion, pancreas: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The lesion's ball, kept within the (slightly bulged) pancreas."""
    curve, radii = pancreas
    offset = points - curve[int(round(lesion.position * (len(curve) - 1)))]
    dist = np.linalg.norm(offset, axis=1)
    unit = offset / np.maximum(dist, 1e-6)[:, None]
    # Radius modulated by low-order waves over the sphere: lobulated like a real tumour.
    bumps = np.cos(3.0 * unit @ lesion.lobe_axes.T + lesion.lobe_phases) @ lesion.lobe_amplitudes
    return (dist <= lesion.radius_mm * (1.0 + bumps)) & _tube_mask(points, curve, radii + LESION_BULGE_MM)


def draw_labels(patient: Patient, grid: sitk.Image, body_centre_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise a patient's anatomy on `grid`: label map (z, y, x) uint8 and the body mask (z, y, x)."""
    points = sitk.GetArrayFromImage(sitk.PhysicalPointSource(
        sitk.sitkVectorFloat64, grid.GetSize(), grid.GetOrigin(), grid.GetSpacing(), grid.GetDirection()))
    shape = points.shape[:3]
    points = points.reshape(-1, 3) - body_centre_mm
    labels = np.zeros(len(points), dtype=np.uint8)
    pancreas = _curve(PANCREAS, patient)
    along_duct = slice(*(int(f * (len(pancreas[0]) - 1)) for f in DUCT_SPAN))
    duct_curve = pancreas[0][along_duct]
    duct = (duct_curve, patient.scale * np.linspace(*DUCT_RADII_MM, len(duct_curve)))
    tubes = [(4, pancreas), (5, duct), *((t.label, _curve(t, patient)) for t in AROUND_PANCREAS)]
    for label, (curve, radii) in tubes:
        labels[_tube_mask(points, curve, radii)] = label
        labels[_centreline_voxels(curve, grid, body_centre_mm)] = label
    if patient.lesion is not None:
        labels[_lesion_mask(points, patient.lesion, pancreas) & np.isin(labels, (0, 4, 5))] = 1
    ax, ay = patient.body_semi_axes_mm
    body = (points[:, 0] / ax) ** 2 + (points[:, 1] / ay) ** 2 <= 1.0
    return labels.reshape(shape), body.reshape(shape)


def _assign(rng: np.random.Generator, n: int, options: Sequence, p: Sequence[float]) -> list:
    """Random choices that include every option at least once when n allows (a demo must show each)."""
    picks = list(rng.choice(len(options), size=n, p=np.asarray(p) / np.sum(p)))
    if n >= len(options):
        for option, position in enumerate(rng.choice(n, len(options), replace=False)):
            picks[position] = option
    return [options[i] for i in picks]


def _weighted(rng: np.random.Generator, counts: dict) -> str:
    names = list(counts)
    return names[rng.choice(len(names), p=np.array(list(counts.values())) / sum(counts.values()))]


def _patients(rng: np.random.Generator, n_patients: int, seed: int, pdac_fraction: float, min_pdac_patients: int,
              multi_study_fraction: float, lesion_radius_mm: Sequence[float]) -> list[Patient]:
    if not 0 < min_pdac_patients < n_patients:
        raise ConfigError(f"synthetic data: {n_patients} patients cannot include {min_pdac_patients} PDAC "
                          "patients and at least one non-PDAC patient")
    # Sparse ids, as when a user has only part of the data set.
    ids = FIRST_PATIENT_ID + np.sort(rng.choice(min(10 * n_patients, 899_999), n_patients, replace=False))
    n_pdac = int(np.clip(round(pdac_fraction * n_patients), min_pdac_patients, n_patients - 1))
    pdac = np.zeros(n_patients, dtype=bool)
    pdac[rng.choice(n_patients, n_pdac, replace=False)] = True
    n_studies = np.where(rng.random(n_patients) < multi_study_fraction, rng.integers(2, 4, n_patients), 1)
    if n_studies.max() == 1:
        n_studies[rng.integers(n_patients)] = 2
    patients = []
    for i, patient_id in enumerate(ids):
        prng = np.random.default_rng([seed, int(patient_id), _ANATOMY])
        angle = np.radians(prng.uniform(-8.0, 8.0))
        rotation = np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0, 0, 1]])
        lesion = None
        if pdac[i]:
            axes = prng.normal(size=(LESION_LOBES, 3))
            lesion = Lesion(prng.uniform(0.12, 0.88), prng.uniform(*lesion_radius_mm),
                            axes / np.linalg.norm(axes, axis=1, keepdims=True),
                            prng.uniform(0, 2 * np.pi, LESION_LOBES), prng.uniform(0.04, 0.1, LESION_LOBES))
        patients.append(Patient(int(patient_id), int(n_studies[i]), prng.uniform(0.9, 1.1), rotation,
                                prng.uniform([-8, -6, -6], [8, 6, 6]),
                                (prng.uniform(105.0, 140.0), prng.uniform(80.0, 110.0)), lesion))
    return patients


def _grid(rng: np.random.Generator, direction: str, inplane_voxels: Sequence[int],
          inplane_spacing_mm: Sequence[float], slices: Sequence[int], slice_spacing_mm: Sequence[float]
          ) -> tuple[sitk.Image, np.ndarray]:
    """An empty scanner grid (size, spacing, direction, origin) and the body centre in it (mm)."""
    sxy, sz = rng.uniform(*inplane_spacing_mm), rng.uniform(*slice_spacing_mm)
    nxy = max(int(rng.integers(inplane_voxels[0], inplane_voxels[1] + 1)), int(np.ceil(MIN_FOV_MM / sxy)))
    nz = max(int(rng.integers(slices[0], slices[1] + 1)), int(np.ceil(MIN_Z_EXTENT_MM / sz)))
    grid = sitk.Image([nxy, nxy, nz], sitk.sitkUInt8)
    spacing = np.array([sxy, sxy, sz])
    matrix = DIRECTIONS[direction]
    grid.SetSpacing(spacing.tolist())
    grid.SetDirection(matrix.ravel().tolist())
    # Table positions like the real scans' (any z); the origin follows from the direction, as on scanners
    # where a flipped grid starts at the opposite corner.
    centre = np.array([rng.uniform(-20, 20), rng.uniform(-20, 40), rng.uniform(-1000, 1500)])
    grid.SetOrigin((centre - matrix @ (spacing * (np.array(grid.GetSize()) - 1) / 2.0)).tolist())
    return grid, centre + rng.uniform([-10, -10, -5], [10, 10, 5])


def _fov_mask_yx(grid: sitk.Image) -> np.ndarray:
    """In-plane reconstruction circle of the scanner: (y, x) True inside."""
    nx, ny = grid.GetSize()[:2]
    y, x = np.ogrid[:ny, :nx]
    return (x - (nx - 1) / 2.0) ** 2 + (y - (ny - 1) / 2.0) ** 2 <= (min(nx, ny) / 2.0) ** 2


def _write_case(case: dict, patient: Patient, out_dir: Path, seed: int, grid_ranges: dict) -> None:
    rng = np.random.default_rng([seed, patient.patient_id, _SCAN, case["study"]])
    grid, body_centre = _grid(rng, case["direction"], **grid_ranges)
    labels, body = draw_labels(patient, grid, body_centre)
    missing = set(range(1 if patient.pdac else 2, 7)) - set(np.unique(labels).tolist())
    if missing:
        raise ConfigError(f"synthetic case {case['case_id']}: grid {grid.GetSize()} at spacing "
                          f"{grid.GetSpacing()} does not hold the toy anatomy (labels {sorted(missing)} missing)")
    ct = paint_ct(labels, grid.GetSpacing(), rng, body_mask=body)
    if case["out_of_fov"]:
        ct[:, ~_fov_mask_yx(grid)] = OUT_OF_FOV_HU
    label_image = sitk.Cast(sitk.GetImageFromArray(labels), LABEL_PIXEL_TYPES[case["label_pixel_type"]])
    label_image.CopyInformation(grid)
    image = sitk.GetImageFromArray(ct)
    image.CopyInformation(grid)
    write_image(image, out_dir / "images" / case["batch"] / f"{case['case_id']}_0000.nii.gz")
    write_image(label_image, out_dir / "labels" / case["label_folder"] / f"{case['case_id']}.nii.gz")
    case.update(size_xyz=list(grid.GetSize()), spacing_xyz=[round(s, 4) for s in grid.GetSpacing()],
                lesion_voxels=int(np.count_nonzero(labels == 1)))


def _sheet(patients: list[Patient], seed: int) -> pd.DataFrame:
    """One row per study, formatted like the real clinical_information.xlsx."""
    rows = []
    for patient in patients:
        rng = np.random.default_rng([seed, patient.patient_id, _SHEET])
        label = "PDAC" if patient.pdac else "non-PDAC"
        level = _weighted(rng, LEVELS[label])
        public = level in PUBLIC_SOURCES
        sex = None if public else str(rng.choice(["M", "F"]))
        birth = pd.Timestamp("2014-01-01") - pd.Timedelta(days=int(rng.uniform(40, 85) * 365.25))
        date = pd.Timestamp("2014-01-01") + pd.Timedelta(days=int(rng.integers(0, 9 * 365)))
        for study in range(1, patient.n_studies + 1):
            rows.append({
                "PANORAMA_patient_id": patient.patient_id,
                "PANORAMA_study_id": f"{patient.patient_id:06d}_{study:05d}",
                "anonymized_study_date": pd.NaT if level == "MSD_dataset" else date,
                "patient_age": None if public else f"{(date - birth).days // 365:03d}Y",
                "patient_sex": sex,
                "scanner": None if public else _weighted(rng, SCANNERS),
                "label": label,
                "level": level,
            })
            date += pd.Timedelta(days=int(rng.integers(20, 400)))
    sheet = pd.DataFrame(rows, columns=SHEET_COLUMNS)
    sheet["anonymized_study_date"] = pd.to_datetime(sheet["anonymized_study_date"])
    return sheet


def _write_sheet(sheet: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        if path.suffix == ".csv":
            sheet.to_csv(tmp, index=False)
        else:
            sheet.to_excel(tmp, index=False, sheet_name="Sheet1", engine="openpyxl")


def generate_dataset(out_dir: str | Path, n_patients: int = 24, seed: int = 0, pdac_fraction: float = 0.3,
                     min_pdac_patients: int = 5, multi_study_fraction: float = 0.1, sheet_format: str = "xlsx",
                     inplane_voxels: Sequence[int] = (100, 140), inplane_spacing_mm: Sequence[float] = (1.5, 2.2),
                     slices: Sequence[int] = (30, 60), slice_spacing_mm: Sequence[float] = (2.5, 5.0),
                     lesion_radius_mm: Sequence[float] = (12.0, 20.0), out_of_fov_fraction: float = 0.3,
                     threads: int = 1) -> dict:
    """Write the demo data set under `out_dir` in the raw PANORAMA layout; return a summary.

    Layout: images/batch{1,2}/<case>_0000.nii.gz (int16 HU), labels/{manual,automatic}_labels/<case>.nii.gz
    (values 0-6, the image's geometry) and labels/clinical_information.<sheet_format>, written last so
    its presence means the data set is complete. Size and spacing ranges are (min, max); grids grow where
    needed to hold the anatomy; lesion radii of 12-20 mm make 2.4-4 cm tumours, a common size at diagnosis.
    Image and label files of earlier runs that are not part of this data set are removed, so the folder
    always holds exactly one consistent data set.
    """
    if sheet_format not in ("xlsx", "csv"):
        raise ConfigError(f"synthetic data: sheet format must be xlsx or csv, not {sheet_format!r}")
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    patients = _patients(rng, n_patients, seed, pdac_fraction, min_pdac_patients, multi_study_fraction,
                         lesion_radius_mm)
    studies = [(p, s) for p in patients for s in range(1, p.n_studies + 1)]
    n = len(studies)
    traits = zip(_assign(rng, n, BATCH_FOLDERS, (1, 1)), _assign(rng, n, list(LABEL_FOLDERS.values()), (482, 1756)),
                 _assign(rng, n, list(DIRECTIONS), (5, 3, 2)), _assign(rng, n, list(LABEL_PIXEL_TYPES), (7, 2, 1)),
                 _assign(rng, n, (False, True), (1 - out_of_fov_fraction, out_of_fov_fraction)))
    cases = [{"case_id": f"{p.patient_id:06d}_{s:05d}", "study": s, "pdac": p.pdac, "batch": b, "label_folder": f,
              "direction": d, "label_pixel_type": t, "out_of_fov": bool(o)}
             for (p, s), (b, f, d, t, o) in zip(studies, traits)]

    expected = {out_dir / "images" / c["batch"] / f"{c['case_id']}_0000.nii.gz" for c in cases}
    expected |= {out_dir / "labels" / c["label_folder"] / f"{c['case_id']}.nii.gz" for c in cases}
    folders = [out_dir / "images" / b for b in BATCH_FOLDERS] + [out_dir / "labels" / f for f in LABEL_FOLDERS.values()]
    for folder in folders:
        for stale in folder.glob("*.nii.gz") if folder.is_dir() else []:
            if stale not in expected:
                stale.unlink()

    grid_ranges = {"inplane_voxels": inplane_voxels, "inplane_spacing_mm": inplane_spacing_mm,
                   "slices": slices, "slice_spacing_mm": slice_spacing_mm}
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        list(pool.map(lambda c, p: _write_case(c, p, out_dir, seed, grid_ranges), cases, [p for p, _ in studies]))

    sheet_path = out_dir / "labels" / f"clinical_information.{sheet_format}"
    _write_sheet(_sheet(patients, seed), sheet_path)
    return {"out_dir": str(out_dir), "clinical": str(sheet_path), "n_patients": len(patients),
            "n_pdac_patients": sum(p.pdac for p in patients), "n_cases": len(cases),
            "n_pdac_cases": sum(c["pdac"] for c in cases), "cases": cases}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a synthetic data set in the raw PANORAMA layout.")
    parser.add_argument("--out", required=True, type=Path, help="output folder (images/, labels/)")
    parser.add_argument("--n-patients", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sheet-format", choices=("xlsx", "csv"), default="xlsx")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        summary = generate_dataset(args.out, n_patients=args.n_patients, seed=args.seed,
                                   sheet_format=args.sheet_format, threads=args.threads)
    except PanoramaError as e:
        sys.exit(f"ERROR: {e}")
    print(json.dumps({k: v for k, v in summary.items() if k != "cases"}, indent=2))


if __name__ == "__main__":
    main()
