"""Conversions between the generator's numpy arrays and frame columns or SQL text: epoch
seconds to and from UTC timestamps, strings and category codes to pandas strings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cva_tasks.demo.shop.seasonality import DAY


def _ts(secs: np.ndarray, missing: np.ndarray | None = None) -> pd.Series:
    """Epoch seconds -> ``datetime64[us, UTC]`` series (``missing`` rows NaT)."""
    us = np.asarray(secs, dtype=np.int64) * 1_000_000
    values = us.view("datetime64[us]")
    if missing is not None:
        values = values.copy()
        values[missing] = np.datetime64("NaT")
    return pd.Series(values, copy=False).dt.tz_localize("UTC")


def _secs(series: pd.Series) -> np.ndarray:
    """``datetime64[*, UTC]`` series -> int64 epoch seconds."""
    arr = series.array
    per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[arr.unit]
    return np.asarray(arr.asi8) // per_second


def _str(values: Any) -> pd.Series:
    return pd.Series(values, dtype="str")


def _codes_to_str(codes: np.ndarray, labels: tuple[str, ...]) -> pd.Series:
    return pd.Series(pd.Categorical.from_codes(codes, categories=list(labels))).astype("str")


_TIME_OF_DAY: np.ndarray | None = None


def _time_strings() -> np.ndarray:
    global _TIME_OF_DAY
    if _TIME_OF_DAY is None:
        sod = np.arange(DAY)
        _TIME_OF_DAY = np.array(
            [
                f"{h:02d}:{m:02d}:{s:02d}"
                for h, m, s in zip(sod // 3600, sod // 60 % 60, sod % 60, strict=True)
            ],
            dtype=object,
        )
    return _TIME_OF_DAY


def _ts_text(secs: np.ndarray, sep: str = " ", suffix: str = "") -> np.ndarray:
    """Epoch seconds -> object array of ``YYYY-MM-DD HH:MM:SS`` strings (fast)."""
    secs = np.asarray(secs, dtype=np.int64)
    if len(secs) == 0:
        return np.empty(0, dtype=object)
    days = secs // DAY
    d0 = int(days.min())
    span = int(days.max()) - d0 + 1
    dates = np.datetime_as_string(np.arange(d0, d0 + span).astype("datetime64[D]")).astype(object)
    dates = dates + sep
    out = dates[days - d0] + _time_strings()[secs - days * DAY]
    if suffix:
        out = out + suffix
    return out
