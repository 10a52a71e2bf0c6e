"""PANORAMA label values (METHOD.md §1) and the one check that a label map holds nothing else."""

from __future__ import annotations

import numpy as np

LESION = 1  # PDAC lesion; a case is PDAC iff its label map has this value
MAX_LABEL = 6  # 2 veins, 3 arteries, 4 pancreas, 5 pancreatic duct, 6 common bile duct
N_LABELS = MAX_LABEL + 1
PARENCHYMA = 4
PANCREAS = (1, 4, 5)  # lesion, parenchyma, duct: stage 1's target


def invalid_values(values: np.ndarray) -> np.ndarray:
    """The distinct values that are not a whole number in 0-6 (NaN and inf included). Real label files
    are float64 or uint16, so this must run before any cast, which would turn 2.5 or 300 silently into
    valid-looking labels."""
    with np.errstate(invalid="ignore"):
        as_int = values.astype(np.int32)
    return np.unique(values[(as_int < 0) | (as_int > MAX_LABEL) | (as_int != values)])
