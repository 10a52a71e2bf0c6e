"""The grand-challenge algorithm: the export (inference files only, the run's config, the source at its commit, a
Dockerfile on the torch we install), its entrypoint on grand-challenge's folders (predict's likelihood, one line
naming a scan it cannot use), and the exported stage-2 model opened by nnU-Net's own nnUNetv2_predict."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import yaml
from picai_eval.analysis_utils import parse_detection_map
from picai_eval.image_utils import read_prediction
from workflow_runner import REPO, e2e_config, snakemake

from panorama_pdac.algorithm import (
    BASE_IMAGE,
    CONFIG,
    DETECTION_MAPS,
    INFERENCE_KEYS,
    MANIFEST,
    MODELS,
    SCANS,
    SOURCE,
    SOURCE_PATHS,
    export_algorithm,
    main,
)
from panorama_pdac.errors import ConfigError
from panorama_pdac.identity import code_identity
from panorama_pdac.labels import LESION
from panorama_pdac.nnunet.ext_trainer import FOLDER
from panorama_pdac.nnunet.multitask_trainers import STEP_TRAINERS
from panorama_pdac.predict import LIKELIHOOD, PredictSettings, TwoStageEnsemble, predict_files
from panorama_pdac.settings import predict_settings
from panorama_pdac.stage2 import DATASET_NAME as STAGE2_DATASET


@pytest.mark.parametrize("scans, found", [((), "found 0 (none)"), (("a.mha", "b.mha"), "found 2 (a.mha, b.mha)")])
def test_a_job_takes_exactly_one_scan(tmp_path, capsys, scans, found):
    (tmp_path / "input" / SCANS).mkdir(parents=True)
    for name in scans:
        (tmp_path / "input" / SCANS / name).write_bytes(b"")
    assert main(["--input", str(tmp_path / "input"), "--output", str(tmp_path / "output"),
                 "--algorithm", str(tmp_path / "no_models")]) == 1
    [line] = capsys.readouterr().err.splitlines()  # grand-challenge shows a failed job its last line
    assert line.startswith(f"ERROR: {tmp_path / 'input' / SCANS}: expected one scan, {found}")


def test_a_missing_scan_folder_is_named(tmp_path, capsys):
    assert main(["--input", str(tmp_path), "--output", str(tmp_path / "output")]) == 1
    assert capsys.readouterr().err == f"ERROR: {tmp_path / SCANS}: input folder does not exist\n"


def test_export_needs_the_commit_the_image_installs(tmp_path):
    code = {"project": "panorama-pdac", "version": "0.1.0", "commit": None, "dirty": None,
            "reason": "fatal: not a git repository"}
    with pytest.raises(ConfigError, match="export from a git checkout"):
        export_algorithm(tmp_path / "algorithm", (tmp_path, []), (tmp_path, []), {}, code, tmp_path)
    assert not (tmp_path / "algorithm").exists()


def test_the_base_image_holds_the_torch_the_makefile_installs():
    torch_version = re.search(r"^TORCH_SPEC \?= torch==(\S+)$", (REPO / "Makefile").read_text(), re.M)[1]
    assert BASE_IMAGE.startswith(f"pytorch/pytorch:{torch_version}-cuda")


def test_nnunets_external_trainer_search_finds_every_step_trainer_in_our_folder():
    """As nnU-Net searches the folders of nnUNet_extTrainer (nnunetv2.utilities.find_objects)."""
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class

    for trainer in STEP_TRAINERS.values():
        assert recursive_find_python_class(FOLDER, trainer.__name__, None, base_folder=FOLDER,
                                           cleanup_imports_from_base_folder=True) is trainer


# ---- with the end-to-end workflow's models


@pytest.fixture(scope="module")
def algorithm(workflow_run) -> Path:
    snakemake(workflow_run, "--cores", "1", "export_algorithm")
    return workflow_run / "results" / "algorithm"


def _exported_files(algorithm: Path) -> set[str]:
    return {str(p.relative_to(algorithm)) for p in algorithm.rglob("*") if p.is_file() and not p.name.startswith(".")}


@pytest.mark.e2e
def test_export_holds_the_inference_files_the_config_and_the_source_at_its_commit(algorithm, workflow_run):
    results = workflow_run / "results"
    manifest = json.loads((algorithm / MANIFEST).read_text())
    stage_files = {"stage1": ("stage1", "fold_{}/checkpoint_final.pth"),
                   "stage2": ("stage2/ce", "fold_{}/step3/checkpoint_final.pth")}
    expected = {"Dockerfile", CONFIG, MANIFEST, SOURCE}
    for stage, (source, checkpoint) in stage_files.items():
        folder, folds = f"{MODELS}/{manifest['models'][stage]['folder']}", manifest["models"][stage]["folds"]
        assert folds == [0, 1]
        expected |= {f"{folder}/plans.json", f"{folder}/dataset.json"}
        for fold in folds:
            expected.add(f"{folder}/fold_{fold}/checkpoint_final.pth")
            exported = torch.load(algorithm / folder / f"fold_{fold}/checkpoint_final.pth", weights_only=False)
            trained = torch.load(results / source / checkpoint.format(fold), weights_only=False)
            assert set(exported) == set(INFERENCE_KEYS)
            for name, weights in trained["network_weights"].items():
                assert torch.equal(exported["network_weights"][name], weights), name
    assert manifest["models"]["stage2"]["folder"] == f"{STAGE2_DATASET}/Step3JointTrainer__nnUNetPlans__3d_fullres"
    assert _exported_files(algorithm) == expected

    assert manifest["code"] == code_identity(REPO)
    log = (results / "logs" / "export_algorithm.log").read_text()
    assert ("uncommitted changes" in log) == manifest["code"]["dirty"]
    commit = manifest["code"]["commit"]
    tree = subprocess.run(["git", "-C", str(REPO), "ls-tree", "-r", "--name-only", commit, *SOURCE_PATHS],
                          capture_output=True, text=True, check=True).stdout.split()
    with tarfile.open(algorithm / SOURCE) as archive:
        assert sorted(m.name for m in archive.getmembers() if m.isfile()) == sorted(tree)
    dockerfile = (algorithm / "Dockerfile").read_text()
    assert f"FROM {BASE_IMAGE}\n" in dockerfile and f'revision="{commit}"' in dockerfile
    assert dockerfile.rstrip().endswith('ENTRYPOINT ["python", "-m", "panorama_pdac.algorithm"]')
    exported_config = yaml.safe_load((algorithm / CONFIG).read_text())
    assert {k: exported_config[k] for k in e2e_config()} == e2e_config()  # (Snakemake adds the schema's defaults)


def _as_mha(nifti: Path, target: Path) -> Path:
    image = sitk.ReadImage(str(nifti))
    for key in image.GetMetaDataKeys():  # NIfTI header fields that MetaImage cannot hold
        image.EraseMetaData(key)
    target.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(target))
    return target


def _run_entrypoint(algorithm: Path, job: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "panorama_pdac.algorithm", "--algorithm", str(algorithm),
                           "--input", str(job / "input"), "--output", str(job / "output")],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.e2e
def test_entrypoint_on_grand_challenge_folders_gives_predicts_likelihood(algorithm, workflow_run, tmp_path):
    results = workflow_run / "results"
    scan = _as_mha(sorted(results.glob("synthetic/images/*/*_0000.nii.gz"))[0],
                   tmp_path / "job" / "input" / SCANS / "7c1e-venous-ct.mha")
    run = _run_entrypoint(algorithm, tmp_path / "job")
    assert run.returncode == 0, run.stderr[-3000:]

    out = tmp_path / "job" / "output"
    assert {str(p.relative_to(out)) for p in out.rglob("*")} == {
        "images", str(DETECTION_MAPS), str(DETECTION_MAPS / scan.name), LIKELIHOOD}
    detection_map = out / DETECTION_MAPS / scan.name
    det, reference = sitk.ReadImage(str(detection_map)), sitk.ReadImage(str(scan))
    assert (det.GetSize(), det.GetSpacing(), det.GetOrigin(), det.GetDirection()) == (
        reference.GetSize(), reference.GetSpacing(), reference.GetOrigin(), reference.GetDirection())
    parse_detection_map(read_prediction(detection_map))  # as picai_eval reads a detection map
    likelihood = json.loads((out / LIKELIHOOD).read_text())
    assert isinstance(likelihood, float)

    # predict's own path on the same scan: the run's models as trained, the settings from the run's config
    config = e2e_config()
    stage2 = results / "stage2" / config["predict"]["variant"]
    models = TwoStageEnsemble.load(results / "stage1", sorted(results.glob("stage1/fold_*/checkpoint_final.pth")),
                                   stage2, sorted(stage2.glob("fold_*/step3/checkpoint_final.pth")),
                                   torch.device("cpu"), config["predict"]["mirroring"])
    [predicted], _ = predict_files([scan], tmp_path / "predict", models, PredictSettings(**predict_settings(config)))
    assert likelihood == pytest.approx(predicted.likelihood, abs=1e-6)


@pytest.mark.e2e
def test_entrypoint_names_an_unreadable_scan_in_one_line(algorithm, tmp_path):
    scans = tmp_path / "job" / "input" / SCANS
    scans.mkdir(parents=True)
    (scans / "truncated.mha").write_bytes(b"ObjectType = Image\nNDims = 3\n")
    run = _run_entrypoint(algorithm, tmp_path / "job")
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert run.stderr.splitlines()[-1] == f"ERROR: {scans / 'truncated.mha'}: unreadable or corrupt image header"
    assert not [p for p in (tmp_path / "job" / "output").rglob("*")]


def _torchvision_imports() -> bool:
    return subprocess.run([sys.executable, "-c", "import torchvision"], capture_output=True).returncode == 0


NNUNET_ROUTES = {
    # nnU-Net's own command, finding our trainer through the environment variable
    "nnUNet_extTrainer": ([str(Path(sys.executable).parent / "nnUNetv2_predict")], {"nnUNet_extTrainer": FOLDER}),
    # the same command with our trainers known by name (panorama-nnunet-predict)
    "panorama-nnunet-predict": ([sys.executable, "-m", "panorama_pdac.nnunet.nnunet_predict"], {}),
}


@pytest.mark.e2e
@pytest.mark.parametrize("route", sorted(NNUNET_ROUTES))
def test_nnunets_predict_gives_the_lesion_segmentation_of_the_exported_stage2_model(algorithm, workflow_run,
                                                                                     tmp_path, route):
    from panorama_pdac.nnunet.inference import load_predictor
    from panorama_pdac.nnunet.multitask_inference import predict_case
    from panorama_pdac.nnunet.multitask_trainers import Step3JointTrainer

    if route == "nnUNet_extTrainer" and not _torchvision_imports():
        pytest.skip("nnU-Net's trainer lookup imports torchvision, which does not import with this torch "
                    "(a torchvision built for another torch): panorama-nnunet-predict is the way here")
    crops = workflow_run / "results" / "stage2" / "nnunet" / "raw" / STAGE2_DATASET / "imagesTr"
    crop = sorted(crops.glob("*_0000.nii.gz"))[0]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / crop.name).symlink_to(crop)
    command, env = NNUNET_ROUTES[route]
    run = subprocess.run([*command, "-d", STAGE2_DATASET, "-c", "3d_fullres", "-tr", "Step3JointTrainer", "-f", "0",
                          "1", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-device", "cpu", "-npp", "0",
                          "-nps", "0", "--save_probabilities", "--disable_tta", "--disable_progress_bar"],
                         env={**os.environ, "nnUNet_results": str(algorithm / MODELS), **env},
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]

    case = crop.name.removesuffix("_0000.nii.gz")
    segmentation, image = sitk.ReadImage(str(tmp_path / "out" / f"{case}.nii.gz")), sitk.ReadImage(str(crop))
    assert (segmentation.GetSize(), segmentation.GetSpacing(), segmentation.GetOrigin()) == (
        image.GetSize(), image.GetSpacing(), image.GetOrigin())
    model = algorithm / MODELS / json.loads((algorithm / MANIFEST).read_text())["models"]["stage2"]["folder"]
    labels = json.loads((model / "dataset.json").read_text())["labels"]
    assert set(np.unique(sitk.GetArrayFromImage(segmentation))) <= set(labels.values())
    # its lesion channel is our stage-2 ensemble's lesion probability (nnU-Net's command resamples and softmaxes the
    # half-precision logits of its sliding window, ours float32 ones: they agree to about 1e-3)
    ours = load_predictor(model, [model / f"fold_{k}/checkpoint_final.pth" for k in (0, 1)], torch.device("cpu"),
                          mirroring=False, trainer_class=Step3JointTrainer)
    lesion, _ = predict_case(ours, image_files=[crop])
    nnunet_lesion = np.load(tmp_path / "out" / f"{case}.npz")["probabilities"][LESION]
    np.testing.assert_allclose(nnunet_lesion, lesion, atol=5e-3)
