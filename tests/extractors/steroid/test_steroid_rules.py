"""Progression rules on hand-written exposure: new course, dose rise, prescription frequency."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pfs.extractors.steroid.rules import dose_rise, new_course, peri_treatment_end, prescription_frequency

S = {
    "new_course_min_free_days": 21,
    "new_course_min_peak_mg": 2.0,
    "rise_min_mg_per_day": 2.0,
    "rise_min_days": 5,
    "frequency_window_days": 60,
    "frequency_min_orders": 3,
    "peri_treatment_margin_days": 28,
    "default_treatment_days": 84,
}
PERI = np.array([100.0])


def _courses(rows):
    return pd.DataFrame(
        rows, columns=["pcode", "start", "stop", "peak", "cumulative_mg", "free_before", "start_level"]
    )


def test_new_course_after_steroid_free_days_outside_the_peri_treatment_period():
    c = _courses(
        [
            (0, 0, 60, 16, 0, np.nan, 16),  # peri-operative: never progression
            (0, 150, 170, 8, 0, 89, 8),  # restart after 89 free days -> event
            (0, 180, 190, 8, 0, 9, 8),  # 9 free days: a taper wobble, no event
            (0, 300, 310, 1, 0, 109, 1),  # 1 mg/day: a taper tail, below the 2 mg floor
        ]
    )
    ev = new_course(c, PERI, S)
    assert ev["day"].tolist() == [150]
    assert ev["detail"].tolist() == [89]


def _runs(levels):
    start = np.cumsum([0] + [d for d, _ in levels[:-1]])
    return pd.DataFrame(
        {
            "pcode": 0,
            "start": start,
            "stop": start + np.array([d for d, _ in levels]) - 1,
            "mg_all": [mg for _, mg in levels],
            "mg_counted": [mg for _, mg in levels],
            "n_orders": 1,
        }
    )


def test_dose_rise_above_the_post_treatment_nadir_sustained():
    # on 8 mg through the peri-treatment period, tapered to 1 mg, then raised to 4 mg for 10 days
    runs = _runs([(120, 8.0), (30, 1.0), (10, 4.0), (20, 1.0)])
    ev = dose_rise(runs, PERI, S)
    assert ev["day"].tolist() == [150]
    assert ev["value"].tolist() == [4.0] and ev["detail"].tolist() == [1.0]


def test_dose_rise_too_short_or_too_small_does_not_fire():
    assert dose_rise(_runs([(120, 8.0), (30, 1.0), (3, 6.0), (20, 1.0)]), PERI, S).empty  # 3 days only
    assert dose_rise(_runs([(120, 8.0), (30, 1.0), (10, 2.0), (20, 1.0)]), PERI, S).empty  # +1 mg only


def test_dose_inside_the_peri_treatment_period_is_not_a_rise():
    # the 8 mg at the end of RT is the starting level, not a rise over a nadir
    assert dose_rise(_runs([(90, 2.0), (40, 8.0)]), PERI, S).empty


def test_prescription_frequency_in_a_sliding_window():
    orders = pd.DataFrame({"pcode": 0, "start_day": [10, 120, 150, 170, 175, 400], "dex_mg_per_day": 4.0})
    ev = prescription_frequency(orders, PERI, S)
    # day 10 is peri-treatment; 120, 150, 170 are three within 60 days -> fires at 170 once
    assert ev["day"].tolist() == [170]
    assert ev["detail"].tolist() == [3]


def test_peri_treatment_end_uses_rt_end_else_surgery_plus_usual_treatment():
    p = pd.DataFrame(
        {
            "patient_id": ["A", "B", "C"],
            "diagnosis_date": pd.to_datetime(["2020-01-01", "2020-01-01", None]),
            "surgery_date": pd.to_datetime(["2020-01-10", "2020-01-10", None]),
            "rt_end_date": pd.to_datetime(["2020-03-20", None, None]),
        }
    )
    end = peri_treatment_end(p, S)
    day = lambda s: pd.Timestamp(s).value // 86_400_000_000_000  # noqa: E731
    assert end["A"] == day("2020-04-17")  # RT end + 28
    assert end["B"] == day("2020-01-10") + 84 + 28
    assert np.isnan(end["C"])
