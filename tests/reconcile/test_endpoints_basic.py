"""Endpoints on a hand-computed cohort: index date, first progression, death, censoring."""

from __future__ import annotations

import pandas as pd

from pfs.reconcile.endpoints import build_endpoints, follow_up_dates

D = pd.Timestamp


def patients() -> pd.DataFrame:
    return pd.DataFrame({
        "patient_id": ["A", "B", "C", "D"],
        "diagnosis_date": [D("2020-01-01"), D("2020-01-01"), D("2020-01-01"), D("2020-01-01")],
        "surgery_date": [D("2020-01-11"), D("2020-01-11"), pd.NaT, D("2020-01-11")],
        "rt_start_date": [pd.NaT] * 4,
        "rt_end_date": [pd.NaT] * 4,
        "last_followup_date": [D("2021-01-11"), D("2021-01-11"), D("2020-07-01"), pd.NaT],
        "death_date": [pd.NaT, D("2020-11-01"), pd.NaT, pd.NaT],
    })


def test_first_event_after_index_counts_and_earlier_ones_are_noted() -> None:
    ev = pd.DataFrame({"patient_id": ["A", "A", "A"],
                       "event_date": [D("2020-01-05"), D("2020-06-09"), D("2020-09-01")]})
    ep = build_endpoints(patients(), ev, "nlp", index_date="surgery").set_index("patient_id")
    a = ep.loc["A"]
    assert a["progressed"] == 1 and a["progression_date"] == D("2020-06-09")
    assert a["pfs_event"] == 1 and a["pfs_days"] == 150
    assert "1 event(s) before the index date ignored" in a["note"]


def test_death_without_progression_is_a_pfs_event_but_not_progression() -> None:
    ep = build_endpoints(patients(), pd.DataFrame(columns=["patient_id", "event_date"]), "nlp").set_index("patient_id")
    b = ep.loc["B"]
    assert b["progressed"] == 0 and b["pfs_event"] == 1 and b["pfs_date"] == D("2020-11-01")


def test_censored_at_last_followup_and_index_falls_back_with_note() -> None:
    ep = build_endpoints(patients(), pd.DataFrame(columns=["patient_id", "event_date"]), "nlp").set_index("patient_id")
    c = ep.loc["C"]
    assert c["pfs_event"] == 0 and c["pfs_date"] == D("2020-07-01")
    assert c["index_date"] == D("2020-01-01") and "diagnosis_date used" in c["note"]
    assert c["pfs_days"] == (D("2020-07-01") - D("2020-01-01")).days


def test_blank_followup_is_derived_from_the_latest_record() -> None:
    records = [pd.Series([D("2020-03-01"), D("2020-10-10")], index=["D", "D"])]
    fu = follow_up_dates(patients(), records)
    assert fu["D"] == D("2020-10-10") and fu["A"] == D("2021-01-11")
    ep = build_endpoints(patients(), pd.DataFrame(columns=["patient_id", "event_date"]), "nlp",
                         last_followup=fu).set_index("patient_id")
    assert ep.loc["D", "pfs_date"] == D("2020-10-10") and ep.loc["D", "pfs_event"] == 0


def test_event_after_death_is_ignored() -> None:
    ev = pd.DataFrame({"patient_id": ["B"], "event_date": [D("2020-12-01")]})
    b = build_endpoints(patients(), ev, "imaging").set_index("patient_id").loc["B"]
    assert b["progressed"] == 0 and "after death" in b["note"]
