"""The pseudoprogression window is decided once, by the reconciler, for every source's own endpoint too."""

from __future__ import annotations

import pandas as pd

from pfs.reconcile.endpoints import build_endpoints
from pfs.reconcile.window import single_source, window_bounds
from pfs.settings import load_config

SETTINGS = load_config().section("reconcile")
PATIENTS = pd.DataFrame({
    "patient_id": ["P1"],
    "diagnosis_date": pd.to_datetime(["2020-01-01"]),
    "surgery_date": pd.to_datetime(["2020-01-10"]),
    "rt_start_date": pd.to_datetime(["2020-02-10"]),
    "rt_end_date": pd.to_datetime(["2020-03-20"]),
    "death_date": pd.to_datetime([None]),
    "last_followup_date": pd.to_datetime(["2021-01-01"]),
})


def events(*rows: tuple[str, str, str]) -> pd.DataFrame:
    return pd.DataFrame([{"patient_id": "P1", "source": src, "event_date": pd.Timestamp(day), "kind": kind,
                          "ref_id": f"R{i}", "evidence": "seen"} for i, (src, day, kind) in enumerate(rows)])


def accepted(frame: pd.DataFrame) -> list[pd.Timestamp]:
    return frame.loc[frame["status"] == "accepted", "event_date"].tolist()


def test_the_window_runs_from_surgery_to_84_days_after_rt_end_by_default() -> None:
    assert window_bounds(PATIENTS, SETTINGS["guideline"]) == {
        "P1": (pd.Timestamp("2020-01-10"), pd.Timestamp("2020-06-12"))}
    at_rt = dict(SETTINGS["guideline"], window_opens="rt_start")
    assert window_bounds(PATIENTS, at_rt)["P1"][0] == pd.Timestamp("2020-02-10")


def test_an_unconfirmed_call_inside_the_window_is_possible_pseudoprogression() -> None:
    out = single_source(events(("nlp", "2020-04-20", "report_progression")), PATIENTS, SETTINGS)
    assert accepted(out) == [] and "possible pseudoprogression" in out.loc[0, "rule"]


def test_a_call_inside_the_window_confirmed_later_by_the_same_source_keeps_its_date() -> None:
    out = single_source(events(("nlp", "2020-04-20", "report_progression"), ("nlp", "2020-06-25", "report_progression")),
                        PATIENTS, SETTINGS)
    assert accepted(out)[0] == pd.Timestamp("2020-04-20")
    endpoint = build_endpoints(PATIENTS, out, "nlp")
    assert endpoint.loc[0, "progression_date"] == pd.Timestamp("2020-04-20")


def test_death_confirms_and_calls_outside_the_window_or_of_exempt_kinds_stand() -> None:
    died = PATIENTS.assign(death_date=pd.to_datetime(["2020-06-01"]))
    assert accepted(single_source(events(("steroid", "2020-04-20", "new_course")), died, SETTINGS)) == [
        pd.Timestamp("2020-04-20")]
    assert accepted(single_source(events(("steroid", "2020-08-01", "new_course")), PATIENTS, SETTINGS)) == [
        pd.Timestamp("2020-08-01")]
    assert accepted(single_source(events(("imaging", "2020-04-20", "new_lesion")), PATIENTS, SETTINGS)) == [
        pd.Timestamp("2020-04-20")]


def test_a_shorter_window_key_changes_every_source_at_once() -> None:
    short = {**SETTINGS, "guideline": {**SETTINGS["guideline"], "pseudoprogression_days": 14}}
    out = single_source(events(("nlp", "2020-04-20", "report_progression")), PATIENTS, short)
    assert accepted(out) == [pd.Timestamp("2020-04-20")]


def test_a_later_study_still_showing_the_growth_confirms_an_imaging_onset() -> None:
    """Imaging reports one event per onset; the scans after it say whether the growth lasted."""
    asm = pd.DataFrame({"patient_id": ["P1"], "source": ["imaging"], "assessment_date": [pd.Timestamp("2020-06-20")],
                        "ref_id": ["S5"], "assessment": ["after_progression"], "et_volume_ml": [9.0],
                        "nadir_ml": [2.0]})
    ev = events(("imaging", "2020-04-20", "volumetric_progression"))
    assert accepted(single_source(ev, PATIENTS, SETTINGS)) == []
    assert accepted(single_source(ev, PATIENTS, SETTINGS, asm)) == [pd.Timestamp("2020-04-20")]
