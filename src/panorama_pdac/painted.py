"""Label-painted data: venous-phase CT painted onto real PANORAMA label maps.

The CT images are not public outside the challenge, the labels are. Painting each label map
(`ct_painting.paint_ct`) gives image/label pairs with real geometry (sizes up to 1024x1024x663, flipped
and oblique directions), real organ shapes and real lesions, so the pipeline can be exercised at full
scale without the images. Output images go where a user's image batch would: `<case>_0000.nii.gz`.

Memory per case (and per thread): the label is read a slab at a time into uint8 (`io.read_label`), and
painting then needs about 9 bytes a voxel.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import SimpleITK as sitk

from .ct_painting import paint_ct
from .errors import DataError, PanoramaError
from .io import read_label, write_image
from .layout import LABEL_FOLDERS
from .per_case import CaseJob, run_per_case


def label_files(labels_dir: str | Path, cases: Iterable[str] | None = None) -> dict[str, Path]:
    """Case id -> label file under `labels_dir`/{manual,automatic}_labels, optionally only `cases`.

    A case in both folders, or a requested case without a label file, is a data error.
    """
    found: dict[str, Path] = {}
    for folder in LABEL_FOLDERS.values():
        for path in sorted((Path(labels_dir) / folder).glob("*.nii.gz")):
            case_id = path.name[: -len(".nii.gz")]
            if case_id in found:
                raise DataError(path, f"case also labelled in {found[case_id]} (label folders must be disjoint)",
                                case_id)
            found[case_id] = path
    if cases is None:
        return found
    wanted = list(cases)
    missing = [c for c in wanted if c not in found]
    if missing:
        raise DataError(labels_dir, f"no label file for {len(missing)} requested case(s): {', '.join(missing[:5])}")
    return {c: found[c] for c in wanted}


def paint_case(label_path: str | Path, image_path: str | Path, case_id: str, seed: int = 0) -> None:
    """Paint one label file into a CT image with the label's exact geometry."""
    label = read_label(label_path, case_id)
    # crc32, not hash(): Python salts string hashes per process.
    rng = np.random.default_rng([seed, zlib.crc32(case_id.encode())])
    image = sitk.GetImageFromArray(paint_ct(sitk.GetArrayViewFromImage(label), label.GetSpacing(), rng))
    image.CopyInformation(label)
    write_image(image, image_path)


def paint_labels_folder(labels_dir: str | Path, out_dir: str | Path, seed: int = 0, threads: int = 1,
                        cases: Iterable[str] | None = None, manifest: str | Path | None = None) -> list[Path]:
    """Paint `out_dir`/<case>_0000.nii.gz for every label file (or only `cases`); return the image paths.

    Each image depends only on its label file, `seed` and its case id, so a rerun repaints only the
    cases whose label file changed (signatures in `manifest`, by default beside `out_dir`).
    """
    out_dir = Path(out_dir)
    labels = label_files(labels_dir, cases)
    jobs = [CaseJob(c, {"label": str(p)}, {"image": str(out_dir / f"{c}_0000.nii.gz")}, {"seed": seed})
            for c, p in labels.items()]
    run_per_case(jobs, lambda j: paint_case(Path(j.inputs["label"]), Path(j.outputs["image"]), j.case_id, seed=seed),
                 manifest or out_dir.parent / f"{out_dir.name}.tsv", threads=threads, label="painted images")
    return [Path(j.outputs["image"]) for j in jobs]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Paint venous-phase CT images onto PANORAMA label maps.")
    parser.add_argument("--labels", required=True, type=Path, help="folder holding manual_labels/, automatic_labels/")
    parser.add_argument("--out", required=True, type=Path, help="folder for the <case>_0000.nii.gz images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cases", nargs="*", help="only these case ids (default: every label file)")
    args = parser.parse_args(argv)
    try:
        images = paint_labels_folder(args.labels, args.out, seed=args.seed, threads=args.threads, cases=args.cases)
    except PanoramaError as e:
        sys.exit(f"ERROR: {e}")
    print(f"{len(images)} painted images in {args.out}")


if __name__ == "__main__":
    main()
