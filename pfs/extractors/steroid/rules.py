"""Progression rules on the steroid exposure: each returns candidate events, one row per firing.

All rules look only after the peri-treatment period (diagnosis/surgery through RT end + margin),
when steroids are expected anyway. Each is a plain function of the exposure so it can be tested
on a few hand-written runs; thresholds come from ``pfs/config/steroid.toml``.

Every rule returns a frame with pcode, day (int), kind, value (dex-eq mg/day) and a few columns the
evidence line is written from.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pfs.extractors.steroid.exposure import to_days

RULE_NAMES = ("new_course", "dose_rise", "prescription_frequency")
_EVENT_COLS = ["pcode", "day", "kind", "value", "detail"]


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pcode": pd.Series(dtype="int64"),
            "day": pd.Series(dtype="int64"),
            "kind": pd.Series(dtype=object),
            "value": pd.Series(dtype="float64"),
            "detail": pd.Series(dtype="float64"),
        }
    )


def peri_treatment_end(patients: pd.DataFrame, settings: dict[str, Any]) -> pd.Series:
    """Last day (int) of the peri-treatment period per patient_id.

    RT end + margin; without an RT end date, surgery (else diagnosis) + the usual time to the end of
    chemoradiation + margin. NaN when the patient has none of these dates (then no period applies).
    """
    margin = int(settings["peri_treatment_margin_days"])
    rt_end = patients["rt_end_date"]
    anchor = patients["surgery_date"].fillna(patients["diagnosis_date"])
    guess = anchor + pd.to_timedelta(int(settings["default_treatment_days"]), unit="D")
    end = rt_end.fillna(guess) + pd.to_timedelta(margin, unit="D")
    days = pd.Series(
        np.where(end.notna(), to_days(end.fillna(pd.Timestamp(0))), np.nan),
        index=patients["patient_id"].to_numpy(),
        dtype="float64",
    )
    return days


def new_course(
    courses: pd.DataFrame,
    peri_end: np.ndarray,
    settings: dict[str, Any],
    end_of_record: np.ndarray | None = None,
) -> pd.DataFrame:
    """A countable course that starts after the peri-treatment period after >= K steroid-free days.

    The course must also last ``new_course_min_days`` unless it runs into ``end_of_record`` (death,
    indexed by pcode; NaN when alive): oedema from a growing tumour keeps needing steroids, while
    radiation necrosis and pseudoprogression courses tend to be short.

    ``courses`` are the countable courses (see :func:`~pfs.extractors.steroid.exposure.group_courses`);
    ``free_before`` is NaN for a patient's first course, which counts as preceded by an unlimited
    steroid-free spell. ``peri_end`` is indexed by pcode. ``detail`` = steroid-free days.
    """
    if courses.empty:
        return _empty()
    pe = peri_end[courses["pcode"].to_numpy(dtype="int64")]
    free = courses["free_before"].to_numpy(dtype="float64")
    fire = (
        (np.isnan(pe) | (courses["start"].to_numpy() > pe))
        & (np.isnan(free) | (free >= int(settings["new_course_min_free_days"])))
        & (courses["start_level"].to_numpy() >= float(settings["new_course_min_peak_mg"]) - 1e-9)
    )
    days = courses["stop"].to_numpy() - courses["start"].to_numpy() + 1
    long_enough = days >= int(settings.get("new_course_min_days", 1))
    if end_of_record is not None:
        eor = end_of_record[courses["pcode"].to_numpy(dtype="int64")]
        long_enough |= ~np.isnan(eor) & (courses["stop"].to_numpy() >= np.nan_to_num(eor) - 1)
    fire &= long_enough
    c = courses.loc[fire]
    return pd.DataFrame(
        {
            "pcode": c["pcode"].to_numpy(dtype="int64"),
            "day": c["start"].to_numpy(dtype="int64"),
            "kind": "new_course",
            "value": c["start_level"].to_numpy(dtype="float64"),
            "detail": c["free_before"].to_numpy(dtype="float64"),
        }
    )


def dose_rise(runs: pd.DataFrame, peri_end: np.ndarray, settings: dict[str, Any]) -> pd.DataFrame:
    """The counted daily dose rises >= X mg/day above its post-treatment nadir and stays there >= D days.

    The nadir is the lowest counted level since the end of the peri-treatment period (0 when the
    patient was off steroids then). One event per stretch above the threshold, dated to its first
    day, as RANO dates a steroid-driven progression to the first time the increase was needed.
    ``detail`` = the nadir.
    """
    if runs.empty:
        return _empty()
    x = float(settings["rise_min_mg_per_day"])
    d = int(settings["rise_min_days"])
    pe = peri_end[runs["pcode"].to_numpy(dtype="int64")]
    post = np.isnan(pe) | (runs["stop"].to_numpy() > pe)
    r = runs.loc[post, ["pcode", "start", "stop", "mg_counted"]].copy()
    if r.empty:
        return _empty()
    pe_r = pe[post]
    r["start"] = np.where(np.isnan(pe_r), r["start"], np.maximum(r["start"].to_numpy(), np.nan_to_num(pe_r) + 1))
    pc = r["pcode"].to_numpy()
    first = np.r_[True, pc[1:] != pc[:-1]]
    lvl = r["mg_counted"].to_numpy(dtype="float64")
    # Before the first post-treatment run: the run itself when it spans the period's end, else 0 mg.
    spans = first & ~np.isnan(pe_r) & (runs.loc[post, "start"].to_numpy() <= np.nan_to_num(pe_r))
    initial = np.where(spans, lvl, 0.0)
    prior = pd.Series(lvl).groupby(pc).cummin().shift(1).to_numpy()
    nadir = pd.Series(np.where(first, initial, prior)).groupby(pc).cummin().to_numpy()
    above = lvl - nadir >= x - 1e-9
    start_stretch = above & (first | ~np.r_[False, above[:-1]])
    sid = np.cumsum(start_stretch)
    days = r["stop"].to_numpy() - r["start"].to_numpy() + 1
    length = pd.Series(np.where(above, days, 0)).groupby(sid).transform("sum").to_numpy()
    fire = start_stretch & (length >= d)
    return pd.DataFrame(
        {
            "pcode": pc[fire].astype("int64"),
            "day": r["start"].to_numpy()[fire].astype("int64"),
            "kind": "dose_rise",
            "value": lvl[fire],
            "detail": nadir[fire],
        }
    )


def prescription_frequency(orders: pd.DataFrame, peri_end: np.ndarray, settings: dict[str, Any]) -> pd.DataFrame:
    """>= F countable prescriptions started within a sliding window of W days after the peri-treatment period.

    ``orders``: pcode, start_day, dex_mg_per_day of the countable, non-duplicate orders. One event
    when the count first reaches F; the rule re-arms once the count falls below F again.
    ``detail`` = the number of prescriptions in the window.
    """
    if orders.empty:
        return _empty()
    w = int(settings["frequency_window_days"])
    f = int(settings["frequency_min_orders"])
    pe = peri_end[orders["pcode"].to_numpy(dtype="int64")]
    o = orders.loc[np.isnan(pe) | (orders["start_day"].to_numpy() > pe)]
    o = o.sort_values(["pcode", "start_day"], kind="stable")
    if o.empty:
        return _empty()
    pc = o["pcode"].to_numpy(dtype="int64")
    day = o["start_day"].to_numpy(dtype="int64")
    key = (pc << 22) | (day - day.min() + w)
    lo = np.searchsorted(key, key - w + 1, side="left")
    count = np.arange(len(key)) - lo + 1
    # Same-day orders: count every order of that day (the last row of the day holds the full count).
    last_of_day = np.r_[key[1:] != key[:-1], True]
    count = pd.Series(np.where(last_of_day, count, np.nan)).bfill().to_numpy()
    reached = count >= f
    first = np.r_[True, pc[1:] != pc[:-1]]
    fire = reached & (first | ~np.r_[False, reached[:-1]])
    first_of_day = np.r_[True, key[1:] != key[:-1]]
    fire &= first_of_day
    return pd.DataFrame(
        {
            "pcode": pc[fire],
            "day": day[fire],
            "kind": "prescription_frequency",
            "value": o["dex_mg_per_day"].to_numpy(dtype="float64")[fire],
            "detail": count[fire].astype("float64"),
        }
    )
