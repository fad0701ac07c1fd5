"""Synthetic medication orders: a realistic, deterministic rendering of the true course.

The steroid extractor is evaluated against this data, so these tests pin what it promises: every
systemic corticosteroid row states its true daily dose consistently, only part of the progressors
get a (late) progression course, and confounders (bursts, dose packs, single doses, creams,
inhalers, eye drops, joint injections) are present.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import date
from importlib import resources

import pandas as pd
import pytest

from pfs.exceptions import RuleFileError
from pfs.io.export import load_export
from pfs.io.output import write_table
from pfs.synth import patients_frame
from pfs.synth.course import PatientCourse, simulate_cohort
from pfs.synth.medications import COLUMNS, TRUTH_COLUMNS, generate, load_rules, split_truth, validate_rules

N, SEED = 80, 7
SYSTEMIC_INTENTS = {
    "periop",
    "rt",
    "maintenance",
    "progression",
    "pseudoprogression",
    "necrosis",
    "unrelated",
}


@pytest.fixture(scope="module")
def cohort() -> list[PatientCourse]:
    return simulate_cohort(N, SEED)


@pytest.fixture(scope="module")
def meds(cohort: list[PatientCourse]) -> pd.DataFrame:
    return generate(cohort, SEED)


# --- determinism and layout --------------------------------------------------------------------------


def test_same_seed_gives_the_same_frame_and_bytes(cohort, meds, tmp_path):
    again = generate(cohort, SEED)
    pd.testing.assert_frame_equal(meds, again)
    a = write_table(meds, tmp_path / "a.csv").read_bytes()
    b = write_table(again, tmp_path / "b.csv").read_bytes()
    assert a == b


def test_another_seed_gives_other_orders(cohort, meds):
    other = generate(cohort, SEED + 1)
    assert not meds[COLUMNS].equals(other[COLUMNS])


def test_a_patients_orders_do_not_change_when_the_cohort_grows(cohort, meds):
    small = generate(cohort[:5], SEED)
    big = meds[meds["patient_id"].isin(small["patient_id"])]
    cols = [c for c in meds.columns if c != "medication_id"]
    pd.testing.assert_frame_equal(small[cols].reset_index(drop=True), big[cols].reset_index(drop=True))


def test_columns_follow_the_native_schema_plus_truth(meds):
    schema = json.loads(resources.files("pfs.schemas").joinpath("medications.json").read_text(encoding="utf-8"))
    assert [f["name"] for f in schema["fields"]] == COLUMNS
    assert list(meds.columns) == COLUMNS + TRUTH_COLUMNS
    assert all(c.startswith("_truth_") for c in TRUTH_COLUMNS)


def test_medication_ids_are_unique_and_rows_sorted(meds):
    assert meds["medication_id"].is_unique
    assert meds["medication_id"].str.fullmatch(r"M\d{6}").all()
    order = meds.sort_values(["patient_id", "order_date", "medication_id"]).index
    assert list(order) == list(meds.index)


def test_split_truth_keeps_the_truth_out_of_the_export(meds):
    export, truth = split_truth(meds)
    assert list(export.columns) == COLUMNS
    assert list(truth.columns) == [
        "medication_id",
        "patient_id",
        "intent",
        "course_id",
        "detail",
        "true_daily_mg",
    ]
    assert truth["medication_id"].tolist() == export["medication_id"].tolist()


def test_the_export_loads_without_quarantine(cohort, meds, tmp_path):
    export, _ = split_truth(meds)
    write_table(patients_frame(cohort, SEED), tmp_path / "patients.csv")
    write_table(export, tmp_path / "medications.csv")
    loaded = load_export(tmp_path, tables=("patients", "medications"))
    assert len(loaded.table("medications")) == len(meds)
    assert len(loaded.quarantine.frame()) == 0


def test_required_fields_filled_and_doses_are_non_negative_numbers(meds):
    for col in ("patient_id", "medication_id", "order_date", "drug_name"):
        assert (meds[col] != "").all(), col
    dose = pd.to_numeric(meds["dose"], errors="raise")
    assert (dose >= 0).all()


def test_dates_lie_inside_each_patients_record(cohort, meds):
    bounds = {c.patient_id: (c.diagnosis_date, c.death_date or c.last_followup_date) for c in cohort}
    for row in meds.itertuples():
        lo, hi = bounds[row.patient_id]
        start = date.fromisoformat(row.order_date)
        assert lo <= start <= hi, row
        if row.end_date:
            assert start <= date.fromisoformat(row.end_date) <= hi, row


def test_every_patient_gets_perioperative_dexamethasone_first(cohort, meds):
    steroids = meds[meds["_truth_intent"].isin(SYSTEMIC_INTENTS)]
    first = steroids.groupby("patient_id").head(1).set_index("patient_id")
    assert len(first) == len(cohort)
    assert (first["_truth_intent"] == "periop").all()
    surgery = {c.patient_id: c.surgery_date for c in cohort}
    assert all(date.fromisoformat(d) <= surgery[p] for p, d in first["order_date"].items())


# --- the progression signal --------------------------------------------------------------------------


def test_only_part_of_progressors_get_a_progression_course(cohort, meds):
    progressors = {c.patient_id for c in cohort if c.progressed}
    with_course = set(meds.loc[meds["_truth_intent"] == "progression", "patient_id"])
    assert with_course <= progressors
    share = len(with_course) / len(progressors)
    assert 0.4 <= share <= 0.8, share


def test_progression_course_mostly_follows_the_rano_date(cohort, meds):
    rano = {c.patient_id: c.rano_progression_date for c in cohort if c.progressed}
    starts = meds[meds["_truth_intent"] == "progression"].groupby("patient_id")["order_date"].min()
    delays = pd.Series({p: (date.fromisoformat(d) - rano[p]).days for p, d in starts.items()})
    assert (delays > 0).mean() >= 0.7
    assert (delays < 0).any(), "some courses start on symptoms before imaging confirms"
    assert 14 <= delays.median() <= 70
    assert delays.max() > 70, "a long tail of late courses"


def test_false_signals_occur_outside_progression(meds):
    intents = set(meds["_truth_intent"])
    assert {"pseudoprogression", "necrosis", "rt", "maintenance"} <= intents


def test_progression_courses_are_renewed_with_overlap_and_some_escalate(meds):
    prog = meds[meds["_truth_intent"] == "progression"]
    assert (prog["_truth_detail"] == "escalation").any()
    overlaps = 0
    for _, course in prog[prog["end_date"] != ""].groupby("_truth_course"):
        course = course.sort_values("order_date")
        ends = course["end_date"].to_numpy()[:-1]
        nxt = course["order_date"].to_numpy()[1:]
        overlaps += int((nxt <= ends).sum())
    assert overlaps > 0


# --- confounders ---------------------------------------------------------------------------------------


def test_unrelated_systemic_steroids_are_short_and_varied(meds):
    unrelated = meds[meds["_truth_intent"] == "unrelated"]
    details = " ".join(unrelated["_truth_detail"])
    for kind in ("prednisone", "dose pack", "antiemetic single dose"):
        assert kind in details, kind
    bursts = unrelated[unrelated["_truth_detail"].str.startswith(("prednisone", "dose pack"))]
    span = (
        pd.to_datetime(bursts["end_date"].replace("", None)) - pd.to_datetime(bursts["order_date"])
    ).dt.days
    assert (span.dropna() <= 9).all()
    singles = unrelated[unrelated["_truth_detail"] == "antiemetic single dose"]
    assert singles["sig"].str.contains(r"\bonce\b|\bx1\b|one time", case=False).all()


def test_non_systemic_forms_occur_with_non_systemic_routes(meds):
    non = meds[meds["_truth_intent"] == "non_systemic"]
    routes = set(non["route"].str.lower())
    assert not routes & {"po", "oral", "iv", "intravenous", "by mouth"}
    names = " ".join(non["drug_name"]).lower()
    for form in ("cream", "ophthalmic", "nasal", "inhaler", "kenalog"):
        assert form in names, form
    assert "dexamethasone" in names, "a systemic ingredient in a non-systemic form"


def test_non_steroid_drugs_are_a_good_share(meds):
    share = (meds["_truth_intent"] == "non_steroid").mean()
    assert 0.4 <= share <= 0.85
    names = " ".join(meds["drug_name"]).lower()
    for drug in ("temozolomide", "levetiracetam", "ondansetron", "bevacizumab"):
        assert drug in names, drug


def test_spelling_variety_as_in_real_exports(meds):
    st = meds[meds["_truth_intent"].isin(SYSTEMIC_INTENTS)]
    names = set(st["drug_name"])
    joined = " | ".join(names)
    for token in ("dexAMETHasone (DECADRON)", "predniSONE (DELTASONE)"):
        assert token in joined, token
    for brand in ("decadron", "medrol", "solu-medrol"):
        assert brand in joined.lower(), brand
    assert re.search(r"dexamethazone|decadrone|dexametasone|dexamethason\b|prednizone|predisone", joined)
    assert {"mg", "MG", "mL"} <= set(st["dose_unit"])
    assert {"mcg", "g"} <= set(meds["dose_unit"])
    assert (st["frequency"] == "").any() and (st["end_date"] == "").any()
    assert {"PO", "IV"} <= set(st["route"])
    assert st["sig"].str.contains(" then ").any(), "taper sigs"
    assert st["sig"].str.contains(r"Take \d+(?:\.\d+)? tablets? by mouth").any()


# --- internal consistency of every systemic corticosteroid row ------------------------------------------


def _freq_table() -> list[tuple[str, float]]:
    spellings = []
    for spec in load_rules()["frequencies"].values():
        for s in spec["column"] + spec["sig"] + spec["abbr"]:
            spellings.append((s.lower(), float(spec["per_day"])))
    return sorted(set(spellings), key=lambda t: -len(t[0]))


def _per_day(text: str, table: list[tuple[str, float]]) -> float | None:
    """The longest frequency phrase in ``text`` (so '2 (two) times daily' beats 'daily')."""
    low = text.lower()
    for phrase, per_day in table:
        if re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", low):
            return per_day
    return None


_MG = r"(\d+(?:\.\d+)?)\s*mg"


def _dose_mg_from_fields(row: dict) -> float:
    dose = float(row["dose"])
    if row["dose_unit"].lower() == "mg":
        return dose
    assert row["dose_unit"] == "mL", row
    m = re.search(r"(\d+(?:\.\d+)?)\s*mg/(\d+(?:\.\d+)?)?\s*ml", row["drug_name"].lower())
    assert m, row["drug_name"]
    return dose * float(m.group(1)) / float(m.group(2) or 1)


def _dose_mg_from_sig(row: dict) -> float:
    first = re.split(r"\bthen\b", row["sig"])[0]
    m = re.search(_MG, first, flags=re.I)
    if m:
        return float(m.group(1))
    n = re.search(r"(\d+(?:\.\d+)?)\s*tab", first, flags=re.I)
    strength = re.search(_MG, row["drug_name"], flags=re.I)
    assert n and strength, row
    return float(n.group(1)) * float(strength.group(1))


def test_every_systemic_steroid_row_states_its_true_daily_dose(meds):
    table = _freq_table()
    st = meds[meds["_truth_intent"].isin(SYSTEMIC_INTENTS)]
    assert len(st) > 200
    checked = 0
    for row in st.to_dict("records"):
        dose_mg = _dose_mg_from_fields(row)
        truth = float(row["_truth_daily_mg"])
        if row["_truth_detail"] == "dose pack":
            assert dose_mg == 4 and truth == 24 and row["frequency"] == ""
            continue
        assert dose_mg == pytest.approx(_dose_mg_from_sig(row)), row
        sig_freq = _per_day(re.split(r"\bthen\b", row["sig"])[0], table)
        assert sig_freq is not None, row["sig"]
        if row["frequency"]:
            assert _per_day(row["frequency"], table) == sig_freq, row
        expected = dose_mg * sig_freq if sig_freq else dose_mg
        assert expected == pytest.approx(truth), row
        checked += 1
    assert checked > 200


def test_taper_sigs_step_down(meds):
    tapers = meds[meds["_truth_detail"] == "taper sig"]
    assert len(tapers) > 5
    table = _freq_table()
    for sig in tapers["sig"]:
        steps = re.split(r"\bthen\b", sig)[:-1]
        daily = [float(re.search(_MG, s, flags=re.I).group(1)) * _per_day(s, table) for s in steps]
        assert len(daily) >= 2, sig
        assert all(b < a for a, b in zip(daily, daily[1:], strict=False)), sig


# --- the rule file ---------------------------------------------------------------------------------------


def test_shipped_rule_file_is_valid_and_cites_its_sources():
    rules = load_rules()
    assert "Tall Man" in rules["_source"]
    assert rules["frequencies"]["qid"]["per_day"] == 4


def test_rule_file_with_unknown_key_is_rejected():
    bad = copy.deepcopy(load_rules())
    bad["forms"]["dex_tab"]["strenghts"] = [4]
    with pytest.raises(RuleFileError, match="strenghts"):
        validate_rules(bad)
    bad = copy.deepcopy(load_rules())
    bad["forms"]["hc_cream"]["regimens"][0]["frequency"] = "q5h"
    with pytest.raises(RuleFileError, match="q5h"):
        validate_rules(bad)


def test_second_line_truth_is_the_first_second_line_order_of_the_export_after_progression(cohort, meds):
    from pfs.synth import second_line_frame
    from pfs.synth.medications import split_truth

    rows, truth = split_truth(meds)
    second = second_line_frame(cohort, rows, truth).set_index("patient_id")
    assert list(second.index) == [c.patient_id for c in cohort]
    started = second.loc[second["second_line_start_date"] != ""]
    assert len(started) > 0
    for pid, r in started.iterrows():
        course = next(c for c in cohort if c.patient_id == pid)
        orders = rows.merge(truth[["medication_id", "detail"]], on="medication_id")
        own = orders.loc[(orders["patient_id"] == pid) & orders["detail"].isin(["bevacizumab", "lomustine"])]
        assert r["second_line_start_date"] == own["order_date"].min()
        # days to weeks after the RANO progression of the course
        assert course.rano_progression_date is not None and 14 <= int(r["days_after_rano_progression"]) <= 60
    never = second.loc[second["second_line_start_date"] == ""]
    assert (never["second_line_drug"] == "").all()
