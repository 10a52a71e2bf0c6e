"""What our own per-case steps cost at PANORAMA scale (2238 cases), measured on painted real-label cases.

Run by hand, not by pytest:

    .venv/bin/python benchmarks/scale.py --labels ../shared/data/panorama_labels_sample --work /tmp/scale --cases 12

Each per-case job of the workflow (the function its `run_per_case` runs for one case) runs for every chosen case
in a fresh process, one at a time: wall seconds, CPU seconds and peak resident memory (the process's VmHWM;
`resource.getrusage` would count its parent's resident size at the fork) per case and step. No network runs:
nnU-Net's own work (training, the sliding window) is in none of these rows. The stage-1 "prediction" is the
case's own low-resolution pancreas label; "stage-2 prediction I/O" is the work around the sliding window
(reading the crop, the float32 copy the network gets, writing the lesion map); the detection map is made from
a lesion-probability map drawn from the crop's label. Images are painted onto the label maps
(`panorama_pdac.painted`) into --work unless --images holds them.

--cases N picks N label maps spread over their sizes, the largest always among them. The extrapolation to 2238
cases divides the summed CPU seconds by the node's cores (every core busy), and says how many workers fit the
node's memory at the largest peak. Settings (spacings, margins, post-processing) come from config/config.yaml
and the given --configfile overlays, as in the workflow. Run it with another checkout's `src` on PYTHONPATH to
measure that code on the same cases.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
PANORAMA_CASES = 2238


def _chosen_labels(labels_dir: Path, n: int | None) -> dict[str, Path]:
    from panorama_pdac.io import read_image_header
    from panorama_pdac.painted import label_files

    files = label_files(labels_dir)
    voxels = {c: int(np.prod(read_image_header(p, c).GetSize())) for c, p in files.items()}
    ordered = sorted(files, key=lambda c: (voxels[c], c))
    if n is not None and n < len(ordered):
        ordered = [ordered[int(round(i))] for i in np.linspace(0, len(ordered) - 1, n)]
    return {c: files[c] for c in ordered}


# One per-case step: (case, paths, config) -> None, run in its own process.
def _ingestion(case: str, p: dict, config: dict) -> None:
    from panorama_pdac.cases import _check_pair, _Pair
    from panorama_pdac.clinical import read_clinical

    row, problems = _check_pair(_Pair(case, Path(p["image"]), Path(p["label"]), "manual"),
                                read_clinical(p["clinical"]))
    if row is None:
        raise RuntimeError(f"{case}: {problems}")


def _conversion(case: str, p: dict, config: dict) -> None:
    from panorama_pdac.per_case import CaseJob
    from panorama_pdac.stage1 import _convert_case

    _convert_case(CaseJob(case, {"image": p["image"], "label": p["label"]},
                          {"image": p["low_image"], "label": p["low_label"]},
                          {"spacing_xyz": config["stage1"]["spacing_xyz"],
                           "pancreas_labels": config["stage1"]["pancreas_labels"]}))


def _roi(case: str, p: dict, config: dict) -> None:
    from panorama_pdac.per_case import CaseJob
    from panorama_pdac.stage1 import _localise_case

    _localise_case(CaseJob(case, {"prediction": p["low_label"], "truth": p["low_label"], "image": p["image"],
                                  "label": p["label"]}, {"roi": p["roi"], "pancreas": p["pancreas"]},
                           {"margin_mm_xyz": config["stage1"]["margin_mm_xyz"],
                            "min_component_fraction": config["stage1"]["roi_min_component_fraction"]}))


def _crop(case: str, p: dict, config: dict) -> None:
    from panorama_pdac.per_case import CaseJob
    from panorama_pdac.stage2 import _crop_case

    _crop_case(CaseJob(case, {"image": p["image"], "label": p["label"], "roi": p["roi"]},
                       {"image": p["crop_image"], "label": p["crop_label"], "roi": p["crop_roi"]},
                       {"source": "cv", "margin_mm_xyz": config["stage1"]["margin_mm_xyz"],
                        "pancreas_labels": config["stage1"]["pancreas_labels"]}))


def _prediction_io(case: str, p: dict, config: dict) -> None:
    from panorama_pdac.io import write_image
    from panorama_pdac.stage2 import crop_for_inference

    crop, _ = crop_for_inference(p["image"], p["roi"], case)
    network_input = sitk.GetArrayFromImage(crop).astype("float32")[None]
    label = sitk.GetArrayViewFromImage(sitk.ReadImage(p["crop_label"]))  # stands in for the network's output
    lesion = sitk.GetImageFromArray(np.where(label == 1, 0.9, np.where(label == 4, 0.02, 0.0)).astype(np.float32))
    lesion.CopyInformation(crop)
    write_image(lesion, p["lesion_prob"])
    del network_input


def _detection(case: str, p: dict, config: dict) -> None:
    from panorama_pdac.detection import _detect_case
    from panorama_pdac.per_case import CaseJob

    _detect_case(CaseJob(case, {"lesion_prob": p["lesion_prob"], "image": p["image"], "roi": p["roi"],
                                "pancreas": p["pancreas"]}, {"detection_map": p["detection_map"]},
                         {"postprocess": config["evaluation"]["postprocess"]}))


def _evaluation(case: str, p: dict, config: dict) -> None:
    from panorama_pdac.metrics import _evaluate_one

    _evaluate_one(case, p["detection_map"], p["label"], tuple(config["evaluation"]["iou_thresholds"]))


STEPS = {"ingestion checks": _ingestion, "stage-1 conversion": _conversion, "ROI (localise)": _roi,
         "stage-2 crop": _crop, "stage-2 prediction I/O": _prediction_io, "detection map": _detection,
         "per-case evaluation": _evaluation}


def _measured(step: str, case: str, paths: dict, config: dict) -> dict:
    start, cpu = time.perf_counter(), time.process_time()
    STEPS[step](case, paths, config)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    hwm = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    return {"step": step, "case": case, "seconds": seconds, "cpu_seconds": cpu,
            "peak_gb": int(hwm.split()[1]) * 1024 / 1e9}


def _paths(work: Path, case: str, image: Path, label: Path, clinical: Path) -> dict:
    names = {"low_image": "stage1/{}_0000.nii.gz", "low_label": "stage1/{}.nii.gz", "roi": "roi/{}.json",
             "pancreas": "roi/{}_pancreas.nii.gz", "crop_image": "stage2/{}_0000.nii.gz",
             "crop_label": "stage2/{}.nii.gz", "crop_roi": "stage2/{}_roi.json", "lesion_prob": "cv/{}_lesion.nii.gz",
             "detection_map": "detection/{}.nii.gz"}
    paths = {k: str(work / v.format(case)) for k, v in names.items()}
    for path in paths.values():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    return {"image": str(image), "label": str(label), "clinical": str(clinical), **paths}


def summary_table(runs: pd.DataFrame, node_cores: int, node_memory_gb: float) -> pd.DataFrame:
    """Per step: seconds per case (median, max), CPU seconds per case (mean), the largest peak memory, the
    workers a node's memory holds at that peak, and hours for PANORAMA_CASES cases on the node's cores."""
    rows = []
    for step, g in runs.groupby("step", sort=False):
        peak = g.peak_gb.max()
        rows.append({"step": step, "s_per_case_median": g.seconds.median(), "s_per_case_max": g.seconds.max(),
                     "cpu_s_per_case_mean": g.cpu_seconds.mean(), "peak_gb_max": peak,
                     "workers_in_node_memory": int(node_memory_gb // peak),
                     f"hours_{PANORAMA_CASES}_cases_{node_cores}_cores":
                         g.cpu_seconds.mean() * PANORAMA_CASES / node_cores / 3600})
    table = pd.DataFrame(rows)
    total = {"step": "all steps", **{c: table[c].sum() for c in table.columns if c.startswith(("s_", "cpu_", "hours"))},
             "peak_gb_max": table.peak_gb_max.max(), "workers_in_node_memory": table.workers_in_node_memory.min()}
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, required=True, help="a clone of the labels repository (or the sample)")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (painted images, outputs)")
    parser.add_argument("--images", type=Path, help="folder of <case>_0000.nii.gz images (default: painted in --work)")
    parser.add_argument("--cases", type=int, help="this many label maps spread over their sizes (default: all)")
    parser.add_argument("--configfile", type=Path, nargs="*", default=[], help="overlays of config/config.yaml")
    parser.add_argument("--node-cores", type=int, default=16)
    parser.add_argument("--node-memory-gb", type=float, default=128.0)
    parser.add_argument("--out", type=Path, help="write the per-case measurements here (TSV)")
    args = parser.parse_args()

    from panorama_pdac.config_check import merged_config_files
    from panorama_pdac.io import read_image_header
    from panorama_pdac.painted import paint_labels_folder

    config = merged_config_files([REPO / "config" / "config.yaml", *args.configfile])
    labels = _chosen_labels(args.labels, args.cases)
    images = args.images
    if images is None:
        images = args.work / "images"
        started = time.perf_counter()
        paint_labels_folder(args.labels, images, threads=1, cases=list(labels), manifest=args.work / "painted.tsv")
        print(f"painted {len(labels)} images in {time.perf_counter() - started:.0f} s", flush=True)
    clinical = args.labels / "clinical_information.xlsx"
    paths = {c: _paths(args.work / "out", c, images / f"{c}_0000.nii.gz", label, clinical)
             for c, label in labels.items()}
    runs = []
    # A fresh process per task: its peak memory is that step's alone.
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=1) as pool:
        for step in STEPS:
            for case in labels:
                runs.append(pool.submit(_measured, step, case, paths[case], config).result())
                print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in runs[-1].items()}),
                      flush=True)
    runs = pd.DataFrame(runs)
    if args.out:
        runs.to_csv(args.out, sep="\t", index=False)
    largest = list(labels)[-1]
    size = "x".join(map(str, read_image_header(paths[largest]["image"], largest).GetSize()))
    print(f"\n{len(labels)} cases (largest {largest}: {size} voxels), one at a time; node: {args.node_cores} cores, "
          f"{args.node_memory_gb:g} GB")
    print(summary_table(runs, args.node_cores, args.node_memory_gb).to_markdown(index=False, floatfmt=".2f"))


if __name__ == "__main__":
    main()
