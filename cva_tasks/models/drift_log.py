"""Feature drift checks of a model kind, kept per day in the lake.

The churn kind checks every day it is not due for training on schedule whether a key
feature's population stability index (PSI) against its champion's reference passes
``CVA_CHURN_PSI_THRESHOLD`` (:func:`cva_tasks.models.churn.training.drift_due`). The
figures used to be only logged; :func:`record_drift` keeps them as
``drift/<kind>/ds=YYYY-MM-DD/psi.json`` (a rerun of the day replaces the file) and
:func:`read_drift` gives them back, oldest first, for the "Customer value" page.

Grain: one record per kind per day the check ran. A day the kind trained on schedule
(or had no champion yet) has no record: no check ran.

Importing this module imports nothing heavy (the API server reads it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date
from typing import Any

from cva_tasks import storage
from cva_tasks.lake import Lake


def drift_record(
    kind: str,
    ds: date,
    champion_version: str,
    psi: Mapping[str, float],
    threshold: float,
) -> dict[str, Any]:
    """The record of one drift check.

    Returns:
        ``kind``, ``as_of_date`` (ISO), ``champion_version`` (the reference's model),
        ``threshold``, ``psi`` (feature -> PSI, a non-finite value as None, sorted by
        feature), ``over_threshold`` (features whose PSI passes the threshold, sorted)
        and ``max_psi`` with its ``max_feature`` (None when no PSI is finite).
    """
    finite = {
        name: float(value)
        for name, value in psi.items()
        if value is not None and math.isfinite(float(value))
    }
    top = max(finite, key=lambda name: finite[name]) if finite else None
    return {
        "kind": kind,
        "as_of_date": ds.isoformat(),
        "champion_version": champion_version,
        "threshold": float(threshold),
        "psi": {name: finite.get(name) for name in sorted(psi)},
        "over_threshold": sorted(name for name, value in finite.items() if value > threshold),
        "max_psi": finite[top] if top is not None else None,
        "max_feature": top,
    }


def record_drift(
    lake: Lake,
    kind: str,
    ds: date,
    champion_version: str,
    psi: Mapping[str, float],
    threshold: float,
) -> str:
    """Write the day's drift check of ``kind`` (see :func:`drift_record`); returns its path."""
    uri = lake.drift_file(kind, ds)
    storage.write_json(drift_record(kind, ds, champion_version, psi, threshold), uri)
    return uri


def read_drift(
    lake: Lake, kind: str, until: date, since: date | None = None
) -> list[dict[str, Any]]:
    """The drift records of ``kind`` for the days ``since``..``until`` (inclusive), oldest
    first; an empty list when the kind never recorded one."""
    days = [
        day
        for day in storage.list_partitions(lake.drift(kind))
        if day <= until and (since is None or day >= since)
    ]
    records = []
    for day in days:
        uri = lake.drift_file(kind, day)
        if storage.exists(uri):
            records.append(storage.read_json(uri))
    return records
