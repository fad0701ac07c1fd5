"""Orders that look unrelated to the tumour are discounted: kept in the courses table, not counted.

Dexamethasone given as an antiemetic or premedication, single doses, dose packs, short bursts of other
steroids (asthma, COPD, gout) and physiological (replacement) doses do not signal tumour growth. Thresholds
are in the ``[steroid]`` config with their reasons; the first matching reason is the order's.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from pfs.extractors.steroid.drugs import REFERENCE_DRUG


def discount_reason(o: pd.DataFrame, settings: dict[str, Any]) -> pd.Series:
    """Why an order looks unrelated to the tumour (None when it counts)."""
    span = o["stop_day"] - o["start_day"] + 1
    reason = pd.Series(None, index=o.index, dtype=object)

    def add(mask: pd.Series, why: pd.Series | str) -> None:
        nonlocal reason
        reason = reason.where(~(mask & reason.isna()), why)

    add(o["dose_pack"].astype(bool), "dose pack")
    add(o["antiemetic"].astype(bool), "antiemetic or premedication use")
    add(o["once"].astype(bool) & (span <= int(settings["single_dose_max_days"])), "single dose")
    add(
        (o["drug"] != REFERENCE_DRUG) & (span <= int(settings["burst_max_days"])),
        "short " + o["drug"] + " burst",
    )
    add(
        o["peak_dex_mg_per_day"] <= float(settings["physiological_mg_per_day"]) + 1e-9,
        "physiological (replacement) dose",
    )
    return reason
