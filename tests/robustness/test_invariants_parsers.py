"""Parsers never raise on arbitrary text, and what they return is always plausible (hypothesis)."""

from __future__ import annotations

import math

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from pfs.extractors.steroid.doses import dose_from_text, duration_days, parse_frequency, parse_taper
from pfs.io.schema import parse_dates

FAST = settings(max_examples=60, deadline=None, derandomize=True)
#: Text shaped like what the parsers meet (sig fragments, numbers, units) mixed with arbitrary characters.
WORDS = st.sampled_from(["4", "0.5", "-2", "1e9", "99999999999", "mg", "mcg", "g", "ml", "mg/ml", "tab", "tablets",
                         "take", "then", "x", "for", "days", "weeks", "daily", "BID", "q6h", "q0h", "q1000h",
                         "PRN", "once", "stop", "total", "dexamethasone", ";", "/", ".", " ", "\x00", "٣", "½"])
SIG = st.one_of(st.text(max_size=60), st.lists(WORDS, max_size=14).map(" ".join))
DATE_TEXT = st.one_of(
    st.text(max_size=25),
    st.dates(min_value=pd.Timestamp("1000-01-01").date()).map(lambda d: d.isoformat()),
    st.builds(lambda y, m, d, t: f"{y:04d}-{m:02d}-{d:02d}{t}", st.integers(0, 9999), st.integers(0, 13),
              st.integers(0, 32), st.sampled_from(["", "T10:00:00", " 23:59", "T00:00:00Z", "x"])),
)


@FAST
@given(st.lists(st.one_of(st.none(), DATE_TEXT), max_size=8),
       st.sampled_from([None, "%d/%m/%Y", "%m/%d/%Y", "%Y%m%d"]))
def test_parse_dates_never_raises_and_gives_day_dates_in_range(values: list, fmt: str | None) -> None:
    out = parse_dates(pd.Series(values, dtype=object), fmt)
    assert len(out) == len(values)
    assert pd.api.types.is_datetime64_any_dtype(out)
    ok = out.dropna()
    assert (ok == ok.dt.normalize()).all()
    assert ok.dt.year.between(1900, 2100).all()


@FAST
@given(st.dates(min_value=pd.Timestamp("1900-01-01").date(), max_value=pd.Timestamp("2100-12-31").date()))
def test_every_iso_date_in_range_parses_to_itself(day) -> None:
    out = parse_dates(pd.Series([day.isoformat(), f"{day.isoformat()}T12:30:00"]))
    assert (out == pd.Timestamp(day)).all()


@FAST
@given(SIG)
def test_frequency_is_none_or_a_positive_rate(text: str) -> None:
    f = parse_frequency(text)
    assert f is None or (math.isfinite(f.per_day) and f.per_day > 0)


@FAST
@given(SIG, st.sampled_from(["dexamethasone 4 mg tablet", "prednisone", "DEXAMETHASONE 1 MG/ML SOLN", ""]))
def test_doses_and_durations_are_never_negative(text: str, drug: str) -> None:
    mg, reason = dose_from_text(text, drug)
    assert (mg is None) != (reason is None)
    assert mg is None or (math.isfinite(mg) and mg >= 0)
    days = duration_days(text)
    assert days is None or days >= 0
    steps = parse_taper(text, drug, parse_frequency(text))
    for n_days, mg_day in steps or []:
        assert math.isnan(n_days) or n_days >= 0
        assert mg_day >= 0
