"""The quarantine split: rows that broke a row-level rule go apart, with the names of the rules
they broke; the others go on."""

from __future__ import annotations

import numpy as np
import pandas as pd

DQ_RULES_COLUMN = "dq_rules"


def _split(
    frame: pd.DataFrame, row_hits: dict[int, tuple[str, np.ndarray]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean rows and quarantined rows (with ``dq_rules``) of the original frame."""
    if not row_hits:
        quarantined = frame.iloc[0:0].reset_index(drop=True)
        quarantined[DQ_RULES_COLUMN] = pd.Series(dtype="str")
        return frame.reset_index(drop=True), quarantined
    ordered = [row_hits[index] for index in sorted(row_hits)]  # suite order within dq_rules
    positions = np.unique(np.concatenate([hits for _, hits in ordered]))
    labels = np.full(positions.size, "", dtype=object)
    for name, hits in ordered:
        hit = np.isin(positions, hits, assume_unique=True)
        current = labels[hit]
        labels[hit] = np.where(current == "", name, current + "; " + name)
    keep = np.ones(len(frame), dtype=bool)
    keep[positions] = False
    clean = frame.iloc[np.flatnonzero(keep)].reset_index(drop=True)
    quarantined = frame.iloc[positions].reset_index(drop=True)
    quarantined[DQ_RULES_COLUMN] = pd.Series(labels, dtype="str")
    return clean, quarantined
