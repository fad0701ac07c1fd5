"""Kaplan-Meier curves, fitted once per set of endpoints and shared by ``compare``, ``plot`` and ``report``.

Curves are fitted in days since the index date (the unit of ``pfs_days``); figures label them in months.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from pfs.vocab import DAYS_PER_MONTH, METHODS


def methods_in(endpoints: pd.DataFrame) -> list[str]:
    """The methods present, in the reference study's order, then any others (never ``manual``)."""
    present = set(endpoints["method"])
    return [m for m in METHODS if m in present] + sorted(present - set(METHODS) - {"manual"})


def km_fit(durations: pd.Series, events: pd.Series, label: str | None = None) -> Any:
    """A lifelines KaplanMeierFitter on PFS days and event flags; None when there are no patients."""
    from lifelines import KaplanMeierFitter

    if len(durations) == 0:
        return None
    return KaplanMeierFitter(label=label).fit(durations.astype(float), events.astype(int))


def fit_curves(endpoints: pd.DataFrame, manual: pd.DataFrame | None = None) -> dict[str, Any]:
    """One Kaplan-Meier fit per method (and for the manual reference when given).

    With a manual reference every method is fitted on the patients the reference has, so that every
    curve, median and log-rank test of a comparison is on the same patients.
    """
    curves: dict[str, Any] = {}
    keep = None if manual is None else set(manual["patient_id"])
    for method in methods_in(endpoints):
        frame = endpoints.loc[endpoints["method"] == method]
        if keep is not None:
            frame = frame.loc[frame["patient_id"].isin(keep)]
        kmf = km_fit(frame["pfs_days"], frame["pfs_event"], method)
        if kmf is not None:
            curves[method] = kmf
    if manual is not None:
        kmf = km_fit(manual["pfs_days"], manual["pfs_event"], "manual")
        if kmf is not None:
            curves["manual"] = kmf
    return curves


def km_summary(kmf: Any) -> dict[str, float]:
    """Median PFS with its 95 % CI from a fitted curve; inf when the curve never reaches 0.5."""
    from lifelines.utils import median_survival_times

    if kmf is None:
        return {"km_median_days": math.nan, "km_median_lower_days": math.nan,
                "km_median_upper_days": math.nan, "km_median_months": math.nan}
    ci = median_survival_times(kmf.confidence_interval_)
    median = float(kmf.median_survival_time_)
    return {
        "km_median_days": median,
        "km_median_lower_days": float(ci.iloc[0, 0]),
        "km_median_upper_days": float(ci.iloc[0, 1]),
        "km_median_months": median / DAYS_PER_MONTH,
    }


def km_median(durations: pd.Series, events: pd.Series) -> dict[str, float]:
    """Median PFS with its 95 % CI of one set of durations (fits and summarises)."""
    return km_summary(km_fit(durations, events))
