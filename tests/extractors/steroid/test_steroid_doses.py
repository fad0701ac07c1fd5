"""Dose, unit, frequency and sig parsing on the messy strings EHR orders hold."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from pfs.exceptions import RuleFileError
from pfs.extractors.steroid.doses import DOSE_PROBLEMS, parse_one, parse_orders
from pfs.extractors.steroid.drugs import load_rules
from pfs.extractors.steroid.frequencies import parse_frequency, parse_frequency_rules
from pfs.extractors.steroid.sig import concentration_mg_per_ml, dose_from_text, duration_days, parse_taper, strength_mg


@pytest.fixture(scope="module")
def rules():
    return load_rules()


@pytest.mark.parametrize(
    "text, per_day, once, prn",
    [
        ("daily", 1, False, False),
        ("QD", 1, False, False),
        ("once daily", 1, False, False),
        ("BID", 2, False, False),
        ("b.i.d.", 2, False, False),
        ("twice a day", 2, False, False),
        ("2 (two) times daily", 2, False, False),
        ("TID", 3, False, False),
        ("Q.I.D.", 4, False, False),
        ("q4h", 6, False, False),
        ("q6h", 4, False, False),
        ("Q8H", 3, False, False),
        ("q 12 h", 2, False, False),
        ("every 6 hours", 4, False, False),
        ("every 12 (twelve) hours", 2, False, False),
        ("qHS", 1, False, False),
        ("at bedtime", 1, False, False),
        ("every morning", 1, False, False),
        ("QOD", 0.5, False, False),
        ("every other day", 0.5, False, False),
        ("3 times a day", 3, False, False),
        ("1 (one) time daily", 1, False, False),
        ("once", 1, True, False),
        ("ONCE", 1, True, False),
        ("STAT", 1, True, False),
        ("PRN", 1, False, True),
        ("q8h PRN nausea", 3, False, True),
        ("every 8 hrs as needed for nausea", 3, False, True),
    ],
)
def test_frequencies(text, per_day, once, prn):
    f = parse_frequency(text)
    assert f is not None
    assert f.per_day == pytest.approx(per_day)
    assert (f.once, f.prn) == (once, prn)


@pytest.mark.parametrize("text", ["", "4 mg PO", "as directed"])
def test_frequency_absent_is_none_not_a_guess(text):
    assert parse_frequency(text) is None


def test_strength_concentration_duration():
    assert strength_mg("dexAMETHasone (DECADRON) 4 MG tablet") == 4
    assert strength_mg("dexamethasone 0.5mg tab") == 0.5
    assert strength_mg("dexamethasone 4 mg/mL injection") is None  # a concentration, not a tablet strength
    assert concentration_mg_per_ml("dexamethasone 1 mg/mL oral solution") == 1
    assert concentration_mg_per_ml("dexamethasone 0.5 mg/5 mL elixir") == pytest.approx(0.1)
    assert duration_days("40 mg daily x 5 days") == 5
    assert duration_days("for 2 weeks") == 14
    assert duration_days("4 mg BID") is None


def _one(rules, name, dose, unit, freq, sig, drug="dexamethasone"):
    return parse_one(drug, name, dose, unit, freq, sig, rules, parse_frequency_rules_cached())


def parse_frequency_rules_cached():
    from pfs.extractors.steroid.frequencies import load_frequency_rules

    return load_frequency_rules()


NAN = float("nan")


@pytest.mark.parametrize(
    "name, dose, unit, freq, sig, mg_day",
    [
        ("dexamethasone", 4, "mg", "BID", "", 8),
        ("Decadron", 4, "MG", "", "4 mg PO BID", 8),  # frequency from the sig
        (
            "dexAMETHasone (DECADRON) 4 MG tablet",
            NAN,
            "",
            "",
            "Take 1 tablet (4 mg total) by mouth 2 (two) times daily.",
            8,
        ),
        ("dexamethasone 4 mg tab", 2, "tablet", "BID", "", 16),  # tablets x strength
        ("dexamethasone 4 mg tab", NAN, "", "", "Take 1/2 tablet by mouth every 12 hours", 4),
        ("dexamethasone 1 mg/mL oral solution", 5, "mL", "BID", "", 10),  # mL x concentration
        ("dexamethasone 0.5 mg/5 mL elixir", NAN, "", "", "take 20 mL by mouth daily", 2),
        ("dexamethasone oral solution", 1, "mg/mL", "daily", "take 4 mL daily", 4),  # mg/mL with a volume
        ("dexamethasone", 0.5, "g", "daily", "", 500),
        ("dexamethasone", 500, "mcg", "BID", "", 1),
        ("methylprednisolone", 1000, "mg", "once", "1,000 mg IV once", 1000),
        ("dexamethasone", 4, "mg", "q6h", "", 16),
    ],
)
def test_daily_dose_of_the_drug(rules, name, dose, unit, freq, sig, mg_day):
    out = _one(rules, name, dose, unit, freq, sig)
    assert out["problem"] is None
    assert out["drug_mg_per_day"] == pytest.approx(mg_day)


UNREADABLE = [
    ("dexamethasone", NAN, "", "", "as directed per neurosurgery", "no dose"),
    ("dexamethasone", 4, "puffs", "BID", "", "unknown dose unit 'puffs'"),
    ("dexamethasone", 4, "mg", "", "4 mg PO", "no frequency"),
    ("dexamethasone", 0, "mg", "daily", "", "dose is zero"),
    ("dexamethasone tablet", 2, "tablet", "BID", "", "no mg strength"),
    ("dexamethasone solution", 5, "mL", "BID", "", "no mg/mL concentration"),
    ("dexamethasone", NAN, "", "", "take 1 tablet twice daily", "no strength"),
    ("dexamethasone solution", NAN, "", "BID", "5 mL by mouth", "volume in the sig"),
    ("dexamethasone", 1, "mg/mL", "BID", "by mouth", "without a volume"),
    ("dexamethasone", 4, "", "BID", "as directed", "without a unit"),
]


@pytest.mark.parametrize("name, dose, unit, freq, sig, reason", UNREADABLE)
def test_unreadable_orders_carry_a_reason(rules, name, dose, unit, freq, sig, reason):
    out = _one(rules, name, dose, unit, freq, sig)
    assert out["problem"] is not None and reason in out["problem"]
    assert out["drug_mg_per_day"] is None


def test_taper_sig_becomes_steps(rules):
    sig = "4 mg BID x 3 days, then 2 mg BID x 3 days, then 2 mg daily x 3 days, then stop"
    assert parse_taper(sig, "dexamethasone", None) == [(3, 8), (3, 4), (3, 2)]
    out = _one(rules, "dexamethasone", NAN, "", "", sig)
    assert out["taper"] and out["duration_days"] == 9 and out["drug_mg_per_day"] == 8


def test_taper_with_tablets_and_open_last_step(rules):
    sig = "Take 2 tablets by mouth every 12 (twelve) hours for 5 days; then take 1 tablet every 12 hours"
    steps = parse_taper(sig, "dexamethasone 2 mg tablet", None)
    assert steps[0] == (5, 8)
    assert math.isnan(steps[1][0]) and steps[1][1] == 4


def test_taper_step_without_duration_is_not_guessed():
    assert parse_taper("4 mg BID then 2 mg BID then 1 mg daily", "dexamethasone", None) is None


def test_dose_pack_follows_the_label(rules):
    out = _one(
        rules,
        "methylprednisolone 4 mg tablets dose pack",
        NAN,
        "",
        "",
        "as directed",
        drug="methylprednisolone",
    )
    assert out["dose_pack"]
    assert [mg for _, mg in out["schedule"]] == [24, 20, 16, 12, 8, 4]


def test_antiemetic_single_dose_is_flagged(rules):
    out = _one(rules, "dexamethasone inj", 8, "mg", "once", "8 mg IV prior to chemotherapy for nausea")
    assert out["once"] and out["antiemetic"] and out["duration_days"] == 1


def test_parse_orders_parses_each_distinct_text_once_and_keeps_row_order(rules):
    meds = pd.DataFrame(
        {
            "drug_name": ["Decadron", "levetiracetam", "Decadron", "Decadron"],
            "dose": [4.0, 500.0, 4.0, 2.0],
            "dose_unit": ["mg", "mg", "mg", "mg"],
            "frequency": ["BID", "BID", "BID", "daily"],
            "sig": ["", "", "", ""],
        },
        index=[5, 6, 7, 8],
    )
    drug = pd.Series(["dexamethasone", "x", "dexamethasone", "dexamethasone"], index=meds.index)
    out = parse_orders(meds.loc[[5, 7, 8]], drug.loc[[5, 7, 8]], rules)
    assert out.index.tolist() == [5, 7, 8]
    assert out["drug_mg_per_day"].tolist() == [8, 8, 2]


def test_frequency_rule_file_rejects_unknown_keys():
    with pytest.raises(RuleFileError, match="unknown key"):
        parse_frequency_rules({"fixed": [], "hourly": []})
    with pytest.raises(RuleFileError, match="per_day"):
        parse_frequency_rules({"fixed": [{"pattern": "x", "per_day": 0}]})


@pytest.mark.parametrize(
    "sig, mg_day",
    [
        ("4 mg every morning and 2 mg at bedtime", 6),
        ("Take 4 mg by mouth QAM and 2 mg QPM", 6),
        ("2 mg BID and 1 mg qHS", 5),
    ],
)
def test_split_doses_in_one_sig_add_up(rules, sig, mg_day):
    out = _one(rules, "dexamethasone 2 mg tablet", 4, "mg", "", sig)
    assert out["split_dose"] and out["problem"] is None
    assert out["drug_mg_per_day"] == pytest.approx(mg_day)


@pytest.mark.parametrize(
    "name, dose, unit, freq, sig, mg_day",
    [
        ("DEXAMETHASONE 4 MG/ML INJ SOLN", 1, "mL", "q6h", "", 16),
        ("Decadron 4 mg tab", NAN, "", "", "Take one tablet by mouth every morning", 4),
        ("dexamethasone 4 mg tablet", NAN, "", "", "take ½ tab PO BID", 4),
        ("DEXAMETHASONE 2 MG TABLET", 8, "MG", "Q8H", "take 4 tabs q8h", 24),
        ("dexamethasone", 6, "mg", "QAM", "", 6),
        ("dexAMETHasone", 4, "mg", "", "4mg po q6hrs", 16),
        ("dexamethasone", 10, "mg", "", "10 mg IV x1 dose", 10),
    ],
)
def test_more_messy_orders(rules, name, dose, unit, freq, sig, mg_day):
    out = _one(rules, name, dose, unit, freq, sig)
    assert out["problem"] is None
    assert out["drug_mg_per_day"] == pytest.approx(mg_day)


def test_every_reason_is_one_row_of_the_reason_table_and_every_row_is_reachable(rules):
    """The quarantine reasons of the dose parser are written once (DOSE_PROBLEMS), none is dead."""
    table = {
        key: re.compile(re.escape(text).replace(re.escape("{unit}"), "'[^']*'") + "$")
        for key, text in DOSE_PROBLEMS.items()
    }
    seen = set()
    for name, dose, unit, freq, sig, _ in UNREADABLE:
        problem = _one(rules, name, dose, unit, freq, sig)["problem"]
        keys = [k for k, pattern in table.items() if pattern.match(problem)]
        assert len(keys) == 1, problem
        seen.update(keys)
    assert seen == set(DOSE_PROBLEMS)


@pytest.mark.parametrize("name", ["dexamethasone 4 mg tablet", "dexamethasone", "DEXAMETHASONE 1 MG/ML SOLN"])
@pytest.mark.parametrize(
    "sig",
    [
        "Take 1 tablet (4 mg total) by mouth",
        "take 2 tabs by mouth",
        "half tablet by mouth",
        "5 mL by mouth",
        "1 mg/5 mL solution, take 10 mL",
        "8 mg by mouth",
        "as directed per neurosurgery",
    ],
)
def test_a_sig_reads_the_same_alone_and_in_bulk(rules, name, sig):
    """One dose reading: a taper step (dose_from_text) and an order with a blank dose column agree."""
    mg, why = dose_from_text(sig, name)
    row = _one(rules, name, NAN, "", "daily", sig)
    assert row["problem"] == why
    assert row["mg_per_admin"] == (None if mg is None else pytest.approx(mg))
