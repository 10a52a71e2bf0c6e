"""Our per-case steps stay within a worker's memory on the largest real label geometry (issue: PANORAMA scale).

A 1024x1024x600 float64 label map is 5 GB whole, its float32 detection map 2.5 GB; ingestion, stage-1
conversion, the stage-2 crop, the full-size detection map and lesion matching must each finish under
MEMORY_LIMIT_GB of peak resident memory, measured in a fresh process: its VmHWM, the peak of its
own memory. `resource.getrusage`'s ru_maxrss would not do: on Linux a child starts from its parent's resident
size at the fork (a child of a process holding 2 GB reported 2 GB, its VmHWM 9 MB; measured). The files are
streamed to disk a slice at a time, so the test itself never holds a volume.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from fixtures_data import write_sheet

from panorama_pdac.per_case import WORKER_PEAK_MB

MEMORY_LIMIT_GB = WORKER_PEAK_MB / 1000  # what the per-case pools assume one worker needs at most
SIZE_XYZ = (1024, 1024, 600)
SPACING_XYZ = (0.7, 0.7, 1.0)
CASE = "100001_00001"
DETECTION_ROI_XYZ = ((250, 350, 180), (500, 300, 140))  # (start, size): a stage-2 ROI around the pancreas
PANCREAS = (slice(200, 300), slice(400, 600), slice(300, 700))  # (z, y, x): label 4 ...
LESION = (slice(240, 260), slice(480, 520), slice(450, 500))  # ... holding label 1


def _stream_nifti(path: Path, dtype, slice_zyx) -> None:
    """A .nii.gz of SIZE_XYZ written slice by slice; `slice_zyx(z)` gives slice z as a (y, x) array."""
    header = nib.Nifti1Header()
    header.set_data_dtype(dtype)
    header.set_data_shape(SIZE_XYZ)
    header.set_zooms(SPACING_XYZ)
    affine = np.diag([*SPACING_XYZ, 1.0])
    header.set_sform(affine, code=1)
    header.set_qform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header.binaryblock)
        f.write(b"\0" * (int(header["vox_offset"]) - len(header.binaryblock)))
        for z in range(SIZE_XYZ[2]):
            f.write(np.ascontiguousarray(slice_zyx(z), dtype=dtype).tobytes())


def _label_slice(z: int) -> np.ndarray:
    out = np.zeros(SIZE_XYZ[1::-1])
    for region, value in ((PANCREAS, 4), (LESION, 1)):
        if region[0].start <= z < region[0].stop:
            out[region[1:]] = value
    return out


def _detection_slice(z: int) -> np.ndarray:
    """A detection map with one candidate of confidence 0.8 exactly on the lesion."""
    out = np.zeros(SIZE_XYZ[1::-1])
    if LESION[0].start <= z < LESION[0].stop:
        out[LESION[1:]] = 0.8
    return out


def _image_slice(z: int) -> np.ndarray:
    out = np.full(SIZE_XYZ[1::-1], -1000)
    out[150:850, 150:850] = 40 + z % 7
    return out


@pytest.fixture(scope="module")
def large_case(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("large")
    _stream_nifti(root / "images" / f"{CASE}_0000.nii.gz", np.int16, _image_slice)
    _stream_nifti(root / "labels" / "manual_labels" / f"{CASE}.nii.gz", np.float64, _label_slice)
    _stream_nifti(root / "detection_map.nii.gz", np.float32, _detection_slice)
    write_sheet(root / "labels" / "clinical_information.csv", {CASE: True})
    return root


STEPS = {
    "ingestion": """
from panorama_pdac.cases import index_cases
cases = index_cases([f"{root}/images"], f"{root}/labels", f"{root}/labels/clinical_information.csv").cases
out = {"pdac": bool(cases.pdac_voxels.iloc[0])}
""",
    "stage-1 conversion": """
from panorama_pdac.per_case import CaseJob
from panorama_pdac.stage1 import _convert_case
import SimpleITK as sitk
_convert_case(CaseJob(case, {"image": image, "label": label},
                      {"image": f"{root}/low.nii.gz", "label": f"{root}/low_label.nii.gz"},
                      {"spacing_xyz": [4.5, 4.5, 9.0], "pancreas_labels": [1, 4, 5]}))
out = {"pancreas_voxels": int(sitk.GetArrayFromImage(sitk.ReadImage(f"{root}/low_label.nii.gz")).sum())}
""",
    "stage-2 crop": """
from panorama_pdac.per_case import CaseJob
from panorama_pdac.stage2 import _crop_case
import SimpleITK as sitk
_crop_case(CaseJob(case, {"image": image, "label": label}, {"image": f"{root}/crop.nii.gz",
                   "label": f"{root}/crop_label.nii.gz", "roi": f"{root}/roi.json"},
                   {"source": "truth", "margin_mm_xyz": [10, 10, 10], "pancreas_labels": [1, 4, 5]}))
crop = sitk.GetArrayFromImage(sitk.ReadImage(f"{root}/crop_label.nii.gz"))
out = {"crop_shape": list(crop.shape), "lesion_voxels": int((crop == 1).sum())}
""",
    "detection map": f"""
import json
import numpy as np
import SimpleITK as sitk
from panorama_pdac.detection import _detect_case
from panorama_pdac.geometry import Roi
from panorama_pdac.io import read_image_header, read_region
from panorama_pdac.per_case import CaseJob
start_xyz, size_xyz = {DETECTION_ROI_XYZ}
prob = np.zeros(size_xyz[::-1], np.float32)
prob[tuple(slice(r.start - s, r.stop - s) for r, s in zip({LESION}, start_xyz[::-1]))] = 0.9
crop = sitk.GetImageFromArray(prob)
crop.SetSpacing({SPACING_XYZ})
sitk.WriteImage(crop, f"{{root}}/lesion_prob.nii.gz")
with open(f"{{root}}/roi_detection.json", "w") as f:
    json.dump(Roi(start_xyz, size_xyz, (0, 0, 0), (1, 1, 1), (10, 10, 10)).to_json(), f)
settings = {{"threshold": "dynamic-fast", "dynamic_threshold_factor": 2.5, "min_voxels_detection": 10,
            "mask_to_pancreas": False, "pancreas_dilation_mm": 10}}
done = _detect_case(CaseJob(case, {{"lesion_prob": f"{{root}}/lesion_prob.nii.gz", "image": image, "pancreas": None,
                                   "roi": f"{{root}}/roi_detection.json"}},
                            {{"detection_map": f"{{root}}/detection_out.nii.gz"}}, {{"postprocess": settings}}))
written = read_image_header(f"{{root}}/detection_out.nii.gz")
lesion = read_region(written, [r.start for r in {LESION}[::-1]], [r.stop - r.start for r in {LESION}[::-1]])
out = {{"det_max": round(done["det_max"], 3), "size_xyz": list(written.GetSize()),
       "on_lesion": [round(float(v), 3) for v in np.unique(sitk.GetArrayViewFromImage(lesion))]}}
""",
    "lesion matching": """
from panorama_pdac.metrics import _evaluate_one, iou_key
done = _evaluate_one(case, f"{root}/detection_map.nii.gz", label, [0.1])
out = {"pdac": done["pdac"], "lesions": [[round(v, 3) for v in row] for row in done["lesion_results"][iou_key(0.1)]]}
""",
}


def _run_step(code: str, root: Path) -> tuple[dict, float]:
    """Run `code` (which sets `out`) in a fresh interpreter; its result and its peak resident memory (GB)."""
    script = (f"import json\nroot, case = {str(root)!r}, {CASE!r}\n"
              "image = f'{root}/images/{case}_0000.nii.gz'\nlabel = f'{root}/labels/manual_labels/{case}.nii.gz'\n"
              f"{code}\nhwm = next(ln for ln in open('/proc/self/status') if ln.startswith('VmHWM:'))\n"
              "out['peak_gb'] = int(hwm.split()[1]) * 1024 / 1e9\nprint(json.dumps(out))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return out, out.pop("peak_gb")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak memory from /proc")
@pytest.mark.parametrize("step", list(STEPS))
def test_largest_label_geometry_fits_a_worker(large_case, step):
    out, peak_gb = _run_step(STEPS[step], large_case)
    assert peak_gb < MEMORY_LIMIT_GB, f"{step}: peak {peak_gb:.1f} GB"
    lesion_voxels = np.prod([s.stop - s.start for s in LESION])
    if step == "ingestion":
        assert out == {"pdac": True}
    elif step == "stage-1 conversion":
        assert out["pancreas_voxels"] > 0
    elif step == "detection map":  # the crop's candidate, pasted onto the lesion of the full-size map
        assert out == {"det_max": 0.9, "size_xyz": list(SIZE_XYZ), "on_lesion": [0.9]}
    elif step == "lesion matching":  # the one candidate, a true positive of confidence 0.8 and IoU 1
        assert out == {"pdac": True, "lesions": [[1, 0.8, 1.0]]}
    else:  # the ROI around the pancreas, 10 mm beyond it, with the whole lesion in it
        margin_voxels = [int(np.ceil(10 / s)) for s in SPACING_XYZ[::-1]]
        assert out["crop_shape"] == [r.stop - r.start + 2 * m for r, m in zip(PANCREAS, margin_voxels)]
        assert out["lesion_voxels"] == lesion_voxels


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak memory from /proc")
def test_peak_memory_is_the_step_s_own_in_gigabytes():
    """A step holding 0.5 GB reports about that much, whatever this process holds (ru_maxrss would add it)."""
    held = np.ones(1_000_000_000 // 8)  # 1 GB here, at the fork
    out, peak_gb = _run_step("import numpy as np\nblock = np.ones(500_000_000 // 8)\nout = {}", Path("."))
    assert 0.5 < peak_gb < 0.9
    del held
