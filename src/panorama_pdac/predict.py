"""Predict: the trained two-stage ensemble on new CT scans, written in the grand-challenge format (METHOD.md §6).

Per case: stage 1 (its fold ensemble) segments the pancreas on the CT resampled exactly as for training; the
ROI around it (or the whole image, recorded, when nothing is found) is cropped at full resolution; the stage-2
fold ensemble gives the lesion probability on the crop and the PDAC probability; the detection map is made
with the evaluation's post-processing, pasted into a zero map with the input's exact geometry, and the case
likelihood is the configured fusion of the PDAC probability and the map's maximum. Outputs per case:
`{case}/pdac-detection-map.mha` (float32) and `{case}/pdac-likelihood.json` (a bare JSON float).

Models are loaded once per batch. A case whose file cannot be used fails alone, with one sentence in the
failures table; the others go on.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import numpy as np
import pandas as pd
import SimpleITK as sitk

from .detection import detect_lesions, full_size_detection_map
from .errors import DataError, PanoramaError
from .geometry import Roi, crop_to_roi
from .io import read_image, read_image_header, write_image, write_json
from .layout import IMAGE_SUFFIXES
from .nnunet.datasets import CHANNEL
from .scores import fuse
from .stage1 import localise, low_resolution_image
from .stage2 import predict_crop

DETECTION_MAP = "pdac-detection-map.mha"
LIKELIHOOD = "pdac-likelihood.json"
# Any patient CT's voxel lies well inside this; outside it the header is in other units (m, um) or broken,
# and resampling to the stage-1 grid would give an empty or an enormous image.
PLAUSIBLE_SPACING_MM = (0.1, 20.0)
PHASES = ("read", "stage1", "stage2", "postprocess")
PREDICTION_COLUMNS = ["case_id", "likelihood", "cls_prob", "det_max", "roi_fallback"]
FAILURE_COLUMNS = ["case_id", "file", "message"]


@dataclass(frozen=True)
class PredictSettings:
    """Everything besides the models that decides a prediction; the same values the training and the
    cross-validated evaluation used (config stage1.spacing_xyz, stage1.margin_mm_xyz, evaluation.postprocess,
    evaluation.fusion, stage1.roi_min_component_fraction)."""

    spacing_xyz: Sequence[float]
    margin_mm_xyz: Sequence[float]
    postprocess: dict
    fusion: str = "mean"
    min_component_fraction: float = 0.0


class Models(Protocol):
    """The two stages as prediction needs them (tests use cheap stand-ins)."""

    def segment_pancreas(self, low_image: sitk.Image) -> sitk.Image: ...

    def predict_crop(self, crop: sitk.Image) -> tuple[sitk.Image, float]: ...


class TwoStageEnsemble:
    """The stage-1 and stage-2 fold ensembles as nnU-Net predictors, loaded once and used for every case."""

    def __init__(self, stage1, stage2):
        self.stage1, self.stage2 = stage1, stage2

    @classmethod
    def load(cls, stage1_dir: str | os.PathLike, stage1_checkpoints: Sequence[str | os.PathLike],
             stage2_dir: str | os.PathLike, stage2_checkpoints: Sequence[str | os.PathLike], device,
             mirroring: bool, threads: int = 1) -> TwoStageEnsemble:
        """`stage*_dir` are model folders (plans.json, dataset.json); the checkpoints, one per fold, form each
        stage's ensemble. Stage 1 is nnU-Net's stock network, stage 2 the multi-task network. `threads` bounds
        torch's threads to the job's share of the machine."""
        # Imported here: nnU-Net's trainer stack takes seconds to import, and input checks need none of it.
        import torch

        from .nnunet.inference import load_predictor
        from .nnunet.multitask_trainers import Step3JointTrainer

        torch.set_num_threads(max(1, threads))
        return cls(load_predictor(stage1_dir, list(stage1_checkpoints), device, mirroring),
                   load_predictor(stage2_dir, list(stage2_checkpoints), device, mirroring,
                                  trainer_class=Step3JointTrainer))

    def segment_pancreas(self, low_image: sitk.Image) -> sitk.Image:
        """Binary pancreas mask on `low_image`'s grid (nnU-Net averages the folds' logits)."""
        array = sitk.GetArrayFromImage(low_image).astype(np.float32)[None]
        segmentation = self.stage1.predict_single_npy_array(array, {"spacing": list(low_image.GetSpacing())[::-1]})
        mask = sitk.GetImageFromArray(np.asarray(segmentation, dtype=np.uint8))
        mask.CopyInformation(low_image)
        return mask

    def predict_crop(self, crop: sitk.Image) -> tuple[sitk.Image, float]:
        return predict_crop(self.stage2, crop)


@dataclass
class CasePrediction:
    """One finished case: what predictions.csv lists, and the seconds each phase took."""

    case_id: str
    likelihood: float
    cls_prob: float
    det_max: float
    roi: Roi  # where stage 2 looked
    seconds: dict[str, float] = field(default_factory=dict)  # per phase (PHASES)

    @property
    def roi_fallback(self) -> bool:
        return self.roi.fallback


def image_stem(path: str | os.PathLike) -> str:
    """An input file's name without its image suffix."""
    name = Path(path).name
    suffix = next((s for s in IMAGE_SUFFIXES if name.endswith(s)), None)
    if suffix is None:
        raise DataError(path, f"not a CT file this predictor reads (expected {', '.join(IMAGE_SUFFIXES)})")
    return name[: -len(suffix)]


def case_id_of(path: str | os.PathLike) -> str:
    """Case id of an input file: its name without the image suffix and without a trailing _0000."""
    case_id = image_stem(path).removesuffix(CHANNEL)
    if not case_id:
        raise DataError(path, "file name gives an empty case id")
    return case_id


def input_files(folder: str | os.PathLike) -> list[Path]:
    """The files of an input folder, sorted; hidden files (.DS_Store, editors' backups) are not inputs."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "input folder does not exist")
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def read_ct(path: str | os.PathLike, case_id: str) -> sitk.Image:
    """Read a CT after checking its header: a 3D volume of scalar voxels with a plausible spacing."""
    header = read_image_header(path, case_id)
    size, spacing = header.GetSize(), header.GetSpacing()
    if header.GetDimension() != 3:
        raise DataError(path, f"expected a 3D CT volume, got a {header.GetDimension()}D image of size {size}",
                        case_id)
    if min(size) < 2:
        raise DataError(path, f"expected a 3D CT volume, got a single slice (size x, y, z {size})", case_id)
    if header.GetNumberOfComponents() != 1:
        raise DataError(path, f"expected one intensity per voxel, got {header.GetNumberOfComponents()} components "
                              "per voxel (a colour or vector image, not a CT)", case_id)
    lo, hi = PLAUSIBLE_SPACING_MM
    if not all(np.isfinite(s) and lo <= s <= hi for s in spacing):
        raise DataError(path, f"implausible voxel spacing (x, y, z) {tuple(spacing)} mm: a CT's is between {lo} and "
                              f"{hi} mm (is the header in other units?)", case_id)
    return read_image(path, case_id)


@contextlib.contextmanager
def _timed(seconds: dict[str, float], phase: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    seconds[phase] = time.perf_counter() - start


def predict_case(models: Models, path: str | os.PathLike, case_id: str, case_dir: str | os.PathLike,
                 settings: PredictSettings) -> CasePrediction:
    """Run the whole chain on one CT file and write its detection map and likelihood into `case_dir`."""
    seconds: dict[str, float] = {}
    with _timed(seconds, "read"):
        image = read_ct(path, case_id)
    with _timed(seconds, "stage1"):
        stage1 = localise(models.segment_pancreas(low_resolution_image(image, settings.spacing_xyz)), image,
                          settings.margin_mm_xyz, settings.min_component_fraction)
        roi = stage1.roi
    with _timed(seconds, "stage2"):
        lesion, cls_prob = models.predict_crop(crop_to_roi(image, roi))
    with _timed(seconds, "postprocess"):
        det = detect_lesions(lesion, settings.postprocess, stage1.pancreas)
        det_max = float(det.max())
        likelihood = fuse(cls_prob, det_max, settings.fusion)
        detection = full_size_detection_map(det, roi, image)
        write_image(detection, Path(case_dir) / DETECTION_MAP)
        write_json(likelihood, Path(case_dir) / LIKELIHOOD)
    if roi.fallback:
        print(f"{case_id}: no pancreas found by stage 1 ({roi.fallback_reason}); stage 2 ran on the whole image",
              flush=True)
    return CasePrediction(case_id, likelihood, float(cls_prob), det_max, roi, seconds)


def _remove_outputs(case_dir: Path) -> None:
    """A failed case must not keep an earlier run's outputs, which would look like this run's."""
    for name in (DETECTION_MAP, LIKELIHOOD):
        (case_dir / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: someone else's files, leave them
        case_dir.rmdir()


def _cases_of(paths: Sequence[str | os.PathLike]) -> tuple[dict[str, Path], list[dict]]:
    """Case id per usable file name; failures for other files and for ids that several files share."""
    by_id: dict[str, list[Path]] = {}
    failures = []
    for path in map(Path, paths):
        try:
            by_id.setdefault(case_id_of(path), []).append(path)
        except DataError as e:
            failures.append({"case_id": path.name.split(".")[0], "file": str(path), "message": e.problem})
    cases = {}
    for case_id, files in by_id.items():
        if len(files) == 1:
            cases[case_id] = files[0]
            continue
        names = ", ".join(f.name for f in files)
        failures += [{"case_id": case_id, "file": str(f), "message": f"case id {case_id} comes from several files "
                      f"({names}); rename all but one"} for f in files]
    return cases, failures


def predict_files(paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, models: Models,
                  settings: PredictSettings) -> tuple[list[CasePrediction], pd.DataFrame]:
    """Predict every file; return the finished cases and the failures table (case_id, file, message).

    Problems with an input (DataError) fail its case only. Any other error in a case is also recorded (with the
    traceback in the log), so one strange scan cannot stop a batch, unless no case succeeds at all: that points
    at the setup, not at the scans, and is raised.
    """
    out_dir = Path(out_dir)
    cases, failures = _cases_of(paths)
    done, unexpected = [], []
    print(f"predict: {len(cases)} cases, {len(failures)} files not usable", flush=True)
    for case_id, path in sorted(cases.items()):
        try:
            result = predict_case(models, path, case_id, out_dir / case_id, settings)
        except DataError as e:
            message = e.problem
        except Exception as e:  # noqa: BLE001 - recorded per case, see the docstring
            traceback.print_exc()
            message = f"unexpected {type(e).__name__}: {e} (traceback in the log)"
            unexpected.append(f"{case_id}: {message}")
        else:
            done.append(result)
            print(f"{case_id}: likelihood {result.likelihood:.3f} (PDAC probability {result.cls_prob:.3f}, "
                  f"detection max {result.det_max:.3f}) in {sum(result.seconds.values()):.1f} s", flush=True)
            continue
        print(f"{case_id}: FAILED: {path}: {message}", flush=True)
        failures.append({"case_id": case_id, "file": str(path), "message": message})
        _remove_outputs(out_dir / case_id)
    if unexpected and not done:
        raise PanoramaError("no case could be predicted; errors that are not about the input files:\n  "
                            + "\n  ".join(unexpected))
    return done, pd.DataFrame(failures, columns=FAILURE_COLUMNS).sort_values(["case_id", "file"], ignore_index=True)


def predictions_table(predictions: Sequence[CasePrediction]) -> pd.DataFrame:
    """One row per finished case: case_id, likelihood, cls_prob, det_max, roi_fallback."""
    return pd.DataFrame([{c: getattr(p, c) for c in PREDICTION_COLUMNS} for p in predictions],
                        columns=PREDICTION_COLUMNS)
