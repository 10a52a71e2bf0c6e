"""Our per-case steps stay within a worker's memory on the largest real label geometry (issue: PANORAMA scale).

A 1024x1024x600 float64 label map is 5 GB whole; ingestion, stage-1 conversion and the stage-2 crop must each
finish under MEMORY_LIMIT_GB of peak resident memory, measured in a fresh process: its VmHWM, the peak of its
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


def _image_slice(z: int) -> np.ndarray:
    out = np.full(SIZE_XYZ[1::-1], -1000)
    out[150:850, 150:850] = 40 + z % 7
    return out


@pytest.fixture(scope="module")
def large_case(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("large")
    _stream_nifti(root / "images" / f"{CASE}_0000.nii.gz", np.int16, _image_slice)
    _stream_nifti(root / "labels" / "manual_labels" / f"{CASE}.nii.gz", np.float64, _label_slice)
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
