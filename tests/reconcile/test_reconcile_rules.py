"""The guideline's rules on conflicts, confirmation and next-line therapy, on hand-built event tables.

RT ends 2020-03-20, so the 84-day pseudoprogression window runs 2020-02-10 .. 2020-06-12; every date
below after 2020-06-12 is outside it.
"""

from __future__ import annotations

import pandas as pd

from pfs.reconcile import reconcile_events
from pfs.reconcile.assessments import COLUMNS, from_report_labels, from_volumes

D = pd.Timestamp
PATIENT = {
    "patient_id": "A",
    "diagnosis_date": D("2020-01-01"),
    "surgery_date": D("2020-01-10"),
    "rt_start_date": D("2020-02-10"),
    "rt_end_date": D("2020-03-20"),
    "last_followup_date": D("2021-12-01"),
    "death_date": pd.NaT,
}


def patients() -> pd.DataFrame:
    return pd.DataFrame([PATIENT])


def events(*rows: tuple) -> pd.DataFrame:
    """(source, date, kind, ref_id) tuples of patient A."""
    out = pd.DataFrame(rows, columns=["source", "event_date", "kind", "ref_id"])
    out.insert(0, "patient_id", "A")
    out["event_date"] = pd.to_datetime(out["event_date"])
    out["evidence"] = out["kind"] + " seen"
    out["value"] = float("nan")
    out["confidence"] = 1.0
    return out


def assessments(*rows: tuple) -> pd.DataFrame:
    """(source, date, ref_id, assessment, et_volume_ml, nadir_ml) tuples of patient A."""
    out = pd.DataFrame(rows, columns=COLUMNS[1:])
    out.insert(0, "patient_id", "A")
    out["assessment_date"] = pd.to_datetime(out["assessment_date"])
    return out[COLUMNS]


def run(ev: pd.DataFrame, asm: pd.DataFrame | None = None, **section: object) -> pd.DataFrame:
    settings = {"strategy": "guideline", "guideline": section}
    return reconcile_events(ev, patients(), settings, assessments=asm)


def accepted(rec: pd.DataFrame) -> pd.DataFrame:
    return rec.loc[rec["status"] == "accepted"].reset_index(drop=True)


NAN = float("nan")


# --- conflicts on the same study ----------------------------------------------------------------------------


def test_imaging_progression_that_the_report_of_the_same_study_reads_as_stable_needs_confirmation() -> None:
    ev = events(("imaging", "2020-09-01", "volumetric_progression", "S3"))
    asm = assessments(("imaging", "2020-09-01", "S3", "progression", 5.0, 3.0),
                      ("nlp", "2020-09-01", "R3", "stable", NAN, NAN))
    rec = run(ev, asm)
    assert accepted(rec).empty
    assert "read the same study differently" in rec.loc[0, "rule"] and "not confirmed" in rec.loc[0, "rule"]
    # the evidence chain shows the conflict, and the report does not count as a contributing source
    assert "context: nlp 2020-09-01 R3 read the same study as stable" in rec.loc[0, "evidence"]
    assert rec.loc[0, "sources"] == "imaging"
    # Without the assessments the same event stands alone, as before this rule.
    assert accepted(run(ev))["event_date"].tolist() == [D("2020-09-01")]


def test_a_report_signed_the_next_day_is_the_same_study_and_a_later_one_is_not() -> None:
    ev = events(("nlp", "2020-09-02", "report_progression", "R3"))
    same = assessments(("imaging", "2020-09-01", "S3", "stable", 2.0, 2.0))
    assert accepted(run(ev, same)).empty
    other = assessments(("imaging", "2020-08-30", "S3", "stable", 2.0, 2.0))
    assert accepted(run(ev, other))["event_date"].tolist() == [D("2020-09-02")]


def test_a_conflict_confirmed_on_a_later_scan_is_dated_to_the_first_scan() -> None:
    ev = events(("nlp", "2020-09-01", "report_progression", "R3"),
                ("nlp", "2020-11-02", "report_progression", "R4"))
    asm = assessments(("imaging", "2020-09-01", "S3", "stable", 2.0, 2.0))
    a = accepted(run(ev, asm))
    assert a.loc[0, "event_date"] == D("2020-09-01")
    assert "confirmed on 2020-11-02" in a.loc[0, "rule"] and "R4" in a.loc[0, "ref_ids"]


def test_sources_that_agree_on_the_same_study_are_no_conflict() -> None:
    ev = events(("imaging", "2020-09-01", "volumetric_progression", "S3"))
    asm = assessments(("imaging", "2020-09-01", "S3", "progression", 5.0, 3.0),
                      ("nlp", "2020-09-01", "R3", "progression", NAN, NAN))
    assert accepted(run(ev, asm))["event_date"].tolist() == [D("2020-09-01")]


# --- progression from a non-measurable nadir ------------------------------------------------------------------


def test_a_step_from_a_non_measurable_nadir_needs_confirmation_also_after_the_window() -> None:
    # 0 -> 1.1 mL, and the next scan measures 0 again: noise of the segmenter, not progression.
    ev = events(("imaging", "2020-09-01", "volumetric_progression", "S3"))
    asm = assessments(("imaging", "2020-06-20", "S2", "stable", 0.0, 0.0),
                      ("imaging", "2020-09-01", "S3", "progression", 1.1, 0.0),
                      ("imaging", "2020-11-05", "S4", "after_progression", 0.0, 0.0))
    rec = run(ev, asm)
    assert accepted(rec).empty and "non-measurable nadir (0.0 mL < 1 mL)" in rec.loc[0, "rule"]


def test_growth_on_the_next_scan_confirms_a_non_measurable_nadir_dated_to_the_first_scan() -> None:
    ev = events(("imaging", "2020-09-01", "volumetric_progression", "S3"))
    asm = assessments(("imaging", "2020-09-01", "S3", "progression", 1.1, 0.0),
                      ("imaging", "2020-11-05", "S4", "after_progression", 3.5, 0.0))
    a = accepted(run(ev, asm))
    assert a["event_date"].tolist() == [D("2020-09-01")] and "confirmed by imaging S4" in a.loc[0, "rule"]


def test_a_measurable_nadir_needs_no_confirmation_after_the_window() -> None:
    ev = events(("imaging", "2020-09-01", "volumetric_progression", "S3"))
    asm = assessments(("imaging", "2020-09-01", "S3", "progression", 4.0, 1.5))
    assert accepted(run(ev, asm))["event_date"].tolist() == [D("2020-09-01")]
    # the floor is a setting
    assert accepted(run(ev, asm, measurable_nadir_ml=2.0)).empty


# --- next-line therapy ------------------------------------------------------------------------------------------


def test_next_line_therapy_confirms_a_preliminary_progression_which_keeps_its_scan_date() -> None:
    ev = events(("imaging", "2020-04-20", "volumetric_progression", "S2"),  # inside the window
                ("treatment", "2020-05-25", "next_line_therapy", "M9"))
    a = accepted(run(ev))
    assert len(a) == 1 and a.loc[0, "event_date"] == D("2020-04-20")
    assert "confirmed by the start of next-line therapy on 2020-05-25" in a.loc[0, "rule"]
    assert a.loc[0, "sources"] == "imaging,treatment"


def test_next_line_therapy_never_dates_progression_when_a_tumour_event_precedes_it() -> None:
    ev = events(("nlp", "2020-09-01", "report_progression", "R3"),
                ("treatment", "2020-10-10", "next_line_therapy", "M9"))
    a = accepted(run(ev))
    assert a["event_date"].tolist() == [D("2020-09-01")] and "M9" in a.loc[0, "ref_ids"]


def test_next_line_therapy_alone_dates_progression_flagged_late() -> None:
    a = accepted(run(events(("treatment", "2020-10-10", "next_line_therapy", "M9"))))
    assert a["event_date"].tolist() == [D("2020-10-10")]
    assert "late" in a.loc[0, "note"] and "dated by the start of the new line" in a.loc[0, "rule"]


def test_next_line_therapy_alone_inside_the_window_is_not_progression() -> None:
    rec = run(events(("treatment", "2020-05-10", "next_line_bevacizumab", "M9")))
    assert accepted(rec).empty and "possible treatment of pseudoprogression" in rec.loc[0, "rule"]


def test_next_line_therapy_long_after_a_set_aside_tumour_event_dates_alone() -> None:
    # The pseudoprogression in the window is set aside; the line five months later dates by itself.
    ev = events(("imaging", "2020-04-20", "volumetric_progression", "S2"),
                ("treatment", "2020-10-10", "next_line_therapy", "M9"))
    a = accepted(run(ev))
    assert a["event_date"].tolist() == [D("2020-10-10")]


# --- bevacizumab pseudo-response ---------------------------------------------------------------------------------


def test_improvement_after_bevacizumab_does_not_reset_the_nadir() -> None:
    # Bevacizumab for radiation necrosis on 2020-08-01; enhancement drops 6 -> 2 mL (pseudo-response),
    # then 3.5 mL: +75 % over the bevacizumab nadir, but below the nadir of 6 mL before it.
    ev = events(("treatment", "2020-08-01", "next_line_bevacizumab", "M9"),
                ("imaging", "2021-01-10", "volumetric_progression", "S5"))
    asm = assessments(("imaging", "2020-07-01", "S3", "stable", 6.0, 6.0),
                      ("imaging", "2020-10-01", "S4", "improved", 2.0, 6.0),
                      ("imaging", "2021-01-10", "S5", "progression", 3.5, 2.0))
    rec = run(ev, asm, treatment_alone_in_window=False)
    img = rec.loc[rec["sources"] == "imaging"].reset_index(drop=True)
    assert img.loc[0, "status"] == "rejected" and "pseudo-response nadir" in img.loc[0, "rule"]
    # Growth beyond the pre-bevacizumab nadir (+40 % and +1 mL over 6 mL) is progression.
    asm2 = asm.assign(et_volume_ml=asm["et_volume_ml"].where(asm["ref_id"] != "S5", 9.0))
    rec2 = run(ev, asm2)
    img2 = rec2.loc[rec2["kinds"].str.contains("volumetric_progression")].reset_index(drop=True)
    assert img2.loc[0, "status"] == "accepted" and not rec2["rule"].str.contains("pseudo-response").any()


# --- the single pseudoprogression window: extractors no longer apply it ---------------------------------------


def test_the_reconciler_alone_applies_the_window_to_raw_extractor_events() -> None:
    # What the extractors emit once their own windows are gone: an in-window report, an in-window
    # volumetric step, and a steroid course for treatment effect; none is confirmed later.
    ev = events(("nlp", "2020-04-20", "report_progression", "R2"),
                ("imaging", "2020-04-20", "volumetric_progression", "S2"),
                ("steroid", "2020-04-25", "new_course", "M1"))
    rec = run(ev)
    assert accepted(rec).empty
    assert rec["rule"].str.contains("possible pseudoprogression").any()
    # A steroid course inside the window corroborates a later progression and never back-dates into it.
    late = accepted(run(events(("steroid", "2020-05-01", "new_course", "M1"),
                               ("nlp", "2020-07-20", "report_progression", "R3"))))
    assert late["event_date"].tolist() == [D("2020-07-20")]
    assert "inside the pseudoprogression window not used for back-dating" in late.loc[0, "note"]


# --- the adapters that build assessments from the sources' tables ------------------------------------------------


def test_assessments_are_read_from_report_labels_and_volumes() -> None:
    labels = pd.DataFrame({"patient_id": ["A", "A"], "report_id": ["R1", "R2"],
                           "report_date": [D("2020-09-01"), D("2020-10-01")],
                           "label": ["stable", "not_applicable"]})
    vols = pd.DataFrame({"patient_id": ["A"] * 3, "study_id": ["S1", "S2", "S3"],
                         "study_date": [D("2020-01-11"), D("2020-05-01"), D("2020-09-01")],
                         "et_volume_ml": [3.0, 1.0, 4.0],
                         "rano_state": ["pre_baseline", "new_nadir", "progression"], "nadir_ml": [NAN, 3.0, 1.0]})
    assert from_report_labels(labels)["assessment"].tolist() == ["stable"]
    v = from_volumes(vols)
    assert v["ref_id"].tolist() == ["S2", "S3"] and v["assessment"].tolist() == ["improved", "progression"]


def test_a_call_on_the_post_operative_scans_before_chemoradiation_is_preliminary() -> None:
    # Surgery 2020-01-10, RT from 2020-02-10: a report of progression on 2020-01-20 describes the
    # post-operative scan, RANO 2.0's baseline period, and stands only once confirmed.
    ev = events(("nlp", "2020-01-20", "report_progression", "R1"))
    rec = run(ev)
    assert accepted(rec).empty and "inside the pseudoprogression window" in rec.loc[0, "rule"]
    a = accepted(run(ev, window_opens="rt_start"))
    assert a["event_date"].tolist() == [D("2020-01-20")] and "before the pseudoprogression window" in a.loc[0, "rule"]


def test_a_later_line_after_an_accepted_progression_neither_dates_nor_is_told_as_alone() -> None:
    ev = events(("nlp", "2020-09-01", "report_progression", "R3"),
                ("treatment", "2021-03-01", "next_line_therapy", "M9"))
    rec = run(ev)
    assert accepted(rec)["event_date"].tolist() == [D("2020-09-01")]
    later = rec.loc[rec["ref_ids"] == "M9"].iloc[0]
    assert later["status"] == "rejected" and "after the progression dated 2020-09-01" in later["rule"]


def test_a_conflict_confirmed_by_the_source_that_disagreed_is_dated_where_both_agree() -> None:
    # The report calls progression on S3; the volumetry of S3 is stable (2.1 mL on a 2.0 mL nadir) and
    # shows growth only on S4: S4 is the first scan both read as progression.
    ev = events(("nlp", "2020-09-01", "report_progression", "R3"),
                ("imaging", "2020-11-20", "volumetric_progression", "S4"))
    asm = assessments(("imaging", "2020-09-01", "S3", "stable", 2.1, 2.0),
                      ("imaging", "2020-11-20", "S4", "progression", 5.1, 2.0))
    a = accepted(run(ev, asm))
    assert a["event_date"].min() == D("2020-11-20")
    assert "the first scan the other source also reads as progression" in a.loc[0, "rule"]
    assert a.loc[0, "event_date"] == D("2020-11-20") and "R3" in a.loc[0, "ref_ids"]
    # Off, confirmation dates back to the first scan as for any other preliminary call.
    off = accepted(run(ev, asm, conflict_dated_by_the_other_source=False))
    assert off["event_date"].min() == D("2020-09-01")


def test_progression_is_back_dated_only_to_a_steroid_increase_shortly_before_the_scan() -> None:
    near = accepted(run(events(("steroid", "2020-09-01", "new_course", "M1"),
                               ("nlp", "2020-10-10", "report_progression", "R3"))))
    assert near["event_date"].tolist() == [D("2020-09-01")]  # 39 days before: back-dated
    far = accepted(run(events(("steroid", "2020-08-01", "new_course", "M1"),
                              ("nlp", "2020-10-10", "report_progression", "R3"))))
    assert far["event_date"].tolist() == [D("2020-10-10")]  # 70 days before: corroborates only
    assert "corroborated by a steroid increase" in far.loc[0, "rule"] and far.loc[0, "sources"] == "nlp,steroid"
