"""Exposure series and courses: renewals not double counted, default durations, tapers, gaps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pfs.extractors.steroid.exposure import (
    group_courses,
    order_spans,
    resolve_renewals,
    segments,
    sweep,
    to_days,
)

SETTINGS = {"default_duration_days": 30, "max_order_days": 180}
D0 = int(to_days(pd.Series(pd.to_datetime(["2020-01-01"])))[0])


def _orders(rows):
    df = pd.DataFrame(
        rows,
        columns=[
            "medication_id",
            "order_date",
            "end_date",
            "dex_mg_per_day",
            "duration_days",
            "once",
            "schedule",
        ],
    )
    df["order_date"] = pd.to_datetime(df["order_date"])
    df["end_date"] = pd.to_datetime(df["end_date"])
    df["patient_id"], df["pcode"], df["drug"], df["dex_factor"], df["counted"] = (
        "P1",
        0,
        "dexamethasone",
        1.0,
        True,
    )
    return df


def test_order_spans_end_date_sig_duration_single_dose_and_default():
    o = order_spans(
        _orders(
            [
                ("A", "2020-01-01", "2020-01-10", 8, None, False, None),  # end date given
                ("B", "2020-01-01", None, 8, 5, False, None),  # 'x 5 days'
                ("C", "2020-01-01", "2020-03-01", 8, 5, False, None),  # sig shorter than the end date
                ("D", "2020-01-01", None, 8, 1, True, None),  # once
                ("E", "2020-01-01", None, 8, None, False, None),  # blank end: default 30 days
                ("F", "2020-01-01", "2025-01-01", 8, None, False, None),  # stale order clipped to 180 days
            ]
        ),
        SETTINGS,
    )
    assert (o["stop_day"] - D0 + 1).tolist() == [10, 5, 5, 1, 30, 180]


def test_renewal_supersedes_the_running_order():
    o = order_spans(
        _orders(
            [
                ("A", "2020-01-01", "2020-01-30", 8, None, False, None),
                ("B", "2020-01-25", "2020-02-20", 8, None, False, None),  # renewal overlapping by 6 days
                ("C", "2020-01-25", "2020-02-20", 8, None, False, None),  # exact duplicate of B
            ]
        ),
        SETTINGS,
    )
    r = resolve_renewals(o)
    assert (r["stop_day"] - D0).tolist() == [23, 50, 50]  # A stops the day before B starts
    assert r["duplicate"].tolist() == [False, False, True]
    runs = sweep(segments(r))
    # 8 mg/day without a double-counted overlap: one run of 51 days.
    assert runs[["start", "stop", "mg_all"]].to_numpy().tolist() == [[D0, D0 + 50, 8.0]]


def test_split_doses_on_the_same_day_add_up():
    r = resolve_renewals(
        order_spans(
            _orders(
                [
                    ("AM", "2020-01-01", "2020-01-10", 4, None, False, None),
                    ("PM", "2020-01-01", "2020-01-10", 2, None, False, None),
                ]
            ),
            SETTINGS,
        )
    )
    runs = sweep(segments(r))
    assert runs["mg_all"].tolist() == [6.0]


def test_taper_steps_become_a_stepped_series_and_gaps_stay_zero():
    o = order_spans(
        _orders(
            [
                ("T", "2020-01-01", None, 8, 9, False, ((3.0, 8.0), (3.0, 4.0), (3.0, 2.0))),
                ("R", "2020-03-01", "2020-03-10", 4, None, False, None),
            ]
        ),
        SETTINGS,
    )
    runs = sweep(segments(resolve_renewals(o)))
    assert runs["mg_all"].tolist() == [8.0, 4.0, 2.0, 0.0, 4.0]
    assert (runs["stop"] - runs["start"] + 1).tolist()[:3] == [3, 3, 3]


def test_courses_join_short_gaps_and_count_free_days():
    runs = pd.DataFrame(
        {
            "pcode": [0, 0, 0, 0, 0],
            "start": [0, 10, 13, 20, 60],
            "stop": [9, 12, 19, 59, 69],
            "mg_all": [4.0, 0.0, 4.0, 0.0, 8.0],
            "mg_counted": [4.0, 0.0, 4.0, 0.0, 8.0],
            "n_orders": [1, 0, 1, 0, 1],
        }
    )
    c = group_courses(runs, "mg_counted", gap_days=7)
    assert c[["start", "stop"]].to_numpy().tolist() == [[0, 19], [60, 69]]
    assert np.isnan(c["free_before"].iloc[0]) and c["free_before"].iloc[1] == 40
    assert c["peak"].tolist() == [4.0, 8.0]
    assert c["cumulative_mg"].iloc[0] == pytest.approx(4 * 10 + 4 * 7)


def test_sweep_conserves_the_total_dose_of_random_segments():
    """Property: the run-length series holds exactly the mg-days of the segments, per patient."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    seg_strategy = st.lists(
        st.tuples(
            st.integers(0, 2),
            st.integers(0, 60),
            st.integers(0, 20),
            st.sampled_from([0.5, 1, 2, 4, 8]),
            st.booleans(),
        ),
        min_size=1,
        max_size=25,
    )

    @settings(max_examples=60, deadline=None)
    @given(seg_strategy)
    def check(rows):
        seg = pd.DataFrame(
            [(p, s, s + d, mg, c) for p, s, d, mg, c in rows],
            columns=["pcode", "start", "stop", "mg", "counted"],
        ).sort_values("pcode", kind="stable")
        runs = sweep(seg)
        days = runs["stop"] - runs["start"] + 1
        for p, grp in seg.groupby("pcode"):
            r = runs["pcode"] == p
            want = (grp["mg"] * (grp["stop"] - grp["start"] + 1)).sum()
            assert (runs.loc[r, "mg_all"] * days[r]).sum() == pytest.approx(want)
            want_counted = (grp["mg"] * grp["counted"] * (grp["stop"] - grp["start"] + 1)).sum()
            assert (runs.loc[r, "mg_counted"] * days[r]).sum() == pytest.approx(want_counted)
        assert (runs["mg_all"] >= runs["mg_counted"] - 1e-9).all()
        assert (days >= 1).all()

    check()
