"""Label-painted data: CT painted onto label maps keeps their exact geometry, checks their values."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from panorama_pdac.ct_painting import VENOUS_PHASE
from panorama_pdac.errors import DataError
from panorama_pdac.painted import main, paint_labels_folder

# Half the painted parenchyma-lesion contrast: what partial volume leaves of it in a small lesion.
HYPO_ATTENUATION = (VENOUS_PHASE.pancreas - VENOUS_PHASE.lesion) / 2

REAL_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "panorama_labels_sample"
# The two smallest real files: a uint16 manual label with a lesion, a float64 automatic one without.
REAL_CASES = {"100226_00001": "manual_labels", "101902_00001": "automatic_labels"}
GEOMETRY = ("GetSize", "GetSpacing", "GetOrigin", "GetDirection")


def _write_label(labels_dir: Path, case_id: str, values: np.ndarray, folder: str = "automatic_labels") -> Path:
    """A float64 label file with flipped x and y, as many real ones are."""
    image = sitk.GetImageFromArray(values.astype(np.float64))
    image.SetSpacing((0.8, 0.8, 2.5))
    image.SetOrigin((300.0, 250.0, -40.0))
    image.SetDirection((-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
    path = labels_dir / folder / f"{case_id}.nii.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def _toy_labels() -> np.ndarray:
    labels = np.zeros((12, 40, 48))
    labels[3:9, 10:30, 8:40] = 4
    labels[5:7, 15:25, 20:30] = 1
    labels[:, 32:38, 5:11] = 2
    labels[:, 32:38, 30:36] = 3
    return labels


def _same_geometry(a: sitk.Image, b: sitk.Image) -> bool:
    return all(getattr(a, g)() == getattr(b, g)() for g in GEOMETRY)


@pytest.mark.real_sample
def test_real_label_maps_keep_their_geometry_and_get_venous_phase_contrast(tmp_path):
    if not REAL_SAMPLE.is_dir():
        pytest.skip(f"real label sample not found at {REAL_SAMPLE}")
    images = paint_labels_folder(REAL_SAMPLE, tmp_path, seed=0, threads=2, cases=list(REAL_CASES))
    assert [p.name for p in images] == [f"{c}_0000.nii.gz" for c in REAL_CASES]
    for case_id, folder in REAL_CASES.items():
        label = sitk.ReadImage(str(REAL_SAMPLE / folder / f"{case_id}.nii.gz"))
        image = sitk.ReadImage(str(tmp_path / f"{case_id}_0000.nii.gz"))
        assert image.GetPixelID() == sitk.sitkInt16
        assert _same_geometry(image, label), case_id
        ct, labels = sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(label)
        pancreas = ct[labels == 4].mean()
        assert min(ct[labels == 2].mean(), ct[labels == 3].mean()) > pancreas + 30, case_id
        if (labels == 1).any():
            assert ct[labels == 1].mean() < pancreas - HYPO_ATTENUATION, case_id


def test_flipped_float64_label_is_painted_on_its_own_grid(tmp_path):
    label_path = _write_label(tmp_path / "labels", "100001_00001", _toy_labels())
    [image_path] = paint_labels_folder(tmp_path / "labels", tmp_path / "images", seed=4)
    label, image = sitk.ReadImage(str(label_path)), sitk.ReadImage(str(image_path))
    assert image_path.name == "100001_00001_0000.nii.gz"
    assert image.GetPixelID() == sitk.sitkInt16 and _same_geometry(image, label)
    ct, labels = sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(label)
    assert ct[labels == 3].mean() > ct[labels == 4].mean() > ct[labels == 1].mean()


def test_deterministic_per_seed_and_case_and_resumable(tmp_path):
    labels_dir = tmp_path / "labels"
    _write_label(labels_dir, "100001_00001", _toy_labels())
    _write_label(labels_dir, "100002_00001", _toy_labels(), folder="manual_labels")
    first = paint_labels_folder(labels_dir, tmp_path / "a", seed=1)
    again = paint_labels_folder(labels_dir, tmp_path / "b", seed=1, threads=2)
    other = paint_labels_folder(labels_dir, tmp_path / "c", seed=2)
    arrays = [[sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in run] for run in (first, again, other)]
    assert all(np.array_equal(a, b) for a, b in zip(arrays[0], arrays[1]))
    assert not any(np.array_equal(a, b) for a, b in zip(arrays[0], arrays[2]))
    assert not np.array_equal(*arrays[0]), "same labels, different case: different noise"

    stamp = first[0].stat().st_mtime_ns
    first[1].unlink()
    assert paint_labels_folder(labels_dir, tmp_path / "a", seed=1) == first
    assert first[0].stat().st_mtime_ns == stamp, "finished images are not repainted"
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(first[1]))), arrays[0][1])


@pytest.mark.parametrize("bad_value", [2.5, 7.0, -1.0])
def test_label_values_are_checked_before_the_cast(tmp_path, bad_value):
    values = _toy_labels()
    values[0, 0, 0] = bad_value
    path = _write_label(tmp_path / "labels", "100001_00001", values)
    with pytest.raises(DataError, match="integers in 0-6") as error:
        paint_labels_folder(tmp_path / "labels", tmp_path / "images")
    assert str(path) in str(error.value) and "100001_00001" in str(error.value)
    assert not list((tmp_path / "images").glob("*"))


def test_label_folder_problems_name_the_files(tmp_path):
    labels_dir = tmp_path / "labels"
    manual = _write_label(labels_dir, "100001_00001", _toy_labels(), folder="manual_labels")
    with pytest.raises(DataError, match="no label file"):
        paint_labels_folder(labels_dir, tmp_path / "images", cases=["100009_00001"])
    (labels_dir / "automatic_labels").mkdir()
    shutil.copy(manual, labels_dir / "automatic_labels" / manual.name)
    with pytest.raises(DataError, match="disjoint"):
        paint_labels_folder(labels_dir, tmp_path / "images")


def test_command_line(tmp_path, capsys):
    _write_label(tmp_path / "labels", "100001_00001", _toy_labels())
    main(["--labels", str(tmp_path / "labels"), "--out", str(tmp_path / "images"), "--seed", "3", "--threads", "2"])
    assert (tmp_path / "images" / "100001_00001_0000.nii.gz").is_file()
    assert "1 painted images" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="ERROR"):
        main(["--labels", str(tmp_path / "labels"), "--out", str(tmp_path / "images"), "--cases", "100002_00001"])
