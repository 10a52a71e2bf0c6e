"""The published results we compare against, with where each number comes from.

Only numbers printed in the papers go here; the detection map alone was not reported, so it has none.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PublishedResult:
    auroc: float
    ap: float
    source: str


WINNER_TABLE4 = "hidden validation, 100 cases, Table 4 of the winner's paper"

# Keyed by case score, as in our results: "cls" = classification head alone, "fused" = with the
# detection map's maximum. AP is the same in both rows because it is computed from the detection map.
TABLE4: dict[str, PublishedResult] = {
    "cls": PublishedResult(auroc=0.9671, ap=0.8011, source=WINNER_TABLE4),
    "fused": PublishedResult(auroc=0.9833, ap=0.8011, source=WINNER_TABLE4),
}
