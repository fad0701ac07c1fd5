"""Endpoint invariants on random patients and events (hypothesis; complements
tests/reconcile/test_reconcile_invariants.py, which checks the strategies against each other)."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from pfs.reconcile import build_endpoints, follow_up_dates

BASE = pd.Timestamp("2020-01-01")
offset = st.one_of(st.none(), st.integers(-200, 900))


def _day(n: int | None) -> pd.Timestamp:
    return pd.NaT if n is None else BASE + pd.Timedelta(days=n)


patient = st.fixed_dictionaries({"diagnosis": offset, "surgery": offset, "rt_start": offset, "last_fu": offset,
                                 "death": offset})
event = st.tuples(st.integers(0, 3), st.integers(-400, 1200))


@settings(max_examples=80, deadline=None, derandomize=True)
@given(st.lists(patient, min_size=1, max_size=4), st.lists(event, max_size=10),
       st.sampled_from(["diagnosis", "surgery", "rt_start"]))
def test_endpoint_invariants(pats: list[dict], events: list[tuple], index: str) -> None:
    patients = pd.DataFrame({
        "patient_id": [f"P{i}" for i in range(len(pats))],
        "diagnosis_date": [_day(p["diagnosis"]) for p in pats],
        "surgery_date": [_day(p["surgery"]) for p in pats],
        "rt_start_date": [_day(p["rt_start"]) for p in pats],
        "rt_end_date": [pd.NaT] * len(pats),
        "last_followup_date": [_day(p["last_fu"]) for p in pats],
        "death_date": [_day(p["death"]) for p in pats],
    })
    ev = pd.DataFrame({"patient_id": [f"P{i}" for i, _ in events],
                       "event_date": pd.to_datetime([_day(d) for _, d in events])})
    ep = build_endpoints(patients, ev, "x", index_date=index, last_followup=follow_up_dates(patients))
    assert ep["patient_id"].is_unique
    assert (ep["pfs_days"] >= 0).all()
    assert (ep["pfs_days"] == (ep["pfs_date"] - ep["index_date"]).dt.days).all()
    progressed = ep["progressed"] == 1
    assert ep.loc[progressed, "progression_date"].notna().all()
    assert ep.loc[~progressed, "progression_date"].isna().all()
    # Censored (no PFS event) means no progression date; progression is always a PFS event.
    assert ep.loc[ep["pfs_event"] == 0, "progression_date"].isna().all()
    assert (ep.loc[progressed, "pfs_event"] == 1).all()
    for r in ep.itertuples():
        theirs = ev.loc[ev["patient_id"] == r.patient_id, "event_date"]
        counted = theirs[(theirs >= r.index_date) & (pd.isna(r.death_date) | (theirs <= r.death_date))]
        # No event before the index date (or after death) counts; the first one that remains does.
        if counted.empty:
            assert not r.progressed
        else:
            assert r.progression_date == counted.min()
