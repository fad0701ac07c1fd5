"""Reconciliation strategies on hand-computed cohorts: ties, windows, confirmation, back-dating."""

from __future__ import annotations

import pandas as pd
import pytest

from pfs.exceptions import ConfigError
from pfs.reconcile import build_endpoints, reconcile_events
from pfs.settings import load_config

D = pd.Timestamp

# RT ends 2020-03-20, so the 84-day pseudoprogression window runs 2020-02-10 .. 2020-06-12.
PATIENT = {
    "diagnosis_date": D("2020-01-01"),
    "surgery_date": D("2020-01-10"),
    "rt_start_date": D("2020-02-10"),
    "rt_end_date": D("2020-03-20"),
    "last_followup_date": D("2021-06-01"),
    "death_date": pd.NaT,
}


def patients(**overrides: dict) -> pd.DataFrame:
    rows = []
    for pid in ["A", "B", "C"]:
        rows.append({"patient_id": pid, **PATIENT, **overrides.get(pid, {})})
    return pd.DataFrame(rows)


def events(*rows: tuple[str, str, str, str]) -> pd.DataFrame:
    """(patient_id, source, date, kind) tuples -> an events table."""
    out = pd.DataFrame(rows, columns=["patient_id", "source", "event_date", "kind"])
    out["event_date"] = pd.to_datetime(out["event_date"])
    out["ref_id"] = [f"{s[0].upper()}{i}" for i, s in enumerate(out["source"])]
    out["evidence"] = out["kind"] + " seen"
    out["value"] = float("nan")
    out["confidence"] = 1.0
    return out


def run(
    ev: pd.DataFrame, strategy: str = "guideline", pts: pd.DataFrame | None = None, **section: object
) -> pd.DataFrame:
    settings = {"strategy": strategy}
    if section:
        settings[strategy] = section
    return reconcile_events(ev, patients() if pts is None else pts, settings)


def accepted(rec: pd.DataFrame, pid: str = "A") -> pd.DataFrame:
    return rec.loc[(rec["patient_id"] == pid) & (rec["status"] == "accepted")].reset_index(drop=True)


def test_guideline_is_the_shipped_default() -> None:
    assert load_config().section("reconcile")["strategy"] == "guideline"
    ev = events(("A", "steroid", "2020-09-01", "dose_rise"))
    rec = reconcile_events(ev, patients(), load_config().section("reconcile"))
    assert rec["status"].tolist() == ["rejected"]


# --- earliest -----------------------------------------------------------------------------------------------


def test_earliest_merges_same_day_events_of_several_sources_into_one_row() -> None:
    ev = events(
        ("A", "nlp", "2020-08-01", "report_progression"),
        ("A", "imaging", "2020-08-01", "volumetric"),
        ("A", "steroid", "2020-09-10", "dose_rise"),
    )
    rec = run(ev, "earliest")
    first = accepted(rec).iloc[0]
    assert first["event_date"] == D("2020-08-01")
    assert first["sources"] == "imaging,nlp" and first["n_events"] == 2
    # The chain tells every event, in a stable order (source, then ref_id), with its evidence.
    assert first["evidence"].startswith(
        "imaging 2020-08-01 I1 (volumetric): volumetric seen | nlp 2020-08-01"
    )
    ep = build_endpoints(patients(), rec, "reconciled").set_index("patient_id")
    assert ep.loc["A", "progression_date"] == D("2020-08-01")


# --- vote ---------------------------------------------------------------------------------------------------


def test_vote_needs_two_sources_within_the_window_and_dates_to_the_first() -> None:
    ev = events(
        ("A", "nlp", "2020-08-01", "report_progression"),
        ("A", "steroid", "2020-09-15", "dose_rise"),
        ("B", "imaging", "2020-08-01", "volumetric"),
        ("B", "imaging", "2020-09-01", "volumetric"),
    )
    rec = run(ev, "vote")
    a = accepted(rec, "A")
    assert a["event_date"].tolist() == [D("2020-08-01")] and a.loc[0, "sources"] == "nlp,steroid"
    # Two events of the same source are one vote.
    assert accepted(rec, "B").empty
    assert set(rec.loc[rec["patient_id"] == "B", "status"]) == {"rejected"}
    # 45 days apart is outside a 30-day window.
    assert accepted(run(ev, "vote", window_days=30), "A").empty


def test_vote_same_day_tie_of_two_sources_counts() -> None:
    ev = events(
        ("C", "imaging", "2020-10-01", "volumetric"), ("C", "nlp", "2020-10-01", "report_progression")
    )
    c = accepted(run(ev, "vote"), "C")
    assert c["event_date"].tolist() == [D("2020-10-01")] and c.loc[0, "n_events"] == 2


# --- guideline ----------------------------------------------------------------------------------------------


def test_steroid_only_signal_is_not_progression() -> None:
    ev = events(("A", "steroid", "2020-09-01", "dose_rise"), ("A", "steroid", "2020-12-01", "new_course"))
    rec = run(ev)
    assert accepted(rec).empty
    assert rec["rule"].str.contains("steroid-only signal").all()
    ep = build_endpoints(patients(), rec, "reconciled").set_index("patient_id")
    assert ep.loc["A", "progressed"] == 0 and ep.loc["A", "pfs_event"] == 0


def test_progression_after_the_window_counts_alone() -> None:
    a = accepted(run(events(("A", "nlp", "2020-08-01", "report_progression"))))
    assert a["event_date"].tolist() == [D("2020-08-01")]
    assert "after the pseudoprogression window" in a.loc[0, "rule"]


def test_progression_inside_the_window_needs_a_later_scan() -> None:
    # 2020-04-15 is inside the window; nothing confirms it: possible pseudoprogression.
    rec = run(events(("A", "imaging", "2020-04-15", "volumetric")))
    assert accepted(rec).empty and "possible pseudoprogression" in rec.loc[0, "rule"]
    # A report of progression 35 days later confirms it; the date stays that of the first scan (RANO 2.0).
    rec = run(
        events(("A", "imaging", "2020-04-15", "volumetric"), ("A", "nlp", "2020-05-20", "report_progression"))
    )
    a = accepted(rec)
    assert a.loc[0, "event_date"] == D("2020-04-15")
    assert a.loc[0, "sources"] == "imaging,nlp" and "confirmed on 2020-05-20" in a.loc[0, "rule"]


def test_the_report_of_the_same_scan_does_not_confirm_it() -> None:
    # Same day (0 days) and 13 days later are below confirm_min_days = 14; exactly 14 days confirms.
    same = run(
        events(("A", "imaging", "2020-04-15", "volumetric"), ("A", "nlp", "2020-04-15", "report_progression"))
    )
    assert accepted(same).empty
    assert accepted(run(events(("A", "imaging", "2020-04-15", "v"), ("A", "nlp", "2020-04-28", "r")))).empty
    ok = accepted(run(events(("A", "imaging", "2020-04-15", "v"), ("A", "nlp", "2020-04-29", "r"))))
    assert ok["event_date"].min() == D("2020-04-15")


def test_confirmation_too_late_does_not_count() -> None:
    # 113 days after the preliminary event is beyond confirm_max_days = 112: the later one stands alone.
    a = accepted(run(events(("A", "imaging", "2020-04-15", "v"), ("A", "imaging", "2020-08-06", "v"))))
    assert a["event_date"].tolist() == [D("2020-08-06")]


def test_new_lesion_inside_the_window_needs_no_confirmation() -> None:
    a = accepted(run(events(("A", "imaging", "2020-04-15", "new_lesion"))))
    assert a["event_date"].tolist() == [D("2020-04-15")] and "new lesion" in a.loc[0, "rule"]


def test_death_confirms_a_preliminary_progression() -> None:
    pts = patients(A={"death_date": D("2020-05-30")})
    a = accepted(run(events(("A", "imaging", "2020-04-15", "volumetric")), pts=pts))
    assert a["event_date"].tolist() == [D("2020-04-15")] and "confirmed by death" in a.loc[0, "rule"]
    assert accepted(
        run(events(("A", "imaging", "2020-04-15", "volumetric")), pts=pts, death_confirms=False)
    ).empty


def test_corroborated_steroid_increase_back_dates_progression() -> None:
    ev = events(("A", "steroid", "2020-09-01", "dose_rise"), ("A", "imaging", "2020-10-01", "volumetric"))
    a = accepted(run(ev))
    assert a["event_date"].tolist() == [D("2020-09-01")]
    assert (
        a.loc[0, "sources"] == "imaging,steroid" and "back-dated to the steroid increase" in a.loc[0, "rule"]
    )
    # Without back-dating the steroid only corroborates.
    b = accepted(run(ev, steroid_backdate=False))
    assert b["event_date"].tolist() == [D("2020-10-01")] and "corroborated" in b.loc[0, "rule"]
    # A steroid increase after the scan corroborates and never moves the date.
    late = accepted(
        run(events(("A", "imaging", "2020-10-01", "v"), ("A", "steroid", "2020-10-20", "dose_rise")))
    )
    assert late["event_date"].tolist() == [D("2020-10-01")] and late.loc[0, "n_events"] == 2


def test_steroid_before_the_end_of_radiotherapy_never_back_dates() -> None:
    ev = events(("A", "steroid", "2020-03-10", "dose_rise"), ("A", "imaging", "2020-05-01", "volumetric"))
    a = accepted(run(ev, pseudoprogression_days=30))
    assert a["event_date"].tolist() == [D("2020-05-01")]
    assert "before the end of radiotherapy" in a.loc[0, "note"] and "steroid" in a.loc[0, "sources"]


def test_two_episodes_back_dated_to_one_increase_become_one_row() -> None:
    ev = events(
        ("A", "steroid", "2020-09-01", "dose_rise"),
        ("A", "nlp", "2020-09-20", "report_progression"),
        ("A", "imaging", "2020-10-05", "volumetric"),
    )
    a = accepted(run(ev))
    assert len(a) == 1 and a.loc[0, "event_date"] == D("2020-09-01")
    assert a.loc[0, "sources"] == "imaging,nlp,steroid" and a.loc[0, "n_events"] == 3


def test_death_before_progression_is_a_pfs_event_but_not_progression() -> None:
    pts = patients(A={"death_date": D("2020-07-01")})
    rec = run(events(("A", "nlp", "2020-08-01", "report_progression")), pts=pts)
    ep = build_endpoints(pts, rec, "reconciled").set_index("patient_id")
    assert ep.loc["A", "progressed"] == 0 and ep.loc["A", "pfs_event"] == 1
    assert ep.loc["A", "pfs_date"] == D("2020-07-01") and "after death ignored" in ep.loc["A", "note"]


def test_events_before_the_index_date_neither_count_nor_back_date() -> None:
    # A steroid course at diagnosis (before surgery) must not back-date a later progression.
    ev = events(
        ("A", "steroid", "2020-01-05", "new_course"),
        ("A", "nlp", "2020-01-06", "report_progression"),
        ("A", "nlp", "2020-08-01", "report_progression"),
    )
    rec = reconcile_events(
        ev,
        patients(),
        {"strategy": "guideline", "guideline": {"steroid_corroboration_days": 365}},
        index_date="surgery",
    )
    early = rec.loc[rec["rule"].str.startswith("before the index date")]
    assert early["event_date"].tolist() == [D("2020-01-05"), D("2020-01-06")]
    assert accepted(rec)["event_date"].tolist() == [D("2020-08-01")]


def test_patient_without_follow_up_is_censored_at_the_index_date() -> None:
    pts = pd.DataFrame(
        [
            {
                "patient_id": "Z",
                "diagnosis_date": D("2020-01-01"),
                "surgery_date": pd.NaT,
                "rt_start_date": pd.NaT,
                "rt_end_date": pd.NaT,
                "last_followup_date": pd.NaT,
                "death_date": pd.NaT,
            }
        ]
    )
    ep = build_endpoints(pts, run(events(), pts=pts), "reconciled").iloc[0]
    assert ep["pfs_event"] == 0 and ep["pfs_days"] == 0 and ep["progressed"] == 0


def test_no_events_gives_an_empty_typed_frame() -> None:
    rec = run(events())
    assert rec.empty and list(rec.columns)[:4] == ["patient_id", "event_date", "status", "rule"]
    assert pd.api.types.is_datetime64_any_dtype(rec["event_date"])


def test_an_unknown_source_is_set_aside_by_guideline() -> None:
    rec = run(events(("A", "pathology", "2020-08-01", "biopsy")))
    assert accepted(rec).empty and "not in the source registry" in rec.loc[0, "rule"]


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"strategy": "majority"}, "must be one of earliest, vote, guideline"),
        ({"strategy": "vote", "vote": {"window_days": -1}}, "whole number >= 0"),
        ({"strategy": "vote", "vote": {"min_sources": 0}}, "at least 1"),
        ({"strategy": "guideline", "guideline": {"confirm_min_days": 200}}, "must not exceed"),
        ({"strategy": "guideline", "guideline": {"confrim_max_days": 1}}, "unknown key"),
    ],
)
def test_bad_settings_are_clear_errors(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        reconcile_events(events(("A", "nlp", "2020-08-01", "r")), patients(), settings)
