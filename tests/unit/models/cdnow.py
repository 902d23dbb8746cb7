"""The CDNOW sample summarised as in Fader, Hardie & Lee (2005): the BG/NBD reference data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

CDNOW_CALIBRATION_START = pd.Timestamp("1997-01-01")
CDNOW_CALIBRATION_END = pd.Timestamp("1997-09-30")
CDNOW_HOLDOUT_END = pd.Timestamp("1998-06-30")


def cdnow_summary(path: str | Path) -> pd.DataFrame:
    """Calibration/holdout summary of the CDNOW sample with the BG/NBD paper's protocol.

    Calibration is 1997-01-01..1997-09-30 (39 weeks), holdout the next 39 weeks
    (1997-10-01..1998-06-30), time unit one week. Purchases on the same day are
    one transaction; the first transaction of a customer is not a repeat.
    ``T`` and ``recency`` are measured in days to 1997-09-30 (not 10-01)
    divided by 7: a customer first seen on 1997-01-01 gets ``T = 272/7 =
    38.86``, the value in Fader & Hardie's published data set, and this
    reproduces the paper's estimates.

    Args:
        path: ``CDNOW_sample.txt`` (no header; customer id, id in the full set,
            date YYYYMMDD, number of CDs, dollar value).

    Returns:
        One row per customer (index ``customer_id``) with ``frequency``,
        ``recency``, ``T``, ``monetary_value`` (mean value of calibration repeat
        transactions, 0 without any), ``frequency_holdout`` and
        ``duration_holdout`` (39.0).
    """
    raw = pd.read_csv(
        path,
        sep=r"\s+",
        header=None,
        names=["customer_id", "full_id", "date", "cds", "value"],
        dtype={"customer_id": "int64", "full_id": "int64", "date": "str"},
    )
    raw["date"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    daily = raw.groupby(["customer_id", "date"], as_index=False)["value"].sum()
    daily = daily.sort_values(["customer_id", "date"])
    first = daily.groupby("customer_id")["date"].transform("min")
    daily = daily[first >= CDNOW_CALIBRATION_START]
    first = first.loc[daily.index]
    daily = daily[first <= CDNOW_CALIBRATION_END]
    first = first.loc[daily.index]

    calibration = daily[daily["date"] <= CDNOW_CALIBRATION_END]
    holdout = daily[(daily["date"] > CDNOW_CALIBRATION_END) & (daily["date"] <= CDNOW_HOLDOUT_END)]
    cal_first = first.loc[calibration.index]
    repeats = calibration[calibration["date"] > cal_first]

    week = pd.Timedelta(days=7)
    first_by_customer = calibration.groupby("customer_id")["date"].min()
    summary = pd.DataFrame(index=first_by_customer.index)
    summary["frequency"] = repeats.groupby("customer_id").size()
    summary["frequency"] = summary["frequency"].fillna(0).astype(float)
    last = calibration.groupby("customer_id")["date"].max()
    summary["recency"] = (last - first_by_customer) / week
    summary["T"] = (CDNOW_CALIBRATION_END - first_by_customer) / week
    summary["monetary_value"] = repeats.groupby("customer_id")["value"].mean()
    summary["monetary_value"] = summary["monetary_value"].fillna(0.0)
    summary["frequency_holdout"] = holdout.groupby("customer_id").size()
    summary["frequency_holdout"] = summary["frequency_holdout"].fillna(0).astype(float)
    summary["duration_holdout"] = (CDNOW_HOLDOUT_END - CDNOW_CALIBRATION_END).days / 7
    summary.index.name = "customer_id"
    return summary
