"""nnU-Net's raw dataset layout and model folders, as both stages write them."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

FILE_ENDING = ".nii.gz"
CHANNEL = "_0000"  # the CT's channel tag in imagesTr/<case>_0000.nii.gz


def raw_dataset_dir(nnunet_root: str | os.PathLike, dataset_name: str) -> Path:
    return Path(nnunet_root) / "raw" / dataset_name


def image_file(dataset_dir: str | os.PathLike, case_id: str) -> Path:
    return Path(dataset_dir) / "imagesTr" / f"{case_id}{CHANNEL}{FILE_ENDING}"


def label_file(dataset_dir: str | os.PathLike, case_id: str) -> Path:
    return Path(dataset_dir) / "labelsTr" / f"{case_id}{FILE_ENDING}"


def write_dataset_json(dataset_dir: Path, labels: dict[str, int], num_cases: int, description: str) -> None:
    """nnU-Net's own dataset.json writer, into a temporary folder first so the file appears whole."""
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    with tempfile.TemporaryDirectory(dir=dataset_dir) as tmp:
        generate_dataset_json(tmp, {0: "CT"}, labels, num_cases, FILE_ENDING, description=description,
                              license="see the PANORAMA data licence")
        os.replace(Path(tmp) / "dataset.json", dataset_dir / "dataset.json")


def finish_raw_dataset(out: Path, case_ids: list[str], labels: dict[str, int], description: str) -> Path:
    """Remove the files of cases no longer in the case table (they must not reach nnU-Net's planner), then
    write dataset.json, last, as the mark of a complete raw dataset."""
    keep = {image_file(out, c).name for c in case_ids} | {label_file(out, c).name for c in case_ids}
    for stale in [*(out / "imagesTr").iterdir(), *(out / "labelsTr").iterdir()]:
        if stale.name not in keep:
            stale.unlink()
    write_dataset_json(out, labels, len(case_ids), description)
    return out / "dataset.json"


def copy_model_files(preprocessed_plans: Path, dataset_json: Path, model_dir: Path) -> None:
    """The model folder is a standard nnU-Net model folder: plans.json and dataset.json beside fold_k/."""
    model_dir.mkdir(parents=True, exist_ok=True)
    for src, name in ((preprocessed_plans, "plans.json"), (dataset_json, "dataset.json")):
        tmp = model_dir / f".{name}.tmp"
        shutil.copyfile(src, tmp)
        os.replace(tmp, model_dir / name)
