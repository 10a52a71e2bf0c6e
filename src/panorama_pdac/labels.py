"""PANORAMA label values (METHOD.md §1) and the one check that a label map holds nothing else."""

from __future__ import annotations

import numpy as np

# Every value of a label map, by the names stage 2's nnU-Net dataset gives them.
NAMES = {"background": 0, "PDAC": 1, "veins": 2, "arteries": 3, "pancreas": 4, "pancreatic_duct": 5,
         "common_bile_duct": 6}
LESION = NAMES["PDAC"]  # a case is PDAC iff its label map has this value
PARENCHYMA = NAMES["pancreas"]
MAX_LABEL = max(NAMES.values())
N_LABELS = MAX_LABEL + 1
PANCREAS = (LESION, PARENCHYMA, NAMES["pancreatic_duct"])  # stage 1's target


def invalid_values(values: np.ndarray) -> np.ndarray:
    """The distinct values that are not a whole number in 0-6 (NaN and inf included). Real label files
    are float64 or uint16, so this must run before any cast, which would turn 2.5 or 300 silently into
    valid-looking labels."""
    with np.errstate(invalid="ignore"):
        as_int = values.astype(np.int32)
    return np.unique(values[(as_int < 0) | (as_int > MAX_LABEL) | (as_int != values)])
