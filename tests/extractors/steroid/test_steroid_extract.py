"""The extractor end to end on a small hand-written export: events, tables, quarantine, counts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pfs.exceptions import ConfigError
from pfs.extractors.steroid import extract
from pfs.io import load_export
from pfs.io.quarantine import COLUMNS as QCOLS
from pfs.io.schema import load_schema
from pfs.settings import load_config

PATIENTS = """patient_id,diagnosis_date,surgery_date,rt_start_date,rt_end_date,last_followup_date,death_date
P1,2020-01-01,2020-01-10,2020-02-10,2020-03-20,2021-06-01,
P2,2020-01-01,2020-01-10,2020-02-10,2020-03-20,2021-06-01,2020-12-01
"""
# P1: peri-operative dexamethasone, a renewal, a prednisone burst, an antiemetic dose, then a restart
# after a long steroid-free spell (the progression signal) and an escalation.
MEDS = """patient_id,medication_id,order_date,end_date,drug_name,dose,dose_unit,frequency,route,sig
P1,M01,2020-01-01,2020-01-20,dexAMETHasone (DECADRON) 4 MG tab,4,mg,BID,PO,1 tab (4 mg total) twice daily
P1,M02,2020-01-18,2020-02-05,Decadron,,,,PO,"2 mg BID x 5 days, then 1 mg BID x 5 days, then stop"
P1,M03,2020-05-01,,prednisone 20 mg tablet,40,mg,daily,PO,40 mg daily x 5 days
P1,M04,2020-05-20,2020-05-20,dexamethasone inj,8,mg,once,IV,8 mg IV prior to chemotherapy
P1,M05,2020-07-01,2020-07-30,dexamethasone 4 mg tab,1,tablet,,PO,Take 1 tablet by mouth twice daily
P1,M06,2020-07-20,2020-08-30,dexamethasone 4 mg tab,4,mg,TID,PO,
P1,M07,2020-07-01,,levetiracetam 500 mg,500,mg,BID,PO,
P1,M08,2020-06-01,,hydrocortisone 1 % cream,1,application,BID,topical,apply to rash
P1,M09,2020-06-05,,fluticasone nasal spray,50,mcg,daily,nasal,
P2,M10,2020-01-02,2020-01-01,dexamethasone,4,mg,BID,PO,
P2,M11,2020-02-01,,dexamethasone,400,mg,QID,PO,400 mg PO QID
P2,M12,2019-01-01,2019-01-10,dexamethasone,4,mg,BID,PO,
P2,M13,2020-12-15,,dexamethasone,4,mg,BID,PO,
P2,M14,2020-03-01,,dexamethasone,,,,PO,as directed per neurosurgery
P2,M15,2020-01-02,2020-01-12,dexamethasone,4,mg,BID,PO,
"""


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    root = tmp_path_factory.mktemp("steroid") / "export"
    root.mkdir()
    (root / "patients.csv").write_text(PATIENTS)
    (root / "medications.csv").write_text(MEDS)
    return extract(load_export(root), load_config())


def test_restart_after_steroid_free_days_is_the_event(result):
    ev = result.events
    assert set(ev.columns) >= set(load_schema("events").columns)
    p1 = ev.loc[ev["patient_id"] == "P1"]
    first = p1.iloc[0]
    assert first["kind"] == "new_course"
    assert first["event_date"] == pd.Timestamp("2020-07-01")
    assert first["ref_id"] == "M05"
    assert first["value"] == 8.0
    assert first["source"] == "steroid" and 0 < first["confidence"] <= 1
    # the taper ends 2020-01-27; 2020-01-28 .. 2020-06-30 without counted steroids = 155 days
    assert first["evidence"] == (
        "dexamethasone restarted 4 mg BID (8 mg/day dex-eq) after 155 steroid-free days"
    )
    # the prednisone burst and the antiemetic dose raise nothing
    assert not ((p1["event_date"] >= "2020-05-01") & (p1["event_date"] < "2020-07-01")).any()
    # the escalation to 12 mg/day on 2020-07-20 continues the same episode above the nadir: the rise
    # that started with the restart is reported once, as the new course
    assert "dose_rise" not in set(p1["kind"])


def test_courses_and_discounts(result):
    c = result.tables["steroid_courses"]
    p1 = c.loc[c["patient_id"] == "P1"].reset_index(drop=True)
    assert p1["course_id"].tolist() == ["P1-SC01", "P1-SC02", "P1-SC03", "P1-SC04"]
    assert p1["discounted"].tolist() == [0, 1, 1, 0]
    assert p1.loc[1, "discount_reason"] == "short prednisone burst"
    assert p1.loc[1, "peak_dex_eq_mg_per_day"] == pytest.approx(6.0)  # prednisone 40 mg = 6 mg dex-eq
    assert p1.loc[2, "discount_reason"] == "antiemetic or premedication use"
    assert p1.loc[0, "phase"] == "peri_treatment" and p1.loc[3, "phase"] == "post_treatment"
    assert p1.loc[0, "end_date"] == pd.Timestamp("2020-01-27")  # renewal taper: 5 + 5 days
    assert p1.loc[0, "peak_dex_eq_mg_per_day"] == 8.0  # not 8 + 4 on the overlap day
    assert p1.loc[3, "peak_dex_eq_mg_per_day"] == 12.0
    assert p1.loc[3, "first_medication_id"] == "M05"


def test_daily_series_is_run_length_and_matches_the_courses(result):
    d = result.tables["steroid_daily"]
    assert set(d.columns) == set(load_schema("steroid_daily").columns)
    p1 = d.loc[d["patient_id"] == "P1"]
    cum = (p1["dex_eq_mg_per_day"] * p1["days"]).sum()
    c = result.tables["steroid_courses"]
    assert cum == pytest.approx(c.loc[c["patient_id"] == "P1", "cumulative_dex_eq_mg"].sum())
    first = p1.iloc[0]
    assert (first["start_date"], first["dex_eq_mg_per_day"]) == (pd.Timestamp("2020-01-01"), 8.0)


def test_bad_steroid_rows_are_quarantined_with_reasons(result):
    q = result.quarantine
    assert list(q.columns) == QCOLS
    assert set(q["stage"]) == {"steroid"} and set(q["table"]) == {"medications"}
    reasons = dict(zip(q["row"], q["reason"], strict=True))
    rows = {
        mid: i + 1
        for i, mid in enumerate(
            [
                "M01",
                "M02",
                "M03",
                "M04",
                "M05",
                "M06",
                "M07",
                "M08",
                "M09",
                "M10",
                "M11",
                "M12",
                "M13",
                "M14",
                "M15",
            ]
        )
    }
    assert "end_date before order_date" in reasons[rows["M10"]]
    assert "above the plausible maximum" in reasons[rows["M11"]]
    assert "before the diagnosis" in reasons[rows["M12"]]
    assert "after the death_date" in reasons[rows["M13"]]
    assert "no dose" in reasons[rows["M14"]]
    assert q.loc[q["row"] == rows["M14"], "value"].item() == "<redacted>"  # sig text is never copied
    assert len(q) == 5  # non-steroids are not quarantined
    # the patient still has its good row
    assert "P2" in set(result.tables["steroid_courses"]["patient_id"])


def test_counts_add_up(result):
    c = result.counts
    assert c["rows_examined"] == 15
    assert c["non_steroid_rows"] == 2  # levetiracetam, fluticasone
    assert c["non_systemic_rows"] == 1  # hydrocortisone cream
    assert c["steroid_rows"] == 12
    assert c["quarantined_rows"] == 5
    assert c["discounted_courses"] == 2
    assert c["rows_examined"] == c["steroid_rows"] + c["non_steroid_rows"] + c["non_systemic_rows"]


def test_rules_can_be_switched_off_and_unknown_rules_are_rejected(tmp_path: Path):
    root = tmp_path / "export"
    root.mkdir()
    (root / "patients.csv").write_text(PATIENTS)
    (root / "medications.csv").write_text(MEDS)
    export = load_export(root)
    only = extract(export, load_config({"steroid": {"rules": ["dose_rise"]}}))
    assert set(only.events["kind"]) == {"dose_rise"}
    with pytest.raises(ConfigError, match="unknown rule 'rise'"):
        extract(export, load_config({"steroid": {"rules": ["rise"]}}))


def test_an_export_without_medications_gives_empty_outputs(tmp_path: Path):
    root = tmp_path / "export"
    root.mkdir()
    (root / "patients.csv").write_text(PATIENTS)
    r = extract(load_export(root), load_config())
    assert r.events.empty and r.tables["steroid_courses"].empty and r.tables["steroid_daily"].empty
    assert r.counts["rows_examined"] == 0


RENEWALS = """patient_id,medication_id,order_date,end_date,drug_name,dose,dose_unit,frequency,route,sig
P1,R1,2020-01-01,2020-01-20,dexamethasone,4,mg,BID,PO,
P1,R2,2020-07-01,2020-07-14,dexamethasone,4,mg,BID,PO,
P1,R3,2020-07-15,2020-07-28,dexamethasone,4,mg,BID,PO,
P1,R4,2020-07-29,2020-08-11,dexamethasone,4,mg,BID,PO,
"""


@pytest.mark.parametrize(
    "one_per_course, kinds",
    [
        (True, ["new_course"]),
        (False, ["new_course", "prescription_frequency"]),
    ],
)
def test_one_event_per_course(tmp_path: Path, one_per_course, kinds):
    root = tmp_path / "export"
    root.mkdir()
    (root / "patients.csv").write_text(PATIENTS)
    (root / "medications.csv").write_text(RENEWALS)
    r = extract(load_export(root), load_config({"steroid": {"one_event_per_course": one_per_course}}))
    assert r.events["kind"].tolist() == kinds
    assert r.events["event_date"].iloc[0] == pd.Timestamp("2020-07-01")
    # three renewals of 14 days are one course of 42 days at 8 mg/day, not three
    c = r.tables["steroid_courses"]
    assert c["days"].tolist() == [20, 42]


def test_every_steroid_setting_is_documented():
    from importlib import resources

    text = resources.files("pfs.config").joinpath("steroid.toml").read_text(encoding="utf-8").splitlines()
    keys = [i for i, line in enumerate(text) if line and not line.startswith("#") and "=" in line]
    assert len(keys) == len(load_config().section("steroid"))
    for i in keys:
        j = i - 1
        while j in keys:  # a block of settings shares the comment above it
            j -= 1
        assert text[j].startswith("#"), f"setting on line {i + 1} has no comment giving its rationale"


@pytest.mark.parametrize("end_date", ["2020-05-20", "2020-07-15"])
def test_a_course_inside_the_pseudoprogression_window_is_reported(tmp_path: Path, end_date):
    """The steroid source reports what it saw; the window is the reconciler's (tests/reconcile/test_reconcile_window.py)."""
    meds = (
        "patient_id,medication_id,order_date,end_date,drug_name,dose,dose_unit,frequency,route,sig\n"
        "P1,A1,2020-01-01,2020-01-20,dexamethasone,4,mg,BID,PO,\n"
        f"P1,A2,2020-05-01,{end_date},dexamethasone,4,mg,BID,PO,\n"
    )
    root = tmp_path / "export"
    root.mkdir()
    (root / "patients.csv").write_text(PATIENTS)
    (root / "medications.csv").write_text(meds)
    r = extract(load_export(root), load_config())
    assert r.events["event_date"].tolist() == [pd.Timestamp("2020-05-01")]
