"""Evidence text of steroid events: the dose as a prescriber writes it and one line per event.

Each event carries a line a clinician can check against the chart ('dexamethasone restarted 4 mg BID
(8 mg/day dex-eq) after 120 steroid-free days'); numbers are written with three significant figures.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_FREQ_LABEL = {6.0: "q4h", 4.0: "QID", 3.0: "TID", 2.0: "BID", 1.0: "daily", 0.5: "QOD"}


def fmt(x: float) -> str:
    """A dose as people write it: three significant figures, whole mg from 100 up."""
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def fmt_series(values: pd.Series) -> pd.Series:
    """:func:`fmt` per row via the distinct values (doses repeat); blank for NaN."""
    v = values.astype("float64")
    labels = {x: fmt(x) for x in v.dropna().unique()}
    return v.map(labels).astype(object).where(v.notna(), "")


def dose_text(o: pd.DataFrame) -> pd.Series:
    """'4 mg BID', 'taper from 8 mg/day', 'dose pack' for the evidence line."""
    per = o["per_day"].astype("float64").round(6)
    label = per.map(_FREQ_LABEL).fillna(per.map(lambda x: f"{x:g}x/day", na_action="ignore")).fillna("")
    label = label.where(~o["once"].astype(bool), "once")
    mg = fmt_series(o["mg_per_admin"])
    text = mg + " mg " + label
    text = text.where(~o["taper"].astype(bool), "taper from " + fmt_series(o["drug_mg_per_day"]) + " mg/day")
    text = text.where(~o["split_dose"].astype(bool), "split doses of " + fmt_series(o["drug_mg_per_day"]) + " mg/day")
    return text.where(~o["dose_pack"].astype(bool), "dose pack")


def evidence_text(
    kind: np.ndarray, src: pd.DataFrame, value: pd.Series, detail: np.ndarray, frequency_window_days: int
) -> np.ndarray:
    """One evidence line per event from the order behind it (``src``, one row per event).

    ``value`` is the event's mg/day dex-eq; ``detail`` the steroid-free days before a new course (NaN for a
    first course), the nadir before a dose rise, or the number of prescriptions in the window.
    """
    drug = src["drug"].to_numpy(dtype=object)
    dose = dose_text(src).to_numpy(dtype=object)
    val = fmt_series(value).to_numpy(dtype=object)
    det = detail
    free = np.where(
        np.isnan(det),
        "with no earlier course",
        "after "
        + pd.Series(np.nan_to_num(det)).astype("int64").astype(str).to_numpy(dtype=object)
        + " steroid-free days",
    )
    nadir = fmt_series(pd.Series(det)).to_numpy(dtype=object)
    count = pd.Series(np.nan_to_num(det)).astype("int64").astype(str).to_numpy(dtype=object)
    return np.select(
        [kind == "new_course", kind == "dose_rise"],
        [
            drug + " restarted " + dose + " (" + val + " mg/day dex-eq) " + free,
            drug
            + " raised to "
            + val
            + " mg/day dex-eq ("
            + dose
            + ") from a post-treatment nadir of "
            + nadir
            + " mg/day",
        ],
        count
        + f" steroid prescriptions within {frequency_window_days} days, latest "
        + drug
        + " "
        + dose
        + " ("
        + val
        + " mg/day dex-eq)",
    )
