"""Stage 1 through nnU-Net's API on a tiny data set: conversion, planning with overrides, training into our
folder, resuming a killed job, and loading the model folder with nnU-Net's own predictor."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch

from panorama_pdac.errors import ConfigError
from panorama_pdac.io import read_json, write_image
from panorama_pdac.nnunet.env import configure_nnunet_env
from panorama_pdac.nnunet.planning import override_configuration, plan_and_preprocess
from panorama_pdac.nnunet.seeding import Seeding
from panorama_pdac.nnunet.training import LATEST, Schedule, train_fold
from panorama_pdac.nnunet.datasets import copy_model_files, raw_dataset_dir
from panorama_pdac.stage1 import DATASET_ID, DATASET_NAME, build_stage1_dataset

SEEDING = Seeding(seed=0)
TINY = {"patch_size": [8, 16, 16], "batch_size": 2, "base_features": 4, "max_features": 16, "n_conv_per_stage": 1}


def _case(tmp, case_id, rng, shift):
    label = np.zeros((16, 48, 48), np.uint8)  # (z, y, x)
    label[6:10, 20:28, 10 + shift:34 + shift] = 4
    label[7:9, 22:26, 14 + shift:18 + shift] = 1
    image = rng.normal(0, 20, label.shape) + np.where(label == 4, 110, np.where(label == 1, 50, 0))
    img = sitk.GetImageFromArray(image.astype(np.int16))
    img.SetSpacing((2.0, 2.0, 4.5))
    img.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    lab = sitk.GetImageFromArray(label)
    lab.CopyInformation(img)
    write_image(img, tmp / "images" / f"{case_id}_0000.nii.gz")
    write_image(lab, tmp / "labels" / f"{case_id}.nii.gz")
    return {"case_id": case_id, "image": str(tmp / "images" / f"{case_id}_0000.nii.gz"),
            "label": str(tmp / "labels" / f"{case_id}.nii.gz")}


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stage1")
    rng = np.random.default_rng(0)
    cases = pd.DataFrame([_case(tmp, f"10000{i}_00001", rng, i) for i in range(6)])
    root = tmp / "nnunet"
    configure_nnunet_env(root, threads=1)
    dataset_json = build_stage1_dataset(cases, root, (4.5, 4.5, 9.0), (1, 4, 5), threads=2)
    ids = list(cases.case_id)
    splits = [{"train": ids[2:], "val": ids[:2]}, {"train": ids[:4], "val": ids[4:]}]
    plans = plan_and_preprocess(DATASET_ID, "ExperimentPlanner", "3d_fullres", TINY, splits, num_processes=1)
    model = tmp / "model"
    copy_model_files(plans, dataset_json, model)
    return {"tmp": tmp, "cases": cases, "root": root, "model": model, "ids": ids}


def test_conversion_resamples_and_binarises(stage1):
    raw = raw_dataset_dir(stage1["root"], DATASET_NAME)
    img = sitk.ReadImage(str(raw / "imagesTr" / f"{stage1['ids'][0]}_0000.nii.gz"))
    lab = sitk.ReadImage(str(raw / "labelsTr" / f"{stage1['ids'][0]}.nii.gz"))
    assert img.GetSpacing() == pytest.approx((4.5, 4.5, 9.0))
    assert img.GetDirection() == pytest.approx((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    assert lab.GetSize() == img.GetSize()
    assert set(np.unique(sitk.GetArrayFromImage(lab))) == {0, 1}
    assert read_json(raw / "dataset.json")["numTraining"] == 6


def test_conversion_redoes_only_changed_cases(stage1, capsys):
    build_stage1_dataset(stage1["cases"], stage1["root"], (4.5, 4.5, 9.0), (1, 4, 5))
    assert "6 up to date, 0 to do" in capsys.readouterr().out
    os.utime(stage1["cases"].image[3])  # a newer input file
    build_stage1_dataset(stage1["cases"], stage1["root"], (4.5, 4.5, 9.0), (1, 4, 5))
    assert "5 up to date, 1 to do" in capsys.readouterr().out


def test_plan_overrides_reach_the_plans(stage1):
    conf = read_json(stage1["model"] / "plans.json")["configurations"]["3d_fullres"]
    assert conf["batch_size"] == 2
    arch = conf["architecture"]["arch_kwargs"]
    assert arch["features_per_stage"][0] == 4 and max(arch["features_per_stage"]) <= 16
    assert set(arch["n_conv_per_stage"]) == {1}
    assert len(arch["strides"]) == arch["n_stages"] == len(arch["features_per_stage"])


def test_spacing_override_is_the_planners_target_spacing(stage1):
    ids = stage1["ids"]
    coarse = [18.0, 9.0, 9.0]  # (z, y, x) mm: twice the conversion grid's 9 x 4.5 x 4.5
    plans = plan_and_preprocess(DATASET_ID, "ExperimentPlanner", "3d_fullres", {**TINY, "spacing": coarse},
                                [{"train": ids[2:], "val": ids[:2]}], num_processes=1, plans_name="CoarsePlans")
    conf = read_json(plans)["configurations"]["3d_fullres"]
    default = read_json(stage1["model"] / "plans.json")["configurations"]["3d_fullres"]
    assert default["spacing"] == [9.0, 4.5, 4.5] and conf["spacing"] == coarse
    # the preprocessed grid follows: about half the voxels per axis of the default plan's
    assert np.allclose(np.array(conf["median_image_size_in_voxels"]) * 2,
                       default["median_image_size_in_voxels"], atol=2)
    with pytest.raises(ConfigError, match="3d_fullres only"):
        plan_and_preprocess(DATASET_ID, "ExperimentPlanner", "3d_lowres", {"spacing": coarse}, [], num_processes=1)


def test_override_patch_size_recomputes_topology():
    plans = {"configurations": {"c": {"spacing": [1.5, 0.75, 0.75], "patch_size": [8, 8, 8], "batch_size": 2,
                                      "architecture": {"arch_kwargs": {
                                          "n_stages": 2, "features_per_stage": [32, 64], "strides": [[1, 1, 1], [2, 2, 2]],
                                          "kernel_sizes": [[3, 3, 3]] * 2, "n_conv_per_stage": [2, 2],
                                          "n_conv_per_stage_decoder": [2]}}}}}
    out = override_configuration(plans, "c", {"patch_size": [56, 192, 352], "batch_dice": True}
                                 )["configurations"]["c"]
    arch = out["architecture"]["arch_kwargs"]
    assert out["patch_size"] == [56, 192, 352]
    assert arch["n_stages"] == 6 and arch["features_per_stage"] == [32, 64, 64, 64, 64, 64]  # capped at the old max
    assert arch["n_conv_per_stage"] == [2] * 6 and arch["n_conv_per_stage_decoder"] == [2] * 5
    assert out["batch_dice"] is True and out["batch_size"] == 2
    assert plans["configurations"]["c"]["patch_size"] == [8, 8, 8]  # input untouched


class _Killed(Exception):
    pass


def _killed_training(stage1, monkeypatch, out: Path, epoch: int) -> tuple[tuple, Schedule]:
    """Train fold 0 of the stage-1 model into `out` as a job killed at the end of `epoch` (its
    checkpoint_latest.pth saved); returns the `train_fold` arguments before the schedule, and the schedule."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    configure_nnunet_env(stage1["root"], threads=1)
    args = (nnUNetTrainer, stage1["model"] / "plans.json", stage1["model"] / "dataset.json", "3d_fullres", 0, out)
    schedule = Schedule(num_epochs=3, iterations_per_epoch=2, val_iterations_per_epoch=1, save_every=1)
    original = nnUNetTrainer.on_epoch_end

    def killed(self):
        original(self)
        if self.current_epoch == epoch:
            raise _Killed

    monkeypatch.setattr(nnUNetTrainer, "on_epoch_end", killed)
    with pytest.raises(_Killed):
        train_fold(*args, schedule, torch.device("cpu"), SEEDING)
    monkeypatch.setattr(nnUNetTrainer, "on_epoch_end", original)
    return args, schedule


def _started_epochs(log: str) -> list[int]:
    return [int(e) for e in re.findall(r"^\S+ \S+ Epoch (\d+)\s*$", log, flags=re.M)]


def test_training_resumes_from_latest_checkpoint(stage1, monkeypatch):
    out = stage1["model"] / "fold_0"
    args, schedule = _killed_training(stage1, monkeypatch, out, epoch=2)
    assert torch.load(out / LATEST, weights_only=False)["current_epoch"] == 2

    final = train_fold(*args, schedule, torch.device("cpu"), SEEDING)
    log = (out / "training_log.txt").read_text()
    assert "Resuming from" in log
    assert _started_epochs(log) == [0, 1, 2]  # epochs 0-1 before the kill, then only epoch 2 after the resume
    assert torch.load(final, weights_only=False)["current_epoch"] == 3
    assert not (out / LATEST).exists() and (out / "progress.png").is_file()


def test_checkpoint_of_other_settings_is_not_resumed(stage1, monkeypatch):
    out = stage1["tmp"] / "settings_changed"
    args, schedule = _killed_training(stage1, monkeypatch, out, epoch=1)
    assert (out / LATEST).is_file()

    # The user changes the learning rate and reruns: the killed run's checkpoint must not be continued.
    final = train_fold(*args, dataclasses.replace(schedule, initial_lr=0.003), torch.device("cpu"), SEEDING)
    log = (out / "training_log.txt").read_text()
    assert "Resuming from" not in log
    assert "Not resuming from" in log and "(schedule); training starts afresh" in log
    assert _started_epochs(log) == [0, 0, 1, 2]  # epoch 0 before the kill, then all three epochs afresh
    assert torch.load(final, weights_only=False)["current_epoch"] == 3


def test_model_folder_loads_with_nnunets_own_predictor(stage1):
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    configure_nnunet_env(stage1["root"], threads=1)
    train_fold(nnUNetTrainer, stage1["model"] / "plans.json", stage1["model"] / "dataset.json", "3d_fullres", 1,
               stage1["model"] / "fold_1", Schedule(1, 1, 1), torch.device("cpu"), SEEDING)
    predictor = nnUNetPredictor(device=torch.device("cpu"), use_mirroring=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(stage1["model"]), use_folds=(1,))
    raw = raw_dataset_dir(stage1["root"], DATASET_NAME)
    out = stage1["tmp"] / "pred"
    out.mkdir()
    predictor.predict_from_files_sequential([[str(raw / "imagesTr" / f"{stage1['ids'][0]}_0000.nii.gz")]],
                                            [str(out / stage1["ids"][0])], False, True, None)
    pred = sitk.ReadImage(str(out / f"{stage1['ids'][0]}.nii.gz"))
    ref = sitk.ReadImage(str(raw / "imagesTr" / f"{stage1['ids'][0]}_0000.nii.gz"))
    assert pred.GetSize() == ref.GetSize() and pred.GetDirection() == pytest.approx(ref.GetDirection())


def _train_and_predict(stage1, out: Path, seeding: Seeding) -> tuple[Path, np.ndarray]:
    """Fold 0 trained into `out`; its cross-validated mask of a validation case."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from panorama_pdac.nnunet.inference import load_predictor
    from panorama_pdac.stage1 import predict_validation_cases

    final = train_fold(nnUNetTrainer, stage1["model"] / "plans.json", stage1["model"] / "dataset.json",
                       "3d_fullres", 0, out, Schedule(2, 3, 1), torch.device("cpu"), seeding)
    predictor = load_predictor(stage1["model"], [final], torch.device("cpu"), mirroring=False)
    raw = raw_dataset_dir(stage1["root"], DATASET_NAME)
    mask, = predict_validation_cases(predictor, stage1["ids"][:1], raw, out / "cv")
    return final, sitk.GetArrayFromImage(sitk.ReadImage(str(mask)))


@pytest.mark.parametrize("workers", [0, 2])
def test_seeded_training_gives_identical_weights_and_cv_masks(stage1, tmp_path, monkeypatch, workers):
    from checkpoints import differing_tensors

    configure_nnunet_env(stage1["root"], threads=1)
    monkeypatch.setenv("nnUNet_n_proc_DA", str(workers))  # augmentation_workers, for this test only
    a, mask_a = _train_and_predict(stage1, tmp_path / "a", Seeding(7))
    b, mask_b = _train_and_predict(stage1, tmp_path / "b", Seeding(7))
    assert differing_tensors(a, b) == []
    assert np.array_equal(mask_a, mask_b)
    other, _ = _train_and_predict(stage1, tmp_path / "other_seed", Seeding(8))
    assert differing_tensors(a, other)  # the seed decides: the comparison above can fail
    assert read_json(tmp_path / "a" / "training_settings.json")["seeding"] == {"seed": 7, "deterministic": True}
