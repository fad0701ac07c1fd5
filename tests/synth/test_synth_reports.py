"""Synthetic radiology reports: one per MRI plus unrelated studies, varied styles, truth with reader error."""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from datetime import date, timedelta

import pandas as pd
import pytest

from pfs.exceptions import RuleFileError
from pfs.io.quarantine import Quarantine
from pfs.io.schema import coerce_and_validate, load_schema
from pfs.synth import reports as synth_reports
from pfs.synth.course import PatientCourse, simulate_cohort
from pfs.vocab import ReportLabel

SEED = 7


def contains(texts: pd.Series, pattern: str) -> pd.Series:
    """Row-wise ``re.search``; pandas' own warns about the groups these readable patterns use."""
    return texts.map(lambda text: re.search(pattern, text) is not None)


@pytest.fixture(scope="module")
def cohort() -> list[PatientCourse]:
    return simulate_cohort(60, SEED)


@pytest.fixture(scope="module")
def generated(cohort: list[PatientCourse]) -> tuple[pd.DataFrame, pd.DataFrame]:
    return synth_reports.generate(cohort, SEED)


@pytest.fixture(scope="module")
def reports(generated: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return generated[0]


@pytest.fixture(scope="module")
def truth(generated: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return generated[1]


@pytest.fixture(scope="module")
def mri(reports: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    both = truth.merge(reports[["report_id", "procedure", "text"]], on="report_id")
    return both[both["study_id"] != ""]


@pytest.fixture(scope="module")
def large() -> pd.DataFrame:
    """A 200-patient cohort's brain-MRI truth joined to its scans: enough reports for stable error rates."""
    courses = simulate_cohort(200, SEED)
    _, truth = synth_reports.generate(courses, SEED)
    return truth[truth["study_id"] != ""].merge(_scans(courses), on="study_id", suffixes=("", "_scan"))


@pytest.fixture(scope="module")
def scans(cohort: list[PatientCourse]) -> pd.DataFrame:
    return _scans(cohort)


def _scans(cohort: list[PatientCourse]) -> pd.DataFrame:
    return pd.DataFrame([{
        "patient_id": c.patient_id, "study_id": s.study_id, "scan_date": s.date, "label": s.label.value,
        "pseudo": s.pseudo,
        "regrowing": c.true_progression_date is not None and s.date > c.true_progression_date,
        "first_progression": s.study_id == next(
            (t.study_id for t in c.scans if t.label == ReportLabel.PROGRESSION), None),
    } for c in cohort for s in c.scans])


# ----------------------------------------------------------------------------------------- determinism

def test_same_courses_and_seed_give_identical_frames(cohort, generated):
    again = synth_reports.generate(cohort, SEED)
    pd.testing.assert_frame_equal(generated[0], again[0])
    pd.testing.assert_frame_equal(generated[1], again[1])


def test_another_seed_gives_other_wording(cohort, reports):
    other, _ = synth_reports.generate(cohort[:5], SEED + 1)
    mine = reports[reports["patient_id"].isin(other["patient_id"])]
    assert set(other["text"]).isdisjoint(set(mine["text"]))


def test_a_patients_reports_do_not_depend_on_the_rest_of_the_cohort(cohort, reports):
    alone, _ = synth_reports.generate([cohort[3]], SEED)
    same = reports[reports["patient_id"] == cohort[3].patient_id]
    assert alone["text"].tolist() == same["text"].tolist()


# ------------------------------------------------------------------------------------------- the layout

def test_reports_have_the_native_layout_and_pass_its_schema(reports):
    assert list(reports.columns) == ["patient_id", "report_id", "report_date", "procedure", "text"]
    assert reports["report_id"].is_unique
    assert reports["report_id"].str.fullmatch(r"R\d{6}").all()
    frame = reports.astype(str).assign(_row=range(1, len(reports) + 1))
    quarantine = Quarantine()
    typed = coerce_and_validate(frame, load_schema("reports"), quarantine, table="reports")
    assert len(quarantine) == 0
    assert len(typed) == len(reports)


def test_rows_are_sorted_by_patient_date_and_id(reports, truth):
    key = ["patient_id", "report_date", "report_id"]
    assert reports[key].equals(reports[key].sort_values(key).reset_index(drop=True))
    assert (truth["report_id"] == reports["report_id"]).all()
    assert (truth["report_date"] == reports["report_date"]).all()
    assert (truth["patient_id"] == reports["patient_id"]).all()


def test_truth_has_the_promised_columns(truth):
    assert list(truth.columns) == ["report_id", "patient_id", "report_date", "study_id", "true_label",
                                   "written_label", "bt_rads"]


# ------------------------------------------------------------------------------------ truth vs course

def test_every_mri_has_exactly_one_report(mri, scans):
    assert sorted(mri["study_id"]) == sorted(scans["study_id"])


def test_truth_aligns_with_the_scans(mri, scans):
    joined = mri.merge(scans, on="study_id", suffixes=("", "_scan"))
    assert (joined["patient_id"] == joined["patient_id_scan"]).all()
    assert (joined["true_label"] == joined["label"]).all()
    lag = (pd.to_datetime(joined["report_date"]) - pd.to_datetime(joined["scan_date"])).dt.days
    assert set(lag) == {0, 1}  # signed the same day, sometimes the next
    assert 0.03 < (lag == 1).mean() < 0.25


def test_unrelated_reports_are_not_applicable_and_not_brain_mri(reports, truth):
    other = truth["study_id"] == ""
    assert other.sum() > truth["study_id"].ne("").sum()  # brain MRIs are a minority, as in the reference
    assert (truth.loc[other, ["true_label", "written_label"]] == ReportLabel.NOT_APPLICABLE.value).all().all()
    assert (truth.loc[other, "bt_rads"] == "").all()
    procedures = reports.loc[other, "procedure"]
    assert not procedures.str.contains(r"^MR.*\b(?:BRAIN|HEAD)\b", case=False).any()
    kinds = ("CT CHEST", "XR CHEST|CHEST PORTABLE", "CT ABD", "SPINE", "DUPLEX|DOPPLER", "CT HEAD|CT BRAIN")
    for pattern in kinds:
        assert procedures.str.contains(pattern).any(), pattern


def test_postoperative_reports_make_no_assessment(mri, scans):
    postop = mri.merge(scans, on="study_id")
    postop = postop[postop["label"] == ReportLabel.NO_ASSESSMENT.value]
    assert len(postop) == 60
    assert (postop["written_label"] == ReportLabel.NO_ASSESSMENT.value).all()
    assert contains(postop["text"], r"(?i)postoperative changes|postop changes").all()


# ------------------------------------------------------------------------------------------ reader error

def test_written_label_mostly_follows_the_truth(large):
    assessed = large[large["true_label"] != ReportLabel.NO_ASSESSMENT.value]
    wrong = assessed["written_label"] != assessed["true_label"]
    assert 0.05 <= wrong.mean() <= 0.14


def test_errors_go_both_ways(large):
    prog = ReportLabel.PROGRESSION.value
    under = (large["true_label"] == prog) & (large["written_label"] != prog)
    over = (large["true_label"] != prog) & (large["written_label"] == prog)
    assert under.sum() >= 10
    assert over.sum() >= 3


def test_errors_cluster_at_pseudoprogression_and_the_first_progression(large):
    joined = large[large["label"] != ReportLabel.NO_ASSESSMENT.value]
    wrong = joined["written_label"] != joined["true_label"]
    indeterminate = joined["label"] == ReportLabel.INDETERMINATE.value
    hard = joined["pseudo"] | joined["first_progression"] | indeterminate
    routine = joined["label"].isin(["stable", "improved"]) & ~joined["regrowing"] & ~hard
    assert wrong[hard].mean() > 2 * wrong[routine].mean()


def test_every_label_occurs(truth):
    assert set(truth["true_label"]) == {label.value for label in ReportLabel}
    assert set(truth["written_label"]) == {label.value for label in ReportLabel}


# ----------------------------------------------------------------------------------------------- styles

STYLE_FEATURES = {
    "sections": r"(?m)^(FINDINGS|Findings):",
    "numbered impression": r"(?m)^1\. .*\n2\. ",
    "measurement with prior": r"\d+(\.\d)? x \d+(\.\d)? (cm|mm)\)?,? ?\(?previously \d",
    "comparison date": r"(?i)comparison:? (MRI brain )?"
                       r"(\d{1,2}/\d{1,2}/\d{2,4}|\d{4}-\d{2}-\d{2}|[A-Z][a-z]+ \d{1,2}, \d{4})",
    "negation": r"\b(No new enhancing|without evidence of|[Nn]egative for|No evidence of)",
    "hedging": r"\b(may represent|cannot be excluded|favored to represent|versus|not excluded)\b",
    "historical": r"\b(status post|[Ss]/p|[Pp]reviously noted|prior progression|[Pp]reviously described)\b",
    "hypothetical": r"to (evaluate|assess) for progression",
    "incidental": r"(small vessel ischemic|sinus disease|mastoid|arachnoid cyst|venous anomaly)",
    "abbreviation": r"\b(GBM|c/w|[rR]/o|s/p|CRT)\b",
    "typo": r"\b(enhancment|enhacement|teh|hte|unchagned|unchnaged|resecton|legion|previosuly|adn|wiht)\b",
    "bt-rads": r"BT-RADS:? (0|1a|1b|2|3a|3b|3c|4)\b",
    "addendum": r"(?i)addendum",
    "distant lesion": r"New (enhancing lesion|nodular focus|\S+ ring-enhancing)",
    "pseudoprogression": r"(pseudoprogression|radiation necrosis|treatment-related change)",
    "postoperative": r"[Ee]xpected postop(erative)? changes",
    "residual": r"[Rr]esidual (nodular enhancement|enhancing tumor)",
}


@pytest.mark.parametrize("feature", sorted(STYLE_FEATURES))
def test_style_feature_occurs_in_the_cohort(mri, feature):
    assert contains(mri["text"], STYLE_FEATURES[feature]).any(), feature


def test_some_addenda_revise_the_impression(mri):
    openings = [re.escape(phrase.split("{")[0][:24]) for phrases in
                synth_reports.load_phrases()["addendum"]["change"].values() for phrase in phrases]
    assert contains(mri["text"], "|".join(openings)).sum() >= 2


def test_some_reports_are_one_dictated_paragraph(mri):
    no_headers = ~contains(mri["text"], r"(?m)^(FINDINGS|Findings):")
    assert 0.1 < no_headers.mean() < 0.6


def test_a_brain_mri_can_hide_behind_a_generic_procedure(mri):
    generic = mri[~mri["procedure"].str.contains(r"BRAIN|HEAD", case=False)]
    assert len(generic) >= 3
    assert contains(generic["text"], r"(?i)\b(brain|head)\b").all()  # only the text says it is the brain


def test_bt_rads_is_written_by_some_readers_and_matches_the_written_label(mri):
    scored = mri[mri["bt_rads"] != ""]
    assert 0.15 < len(scored) / len(mri) < 0.7
    expected = {
        "progression": {"4", "3c"}, "stable": {"2"}, "improved": {"1a", "1b"}, "treatment_effect": {"3a"},
        "indeterminate": {"3b"}, "no_assessment": {"0"},
    }
    pairs = list(zip(scored["written_label"], scored["bt_rads"], strict=True))
    assert all(score in expected[label] for label, score in pairs)
    written = [re.findall(r"BT-RADS:? (0|1a|1b|2|3a|3b|3c|4)\b", text) for text in scored["text"]]
    pairs = list(zip(scored["bt_rads"], written, strict=True))
    assert all(score in found for score, found in pairs)
    single = [found[0] == score for score, found in pairs if len(found) == 1]
    assert all(single) and len(single) > 0.9 * len(scored)  # two scores only where an addendum revised one


def test_reports_are_mostly_600_to_2500_characters(reports):
    length = reports["text"].str.len()
    assert ((length >= 600) & (length <= 2500)).mean() >= 0.85
    assert length.between(300, 4000).all()


def test_measurements_follow_the_volume():
    shape = synth_reports._Shape(0.8, 0.7)
    rng = __import__("numpy").random.default_rng(0)
    small = shape.dims_cm(1.0, rng)
    large = shape.dims_cm(8.0, rng)
    assert large[0] > 1.6 * small[0]  # 8x the volume is 2x the diameter
    a, b, c = shape.dims_cm(10.0, rng)
    assert 3.14159 / 6 * a * b * c == pytest.approx(10.0 * synth_reports.EXTENT_FACTOR, rel=0.35)


# ----------------------------------------------------------------------------------- edge and bad input

def test_no_patients_gives_empty_frames_with_columns():
    rows, truth = synth_reports.generate([], SEED)
    assert rows.empty and list(rows.columns) == synth_reports.REPORT_COLUMNS
    assert truth.empty and list(truth.columns) == synth_reports.TRUTH_COLUMNS


def test_a_patient_without_scans_still_gets_unrelated_reports_only(cohort):
    bare = replace(cohort[0], scans=(), death_date=None,
                   last_followup_date=cohort[0].diagnosis_date + timedelta(days=400))
    _, truth = synth_reports.generate([replace(bare, scans=cohort[0].scans[:1])], SEED)
    assert (truth["study_id"] != "").sum() == 1
    rows, truth = synth_reports.generate([bare], SEED)
    assert (truth["study_id"] == "").all()
    assert (pd.to_datetime(rows["report_date"]) >= pd.Timestamp(date(2000, 1, 1))).all()


def test_shipped_phrase_file_is_valid():
    synth_reports.validate_phrases(synth_reports.load_phrases())


def test_phrase_file_with_an_unknown_key_is_rejected():
    data = copy.deepcopy(synth_reports.load_phrases())
    data["radiologists"][0]["colour"] = "blue"
    with pytest.raises(RuleFileError, match="colour"):
        synth_reports.validate_phrases(data)


def test_phrase_file_with_an_unknown_placeholder_is_rejected():
    data = copy.deepcopy(synth_reports.load_phrases())
    data["impression"]["stable"].append("Unchanged since {tumour_date}.")
    with pytest.raises(RuleFileError, match="tumour_date"):
        synth_reports.validate_phrases(data)
