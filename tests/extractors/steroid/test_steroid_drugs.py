"""Drug-name normalisation: which rows are systemic corticosteroids, and which are local forms."""

from __future__ import annotations

import json
from importlib import resources

import pandas as pd
import pytest

from pfs.exceptions import RuleFileError
from pfs.extractors.steroid.drugs import identify_drug, load_rules, non_systemic_kind, parse_rules


@pytest.fixture(scope="module")
def rules():
    return load_rules()


@pytest.mark.parametrize(
    "name, drug",
    [
        ("dexAMETHasone (DECADRON) 4 MG tablet", "dexamethasone"),
        ("DEXAMETHASONE SOD PHOSPHATE 4 MG/ML INJ SOLN", "dexamethasone"),
        ("Decadron", "dexamethasone"),
        ("decadrone", "dexamethasone"),  # misspelling caught by similarity
        ("dexamethsaone 4 mg", "dexamethasone"),  # transposed letters
        ("dex 4mg", "dexamethasone"),
        ("predisone 20mg", "prednisone"),
        ("Deltasone 10 mg", "prednisone"),
        ("prednisoLONE 15 mg/5 mL solution", "prednisolone"),
        ("Solu-Medrol 125 mg injection", "methylprednisolone"),
        ("MEDROL 4 MG DOSEPAK", "methylprednisolone"),
        ("Cortef 5 mg tab", "hydrocortisone"),
        ("Celestone Soluspan", "betamethasone"),
        ("cortisone acetate 25 mg", "cortisone"),
        ("levetiracetam 500 mg", None),
        ("Dexmedetomidine infusion", None),  # a sedative, not 'dex'
        ("dexlansoprazole 60 mg", None),
        ("medroxyprogesterone", None),
        ("hydroxychloroquine", None),
        ("", None),
    ],
)
def test_identify_drug_names_as_ehrs_write_them(rules, name, drug):
    assert identify_drug(pd.Series([name]), rules).iloc[0] == drug


def test_identify_drug_handles_missing_values_and_keeps_the_index(rules):
    s = pd.Series([None, "Decadron"], index=[10, 20])
    out = identify_drug(s, rules)
    assert out.index.tolist() == [10, 20]
    assert out.tolist() == [None, "dexamethasone"]


@pytest.mark.parametrize(
    "name, route, sig, kind",
    [
        ("hydrocortisone 1 % cream", "", "", "topical"),
        ("hydrocortisone 2.5% ointment", "topical", "apply twice daily", "topical"),
        ("prednisolone acetate 1 % ophthalmic suspension", "", "", "ophthalmic"),
        ("dexamethasone 0.1 % eye drops", "both eyes", "", "ophthalmic"),
        ("ciprofloxacin-dexamethasone (CIPRODEX) otic suspension", "", "", "otic"),
        ("betamethasone dipropionate 0.05 % lotion", "", "", "topical"),
        ("methylprednisolone acetate 40 mg/mL injection", "intra-articular", "", "intra_articular"),
        ("hydrocortisone enema 100 mg", "", "", "rectal"),
        ("dexamethasone 4 mg", "OD", "", "ophthalmic"),  # OD as a route is the right eye
        ("dexamethasone 4 mg", "", "1 drop in each eye", "ophthalmic"),  # blank route: the sig decides
        ("dexamethasone 4 mg tablet", "PO", "take daily", None),
        (
            "dexamethasone 4 mg tablet",
            "PO",
            "take 1 tablet for eye swelling",
            None,
        ),  # route given: sig ignored
        ("Solu-Medrol 125 mg", "IV", "", None),
    ],
)
def test_non_systemic_forms_and_routes_are_recognised(rules, name, route, sig, kind):
    out = non_systemic_kind(pd.Series([name]), pd.Series([route]), pd.Series([sig]), rules)
    assert out.iloc[0] == kind


def test_potency_is_dexamethasone_equivalent(rules):
    # dexamethasone 0.75 = prednisone 5 = methylprednisolone 4 = hydrocortisone 20
    assert rules.dex_factor("dexamethasone") == 1.0
    assert rules.dex_factor("prednisone") * 5 == pytest.approx(0.75)
    assert rules.dex_factor("methylprednisolone") * 4 == pytest.approx(0.75)
    assert rules.dex_factor("hydrocortisone") * 20 == pytest.approx(0.75)
    assert rules.rxnorm["dexamethasone"] == "3264"


def test_shipped_rule_file_cites_its_sources():
    data = json.loads(resources.files("pfs.rules").joinpath("corticosteroids.json").read_text(encoding="utf-8"))
    assert {"potency", "rxnorm"} <= set(data["sources"])
    assert set(data["drugs"]) == {
        "dexamethasone",
        "prednisone",
        "prednisolone",
        "methylprednisolone",
        "hydrocortisone",
        "betamethasone",
        "cortisone",
    }


def test_rule_file_rejects_unknown_keys_and_bad_potency():
    data = json.loads(resources.files("pfs.rules").joinpath("corticosteroids.json").read_text(encoding="utf-8"))
    with pytest.raises(RuleFileError, match="unknown key"):
        parse_rules({**data, "extra": 1})
    bad = json.loads(json.dumps(data))
    bad["drugs"]["prednisone"]["equivalent_mg"] = 0
    with pytest.raises(RuleFileError, match="positive equivalent_mg"):
        parse_rules(bad)
    bad = json.loads(json.dumps(data))
    bad["drugs"]["prednisone"]["potency"] = 5
    with pytest.raises(RuleFileError, match="unknown key"):
        parse_rules(bad)
