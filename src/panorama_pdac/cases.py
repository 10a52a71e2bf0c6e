"""Find, pair and validate the raw cases: image folders + label repository + clinical sheet -> case table.

Every file in the data folders is accounted for (layout.classify): an image or label read here, a file that
holds image data in a form not read (a problem like any other), or an ignored file, listed in the summary.

Every problem DATA.md lists is detected and named (case, file, what is wrong), all of them in one pass:
with on_invalid="fail" they are raised together, with "skip" the bad cases are left out and listed in
the excluded table. Label voxels are the case truth (PDAC iff a voxel == 1, METHOD.md §1); the sheet
must agree.

Memory stays bounded on the largest real labels (1024x1024 slices, 663 slices, float64): headers are read
alone, and voxels a slab of slices at a time. Reading slab-wise is also what catches a truncated or corrupt
.nii.gz: ITK then fails on the damaged slices, whereas sitk.ReadImage of the whole volume silently returns
zeros or garbage for them.

Axis order: sizes and spacings are (x, y, z) as SimpleITK reports them; slab arrays are (z, y, x).
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import pandas as pd
import SimpleITK as sitk

from .clinical import read_clinical
from .errors import ConfigError, DataError, PanoramaError
from .identity import file_digest, git_state, sha256_json
from .io import read_image_header, read_slabs, read_tsv, write_json, write_tsv
from .labels import LESION, MAX_LABEL, invalid_values
from .layout import (
    EXPECTED,
    IMAGE_SUFFIXES,
    LABEL_FOLDERS,
    RawFile,
    classify,
    folder_files,
    image_folders,
    label_folders,
)

# Far below any real mismatch (smallest voxel 0.37 mm; oblique directions are 0.01 off identity),
# far above the float32 rounding of NIfTI headers written by different tools.
GEOMETRY_TOLERANCE = {"size": 0, "spacing": 1e-4, "origin": 1e-3, "direction": 1e-4}  # mm, mm, unitless
CASE_COLUMNS = ["case_id", "patient_id", "study_id", "image", "label", "label_source", "pdac_voxels",
                "pdac_sheet", "size", "spacing", "image_bytes", "image_sha256", "label_bytes", "label_sha256"]
EXCLUDED_COLUMNS = ["case_id", "file", "problem"]
_SHOWN = 5  # offending values quoted in a message
REPORT_PROBLEMS = 20  # problems the ingestion report shows; excluded.tsv holds them all


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input; case_id is None where a file name does not parse."""

    case_id: str | None
    file: str
    problem: str

    def __str__(self) -> str:
        return f"{self.case_id or '(no case id)'}: {self.file}: {self.problem}"


@dataclass
class CaseIndex:
    cases: pd.DataFrame  # CASE_COLUMNS, one row per valid case, sorted by case id
    excluded: pd.DataFrame  # EXCLUDED_COLUMNS, one row per problem (skip mode)
    problems: list[Problem]
    summary: dict  # counts for the data report; JSON-serialisable


@dataclass(frozen=True)
class _Pair:
    case_id: str
    image: Path
    label: Path
    label_source: str


def _scan(folder: Path, role: str) -> list[RawFile]:
    return [classify(p, role) for p in folder_files(folder)]


def _no_images(entry: str, scanned: list[list[RawFile]], matched: list[Path]) -> str:
    """Why an image folder entry reaches no image, with what it does hold."""
    holding = sorted(f"{d.name}/" for f in matched for d in f.iterdir() if d.is_dir() and not d.name.startswith(".")
                     and any(r.kind == "image" for r in _scan(d, "image")))
    if holding:
        hint = (f"; its subfolders {', '.join(holding[:_SHOWN])} hold images: list them, or use the glob "
                f"{entry.rstrip('/')}/*")
    elif files := [r.path.name for rs in scanned for r in rs]:
        hint = f"; it holds {len(files)} other file(s), e.g. {', '.join(files[:_SHOWN])}"
    else:
        hint = "; it is empty"
    return f"no images here (expected {EXPECTED['image']}){hint}"


def _find_files(image_dirs, labels_dir) -> tuple[dict, dict, list[Problem], list[Path], list[Path]]:
    """Image and label paths by case id (lists: more than one is a problem), problems with files (names that
    do not parse, unsupported formats, archives, second channels), the image folders, and ignored files."""
    images, labels, problems, ignored = defaultdict(list), defaultdict(list), [], []

    def sort(found: list[RawFile], into: defaultdict, source: str | None = None) -> None:
        for f in found:
            if f.kind == "problem":
                problems.append(Problem(f.case_id, str(f.path), f.problem))
            elif f.kind == "ignored":
                ignored.append(f.path)
            else:
                into[f.case_id].append(f.path if source is None else (source, f.path))

    # A folder reached twice (a glob and one of its members) is read once: it holds no duplicated cases.
    scans: dict[Path, tuple[Path, list[RawFile]]] = {}
    for entry, matched in image_folders(image_dirs).items():
        if not matched:
            raise DataError(entry, "no image folder matches this path")
        for f in matched:
            scans.setdefault(f.resolve(), (f, _scan(f, "image")))
        scanned = [scans[f.resolve()][1] for f in matched]
        if not any(r.kind == "image" for rs in scanned for r in rs):
            raise DataError(entry, _no_images(entry, scanned, matched))
    for _, found in scans.values():
        sort(found, images)
    present = label_folders(labels_dir)
    if not present:
        raise DataError(labels_dir, f"neither {' nor '.join(LABEL_FOLDERS.values())} found here "
                                    "(expected a copy of the panorama_labels repository)")
    for source, folder in present.items():
        sort(_scan(folder, "label"), labels, source)
    if not labels:
        raise DataError(labels_dir, f"no label files in {' or '.join(LABEL_FOLDERS.values())} "
                                    f"(expected {EXPECTED['label']})")
    return images, labels, problems, [f for f, _ in scans.values()], ignored


def _pair(images: dict, labels: dict) -> tuple[list[_Pair], list[Problem], list[str]]:
    """Pairs to check, pairing problems, and cases with a label but no image (normal: batch not downloaded)."""
    pairs, problems, label_only = [], [], []
    for case_id in sorted(images.keys() | labels.keys()):
        imgs, lbls = images.get(case_id, []), labels.get(case_id, [])
        if len(imgs) > 1:
            problems.append(Problem(case_id, str(imgs[0]), "the same case id is also in "
                                    + ", ".join(str(p) for p in imgs[1:])))
        if len(lbls) > 1:
            problems.append(Problem(case_id, str(lbls[0][1]), f"label is also in {lbls[1][1]}: "
                                    "manual_labels and automatic_labels must be disjoint"))
        if imgs and not lbls:
            problems.append(Problem(case_id, str(imgs[0]), f"image without a label ({case_id}{IMAGE_SUFFIXES[0]}, "
                                    f"or {', '.join(IMAGE_SUFFIXES[1:])}, in {' or '.join(LABEL_FOLDERS.values())})"))
        if lbls and not imgs:
            label_only.append(case_id)
        if len(imgs) == 1 and len(lbls) == 1:
            pairs.append(_Pair(case_id, imgs[0], lbls[0][1], lbls[0][0]))
    return pairs, problems, label_only


def _not_in_sheet(pairs: list[_Pair], sheet: pd.DataFrame, clinical_path) -> list[Problem]:
    """A case with both files but no sheet row: its sheet-versus-voxel check cannot be made."""
    return [Problem(p.case_id, str(clinical_path), "no row for this case, which has an image and a label: its "
                                                    "lesion voxels cannot be checked against the sheet's PDAC label")
            for p in pairs if p.case_id not in sheet.index]


def _label_content(reader: sitk.ImageFileReader, case_id: str) -> bool:
    """Whether the label has a lesion voxel; DataError if any value is outside 0-6 or not integral
    (labels are float64 or uint16 as often as uint8)."""
    if reader.GetNumberOfComponents() != 1:
        raise DataError(reader.GetFileName(), f"{reader.GetNumberOfComponents()} values per voxel, expected a "
                                              "scalar label map", case_id)
    lesion, bad_values = False, set()
    for slab in read_slabs(reader, case_id):
        bad_values.update(invalid_values(slab)[:_SHOWN].tolist())
        lesion = lesion or bool((slab == LESION).any())
    if bad_values:
        shown = ", ".join(f"{v:g}" for v in sorted(bad_values)[:_SHOWN])
        raise DataError(reader.GetFileName(), f"label values outside 0-{MAX_LABEL} or not whole numbers: {shown}",
                        case_id)
    return lesion


def _numbers(values: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def _geometry_mismatch(image: sitk.ImageFileReader, label: sitk.ImageFileReader) -> list[str]:
    """What differs between the label's grid and the image's, beyond float noise."""
    out = []
    for what, tol in GEOMETRY_TOLERANCE.items():
        getter = f"Get{what.capitalize()}"
        lab, img = np.array(getattr(label, getter)()), np.array(getattr(image, getter)())
        if lab.shape != img.shape or not np.allclose(lab, img, rtol=0, atol=tol):
            out.append(f"{what} {_numbers(lab)} vs image {_numbers(img)}")
    return out


def _check_pair(pair: _Pair, sheet: pd.DataFrame) -> tuple[dict | None, list[Problem]]:
    """Check one image/label pair; returns its case-table row (None if anything is wrong) and its problems."""
    case_id, problems, readers = pair.case_id, [], {}

    def note(err: DataError) -> None:
        problems.append(Problem(case_id, err.path, err.problem))

    for role, path in (("image", pair.image), ("label", pair.label)):
        try:
            readers[role] = read_image_header(path, case_id)
            if readers[role].GetDimension() != 3:
                raise DataError(path, f"expected a 3-D volume, found {readers[role].GetDimension()}-D", case_id)
        except DataError as e:
            note(e)
            readers.pop(role, None)
    if len(readers) == 2 and (diff := _geometry_mismatch(readers["image"], readers["label"])):
        problems.append(Problem(case_id, str(pair.label), "label geometry differs from the image's: "
                                + "; ".join(diff)))
    lesion = None
    try:
        if "image" in readers:
            for _ in read_slabs(readers["image"], case_id):  # reading every slab is the integrity check
                pass
    except DataError as e:
        note(e)
    try:
        if "label" in readers:
            lesion = _label_content(readers["label"], case_id)
    except DataError as e:
        note(e)
    in_sheet = case_id in sheet.index
    if lesion is not None and in_sheet and bool(sheet.at[case_id, "pdac_sheet"]) != lesion:
        what = ("the label has lesion voxels (value 1) but the clinical sheet says non-PDAC" if lesion
                else "the clinical sheet says PDAC but the label has no lesion voxel (value 1)")
        problems.append(Problem(case_id, str(pair.label), what))
    if problems:
        return None, problems
    label = readers["label"]
    # The data's identity (results/provenance.json), in this thread pool and right after the checks read the
    # whole file (so from the page cache): about 2% of their time on a CT, measured.
    image_bytes, image_sha256 = file_digest(pair.image)
    label_bytes, label_sha256 = file_digest(pair.label)
    return {
        "case_id": case_id,
        "patient_id": case_id[:6],
        "study_id": case_id[7:],
        "image": str(pair.image),
        "label": str(pair.label),
        "label_source": pair.label_source,
        "pdac_voxels": lesion,
        "pdac_sheet": bool(sheet.at[case_id, "pdac_sheet"]) if in_sheet else pd.NA,
        "size": "x".join(str(s) for s in label.GetSize()),
        "spacing": "x".join(f"{round(s, 3):g}" for s in label.GetSpacing()),
        "image_bytes": image_bytes,
        "image_sha256": image_sha256,
        "label_bytes": label_bytes,
        "label_sha256": label_sha256,
    }, []


def _check_pairs(pairs: list[_Pair], sheet: pd.DataFrame, threads: int) -> list[tuple[dict | None, list[Problem]]]:
    """_check_pair over a thread pool (ITK's reader and numpy release the GIL), with progress in the log."""
    results, start = [], time.time()
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for done, result in enumerate(pool.map(lambda p: _check_pair(p, sheet), pairs), 1):
            results.append(result)
            if done == len(pairs) or done % max(1, len(pairs) // 10) == 0:
                print(f"checked {done}/{len(pairs)} cases ({time.time() - start:.0f} s)", flush=True)
    return results


def _summary(cases: pd.DataFrame, problems: list[Problem], sheet: pd.DataFrame, images: dict, labels: dict,
             label_only: list[str], folders: list[Path], ignored: list[Path], on_invalid: str) -> dict:
    found = images.keys() | labels.keys()
    manual_non_pdac = cases[(cases["label_source"] == "manual") & cases["pdac_sheet"].eq(False).fillna(False)]
    image_paths = [p for paths in images.values() for p in paths]
    return {
        "on_invalid": on_invalid,
        "image_folders": [str(f) for f in folders],
        "image_files": len(image_paths),
        "image_formats": {s: n for s in IMAGE_SUFFIXES if (n := sum(p.name.lower().endswith(s) for p in image_paths))},
        "label_files": sum(len(v) for v in labels.values()),
        "cases": len(cases),
        "patients": int(cases["patient_id"].nunique()),
        "pdac_cases": int(cases["pdac_voxels"].sum()),
        "non_pdac_cases": int((~cases["pdac_voxels"]).sum()),
        "label_source": {s: int((cases["label_source"] == s).sum()) for s in LABEL_FOLDERS},
        "problems": len(problems),
        "excluded_cases": len({p.case_id for p in problems if p.case_id}),
        "unparsed_files": sum(p.case_id is None for p in problems),
        "sheet_rows": len(sheet),
        # Normal when only some image batches were downloaded: counted, not an error.
        "sheet_rows_without_image": int((~sheet.index.isin(list(images))).sum()),
        "labels_without_image": label_only,
        "not_in_sheet": sorted(found - set(sheet.index)),
        "ignored_files": [str(p) for p in ignored],
        # Manual labels are mostly of PDAC cases; these are the sheet's exceptions, with the voxel truth.
        "manual_labels_sheet_non_pdac": dict(zip(manual_non_pdac["case_id"], manual_non_pdac["pdac_voxels"].tolist())),
    }


def index_cases(
    image_dirs: str | Sequence[str],
    labels_dir: str | os.PathLike,
    clinical_path: str | os.PathLike,
    on_invalid: Literal["fail", "skip"] = "fail",
    threads: int = 1,
) -> CaseIndex:
    """Pair every image with its label and sheet row, validate both files, and build the case table.

    `image_dirs`: folders or glob patterns of folders holding `<patient>_<study>_0000` images (.nii.gz, .nii or
    .mha); `labels_dir`: holds manual_labels/ and automatic_labels/. Every other file there is accounted for
    (layout.classify): one that looks like image data but is not read is a problem, anything else is listed as
    ignored. Raises PanoramaError listing every problem (on_invalid="fail"), or drops the cases that have one
    (on_invalid="skip"); DataError for a missing or empty folder or a bad clinical sheet, which no skipping can
    get round.
    """
    if on_invalid not in ("fail", "skip"):
        raise ConfigError(f"on_invalid must be 'fail' or 'skip', not {on_invalid!r}")
    sheet = read_clinical(clinical_path)
    images, labels, problems, folders, ignored = _find_files(image_dirs, labels_dir)
    pairs, pair_problems, label_only = _pair(images, labels)
    problems += pair_problems + _not_in_sheet(pairs, sheet, clinical_path)
    # A label whose image is there but unusable (another format, a second channel) is accounted for by that problem.
    label_only = [c for c in label_only if c not in {p.case_id for p in problems}]
    print(f"{len(images)} cases with images, {len(labels)} with labels, {len(label_only)} labels without image "
          f"(not downloaded?); checking {len(pairs)} pairs with {threads} thread(s)", flush=True)
    rows = []
    for row, case_problems in _check_pairs(pairs, sheet, threads):
        problems += case_problems
        if row is not None:
            rows.append(row)
    # By case, then the files that name none; each case's problems in the order they were found.
    problems.sort(key=lambda p: (p.case_id is None, p.case_id or ""))
    if problems and on_invalid == "fail":
        raise PanoramaError(f"{len(problems)} problem(s) in the input data (data.on_invalid: skip goes on "
                            "without these cases):\n" + "\n".join(f"  {p}" for p in problems))
    # A case with any problem (its files', its sheet row's, or an unusable file of its own) is left out whole.
    excluded_ids = {p.case_id for p in problems}
    rows = [r for r in rows if r["case_id"] not in excluded_ids]
    cases = pd.DataFrame(rows, columns=CASE_COLUMNS).astype({"pdac_voxels": bool, "pdac_sheet": "boolean"})
    if cases.empty:
        raise PanoramaError(f"no valid case: none of the {len(images)} images has a matching, valid label"
                            + (f" ({len(problems)} problems, e.g. {problems[0]})" if problems else ""))
    excluded = pd.DataFrame([vars(p) for p in problems], columns=EXCLUDED_COLUMNS)
    summary = _summary(cases, problems, sheet, images, labels, label_only, folders, ignored, on_invalid)
    # What was read, beside the per-file digests of the table: the labels clone can move after this run.
    # The sheet's content as read, beside its bytes: an xlsx file carries the time it was saved, so the same
    # table saved twice differs in bytes.
    sheet_bytes, sheet_sha256 = file_digest(clinical_path)
    summary.update(clinical_sheet={"file": Path(clinical_path).name, "bytes": sheet_bytes, "sha256": sheet_sha256,
                                   "content_sha256": sha256_json(sheet.to_dict(orient="split"))},
                   labels_git=git_state(labels_dir, own_repository=True))
    return CaseIndex(cases, excluded, problems, summary)


def _ids(values: Sequence, shown: int = _SHOWN) -> str:
    values = [str(v) for v in values]
    return ", ".join(values[:shown]) + (f" and {len(values) - shown} more" if len(values) > shown else "")


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def ingestion_report(summary: dict, excluded: pd.DataFrame, excluded_tsv: str | os.PathLike,
                     shown: int = REPORT_PROBLEMS) -> str:
    """What a person reads after ingestion (the terminal and the job log): the cases used and excluded, with
    the first `shown` problems, and every other count DATA.md asks for. `excluded` is the excluded table."""
    lines = [f"Ingestion (data.on_invalid: {summary['on_invalid']}): {_plural(summary['cases'], 'case')} used, "
             f"{_plural(summary['patients'], 'patient')}, {summary['pdac_cases']} PDAC and "
             f"{summary['non_pdac_cases']} non-PDAC; images: "
             + ", ".join(f"{n} {s}" for s, n in summary.get("image_formats", {}).items())]
    if len(excluded):
        lines.append(f"{_plural(summary['excluded_cases'], 'case')} excluded, "
                     f"{_plural(summary['unparsed_files'], 'file')} without a case id unusable "
                     f"({_plural(len(excluded), 'problem')}, every one in {excluded_tsv}):")
        lines += [f"  {Problem(r.case_id if isinstance(r.case_id, str) else None, r.file, r.problem)}"
                  for r in excluded.head(shown).itertuples()]
        if len(excluded) > shown:
            lines.append(f"  ... and {len(excluded) - shown} more in {excluded_tsv}")
    else:
        lines.append(f"no case excluded ({excluded_tsv} is empty)")
    label_only = summary["labels_without_image"]
    lines.append(f"{_plural(len(label_only), 'label')} without an image"
                 + (f" (their image batch not downloaded?): {_ids(label_only)}" if label_only else ""))
    lines.append(f"{_plural(summary['sheet_rows_without_image'], 'clinical sheet row')} without an image "
                 f"(of {summary['sheet_rows']})")
    not_in_sheet = summary["not_in_sheet"]
    lines.append(f"{_plural(len(not_in_sheet), 'case')} with files but no clinical sheet row"
                 + (f": {_ids(not_in_sheet)}" if not_in_sheet else ""))
    if ignored := summary.get("ignored_files", []):
        lines.append(f"{_plural(len(ignored), 'other file')} in the data folders ignored (not image data): "
                     + _ids(ignored))
    return "\n".join(lines)


# Lists of the summary shown in full on the report's data page, each under its own heading.
_LISTED = {"labels_without_image": "Labels without an image (their image batch not downloaded?)",
           "not_in_sheet": "Cases with files but no clinical sheet row",
           "ignored_files": "Other files in the data folders, ignored (not image data)"}


def data_summary_sections(summary: dict, excluded: pd.DataFrame, excluded_tsv: str | os.PathLike) -> list:
    """The ingestion's part of the report's data page: the counts, then every exclusion and every listed
    case or file (report_tables.write_html_tables sections)."""
    counts = {k: v for k, v in summary.items() if k not in _LISTED}
    sections = [("Ingestion", counts),
                (f"Excluded: {_plural(summary['excluded_cases'], 'case')}, "
                 f"{_plural(summary['unparsed_files'], 'file')} without a case id ({excluded_tsv})", excluded)]
    for key, heading in _LISTED.items():
        values = summary.get(key, [])
        sections.append((f"{heading}: {len(values)}", ", ".join(map(str, values)) or "none"))
    return sections


def write_case_index(index: CaseIndex, cases_tsv, excluded_tsv, summary_json) -> None:
    write_tsv(index.cases, cases_tsv)
    write_tsv(index.excluded, excluded_tsv)
    write_json(index.summary, summary_json)


def read_case_table(path: str | os.PathLike) -> pd.DataFrame:
    """cases.tsv with its types: ids and digests as text (leading zeros), PDAC columns as (nullable) booleans."""
    return read_tsv(path, dtype={"case_id": str, "patient_id": str, "study_id": str, "image_sha256": str,
                                 "label_sha256": str, "pdac_voxels": bool, "pdac_sheet": "boolean"})
