"""The algorithm for grand-challenge (METHOD.md §6): the trained two-stage ensemble exported with everything its
container needs, and the container's entrypoint.

`export_algorithm` writes one folder (results/algorithm/):
  models/          both stages as an nnU-Net results folder, models/<dataset>/<trainer>__<plans>__<configuration>/
                   with plans.json, dataset.json and fold_k/checkpoint_final.pth (only what inference reads), so
                   that nnU-Net's own nnUNetv2_predict opens them too
  config.yaml      the merged config of the run that trained them
  algorithm.json   the code's git commit, and each stage's model folder and folds
  panorama-pdac.tar.gz  the package's source at that commit, with its requirements.lock
  Dockerfile       a pinned CUDA PyTorch image that installs all of it when it is built: grand-challenge runs the
                   container without network

The entrypoint (`python -m panorama_pdac.algorithm`, the image's ENTRYPOINT) reads grand-challenge's layout, one
scan in <input>/images/venous-ct/, and writes <output>/images/pdac-detection-map/<the scan's name>.mha and
<output>/pdac-likelihood.json with predict's own code (TwoStageEnsemble, predict_files) and the settings the
`predict` rule takes from the same config. A job that cannot be done (a scan that cannot be used, no scan or several)
ends with one line on stderr naming the file or folder and exit status 1, no traceback: grand-challenge shows a
failed job the last line of its stderr.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import yaml

from .errors import ConfigError, DataError, PanoramaError
from .io import atomic_path, read_json, write_json, write_text
from .nnunet.datasets import copy_model_files
from .nnunet.env import resolve_device
from .nnunet.training import FINAL
from .predict import (
    DETECTION_MAP,
    LIKELIHOOD,
    CasePrediction,
    PredictSettings,
    TwoStageEnsemble,
    image_stem,
    input_files,
    predict_files,
)
from .settings import predict_settings

SCANS = Path("images/venous-ct")  # PANORAMA's input interface on grand-challenge
DETECTION_MAPS = Path("images/pdac-detection-map")
CONTAINER_FOLDER = "/opt/algorithm"  # where the image holds the exported folder
MODELS, CONFIG, MANIFEST, SOURCE = "models", "config.yaml", "algorithm.json", "panorama-pdac.tar.gz"
SOURCE_PATHS = ("pyproject.toml", "requirements.lock", "src")  # what installing the package needs
# PyTorch's image of the torch the Makefile installs (TORCH_SPEC), CUDA 12 (CUDA 13 needs a driver >= 580).
BASE_IMAGE = "pytorch/pytorch:2.13.0-cuda12.6-cudnn9-runtime"
# What nnU-Net's predictor and ours read from a checkpoint: the optimiser state and the training log, most of the
# file, stay behind.
INFERENCE_KEYS = ("network_weights", "init_args", "trainer_name", "inference_allowed_mirroring_axes")

DOCKERFILE = """\
# The PANORAMA algorithm for grand-challenge, written by `snakemake export_algorithm`: the models beside this file
# and the package at the commit that trained them (the revision label). Build and test it as the README says
# (Submit to grand-challenge). Everything is installed here: grand-challenge runs the container without network.
FROM {base_image}
LABEL org.opencontainers.image.revision="{commit}"

ENV PYTHONUNBUFFERED=1
RUN groupadd --system user && useradd --create-home --no-log-init --system --gid user user

# The package's source at that commit, with the exact versions of its requirements.lock (torch is the image's).
ADD {source} /opt/panorama-pdac/
RUN cd /opt/panorama-pdac \\
    && python -m pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock \\
    && python -m pip install --no-cache-dir --no-deps --no-build-isolation . \\
    && python -c "import panorama_pdac.algorithm, panorama_pdac.nnunet.multitask_trainers"

COPY --chown=user:user {models} {container}/{models}
COPY --chown=user:user {config} {manifest} {container}/
USER user
ENTRYPOINT ["python", "-m", "panorama_pdac.algorithm"]
"""


def export_stage(model_dir: str | os.PathLike, checkpoints: Sequence[str | os.PathLike],
                 models_root: str | os.PathLike) -> dict:
    """One stage's model into `models_root` as nnU-Net lays out its results, so that `nnUNetv2_predict -d
    <dataset> -tr <trainer> -p <plans> -c <configuration>` finds it: plans.json, dataset.json and each fold's
    checkpoint reduced to INFERENCE_KEYS. Returns the folder (within `models_root`) and the folds."""
    import torch

    model_dir = Path(model_dir)
    plans = read_json(model_dir / "plans.json")
    folder, folds = None, []
    for path in checkpoints:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        trainer, configuration = checkpoint["trainer_name"], checkpoint["init_args"]["configuration"]
        folder = folder or Path(plans["dataset_name"]) / f"{trainer}__{plans['plans_name']}__{configuration}"
        folds.append(checkpoint["init_args"]["fold"])
        with atomic_path(Path(models_root) / folder / f"fold_{folds[-1]}" / FINAL) as tmp:
            torch.save({key: checkpoint[key] for key in INFERENCE_KEYS}, tmp)
    copy_model_files(model_dir / "plans.json", model_dir / "dataset.json", Path(models_root) / folder)
    return {"folder": str(folder), "folds": sorted(folds)}


def write_source_archive(repository: str | os.PathLike, commit: str, path: str | os.PathLike) -> None:
    """SOURCE_PATHS of the repository at `commit`, as a .tar.gz (git archive)."""
    with atomic_path(path) as tmp:
        run = subprocess.run(["git", "-C", str(repository), "archive", "--format=tar.gz", "-o", str(tmp), commit,
                              *SOURCE_PATHS], capture_output=True, text=True)
        if run.returncode:
            raise PanoramaError(f"git archive of commit {commit} in {repository} failed: {run.stderr.strip()}")


def export_algorithm(out_dir: str | os.PathLike, stage1: tuple[str | os.PathLike, Sequence[str | os.PathLike]],
                     stage2: tuple[str | os.PathLike, Sequence[str | os.PathLike]], config: Mapping, code: Mapping,
                     repository: str | os.PathLike) -> str:
    """Write the algorithm folder (see the module's docstring). `stage1`, `stage2`: (model folder, the folds'
    checkpoints); `config`: the run's merged config; `code`: identity.code_identity of the workflow in
    `repository`, whose commit the image installs. Returns what the user must read: the folder's size, and a
    warning when the checkout has changes that commit does not hold."""
    if code["commit"] is None:
        raise ConfigError(f"the algorithm's image installs the package at the workflow's git commit, which is "
                          f"unknown ({code['reason']}): export from a git checkout of the workflow")
    out = Path(out_dir)
    models = {"stage1": export_stage(*stage1, out / MODELS), "stage2": export_stage(*stage2, out / MODELS)}
    write_text("# The merged config of the run that trained models/ (every --configfile and --config applied); the "
               "algorithm\n# reads its prediction settings from it, as the predict rule does.\n"
               + yaml.safe_dump(dict(config), sort_keys=False), out / CONFIG)
    write_json({"code": dict(code), "models": models}, out / MANIFEST)
    write_source_archive(repository, code["commit"], out / SOURCE)
    write_text(DOCKERFILE.format(commit=code["commit"], base_image=BASE_IMAGE, source=SOURCE, models=MODELS,
                                 config=CONFIG, manifest=MANIFEST, container=CONTAINER_FOLDER), out / "Dockerfile")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    told = (f"{out}: {size / 1e6:.1f} MB, stage 1 folds {models['stage1']['folds']}, stage 2 folds "
            f"{models['stage2']['folds']}; build the image with  docker build -t panorama-pdac {out}")
    if code["dirty"]:
        told = (f"WARNING: the workflow's checkout has uncommitted changes: the image installs commit "
                f"{code['commit']}, without them\n{told}")
    return told


def grand_challenge_scan(input_dir: str | os.PathLike) -> Path:
    """The one scan of a grand-challenge job: <input>/images/venous-ct/<name>.mha."""
    folder = Path(input_dir) / SCANS
    scans = input_files(folder)
    if len(scans) != 1:
        found = ", ".join(scan.name for scan in scans) or "none"
        raise DataError(folder, f"expected one scan, found {len(scans)} ({found}): grand-challenge gives one per "
                                f"job, and {LIKELIHOOD} holds one likelihood (snakemake predict takes a folder of "
                                "scans)")
    return scans[0]


def load_algorithm(folder: str | os.PathLike) -> tuple[TwoStageEnsemble, PredictSettings]:
    """The exported ensemble, loaded as the predict rule loads it, and predict's settings from the exported
    config."""
    folder = Path(folder)
    models = read_json(folder / MANIFEST)["models"]
    config = yaml.safe_load((folder / CONFIG).read_text())

    def stage(name: str) -> tuple[Path, list[Path]]:
        model = folder / MODELS / models[name]["folder"]
        return model, [model / f"fold_{fold}" / FINAL for fold in models[name]["folds"]]

    ensemble = TwoStageEnsemble.load(*stage("stage1"), *stage("stage2"), resolve_device(config["device"]),
                                     config["predict"]["mirroring"], threads=config["threads"]["predict"])
    return ensemble, PredictSettings(**predict_settings(config))


def run(algorithm_dir: str | os.PathLike, input_dir: str | os.PathLike,
        output_dir: str | os.PathLike) -> CasePrediction:
    """Predict the job's scan and write its outputs where grand-challenge reads them."""
    scan = grand_challenge_scan(input_dir)
    models, settings = load_algorithm(algorithm_dir)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output_dir, prefix=".predict-") as work:
        done, failures = predict_files([scan], work, models, settings)
        if not done:
            raise DataError(scan, failures.message[0])
        [case] = done
        maps, case_dir = output_dir / DETECTION_MAPS, Path(work) / case.case_id
        maps.mkdir(parents=True, exist_ok=True)
        os.replace(case_dir / DETECTION_MAP, maps / f"{image_stem(scan)}.mha")
        os.replace(case_dir / LIKELIHOOD, output_dir / LIKELIHOOD)
    return case


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m panorama_pdac.algorithm",
        description="The PANORAMA algorithm on grand-challenge's folders: the scan INPUT/images/venous-ct/<name>.mha "
                    "to OUTPUT/images/pdac-detection-map/<name>.mha and OUTPUT/pdac-likelihood.json.")
    parser.add_argument("--input", default="/input", help="default: /input")
    parser.add_argument("--output", default="/output", help="default: /output")
    parser.add_argument("--algorithm", default=CONTAINER_FOLDER,
                        help=f"the folder snakemake export_algorithm wrote (default: {CONTAINER_FOLDER}, the image's)")
    args = parser.parse_args(argv)
    try:
        run(args.algorithm, args.input, args.output)
    except PanoramaError as e:
        print(f"ERROR: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
