"""The next-line therapy vocabulary: drug classes and procedures from ``pfs/rules/next_line_therapy.json``.

Names are recognised with the steroid source's matcher (same normalisation, whole-word terms, close
misspellings), applied to the distinct names of the export only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import pandas as pd

from pfs.exceptions import RuleFileError

# One matcher for drug names in pfs: the steroid source's (see pfs/extractors/steroid/drugs.py).
from pfs.extractors.steroid.drugs import fuzzy_kind, match_kind, normalise_one, on_distinct, word_pattern
from pfs.rules import check_keys, read_rule_json

RULE_FILE = "next_line_therapy.json"
_TOP_KEYS = {"description", "sources", "classes", "first_line", "procedures"}
_CLASS_KEYS = {"rxnorm", "terms"}
_PROC_KEYS = {"terms", "codes"}
PROCEDURE_KINDS = ("re_resection", "re_irradiation")


@dataclass(frozen=True)
class TreatmentRules:
    """The compiled vocabulary."""

    drug_pattern: re.Pattern[str]
    #: normalised term -> drug class (the name ``term_to_drug`` lets the steroid matcher's fuzzy step run on it)
    term_to_drug: dict[str, str]
    rxnorm: dict[str, str]
    first_line: frozenset[str]
    procedure_pattern: re.Pattern[str]
    procedure_term: dict[str, str]
    procedure_code: dict[str, str]


def _check_keys(obj: Any, allowed: set[str], where: str) -> None:
    check_keys(obj, allowed, where, RULE_FILE)


def parse_rules(data: dict[str, Any]) -> TreatmentRules:
    """Validate and compile a vocabulary of the shape of ``pfs/rules/next_line_therapy.json``."""
    _check_keys(data, _TOP_KEYS, "the top level")
    classes = data.get("classes", {})
    _check_keys(classes, set(classes), "classes")
    term_to_drug: dict[str, str] = {}
    rxnorm: dict[str, str] = {}
    for name, spec in classes.items():
        _check_keys(spec, _CLASS_KEYS, f"class {name!r}")
        rxnorm[name] = str(spec.get("rxnorm", ""))
        for term in [name.replace("_", " "), *spec.get("terms", [])]:
            key = normalise_one(term)
            if term_to_drug.get(key, name) != name:
                raise RuleFileError(f"{RULE_FILE}: term {term!r} is listed for {term_to_drug[key]!r} and {name!r}")
            term_to_drug[key] = name
    first_line = frozenset(data.get("first_line", []))
    if not first_line <= set(classes):
        raise RuleFileError(f"{RULE_FILE}: first_line names unknown class(es) {sorted(first_line - set(classes))}")
    procs = data.get("procedures", {})
    _check_keys(procs, set(PROCEDURE_KINDS), "procedures")
    proc_term: dict[str, str] = {}
    proc_code: dict[str, str] = {}
    for kind, spec in procs.items():
        _check_keys(spec, _PROC_KEYS, f"procedures.{kind}")
        proc_term.update({normalise_one(t): kind for t in spec.get("terms", [])})
        proc_code.update({str(c).strip().upper(): kind for c in spec.get("codes", [])})
    return TreatmentRules(
        drug_pattern=word_pattern(list(term_to_drug)),
        term_to_drug=term_to_drug,
        rxnorm=rxnorm,
        first_line=first_line,
        procedure_pattern=word_pattern(list(proc_term) or ["\x00never"]),
        procedure_term=proc_term,
        procedure_code=proc_code,
    )


@cache
def load_rules() -> TreatmentRules:
    """The shipped vocabulary, compiled once per process."""
    return parse_rules(read_rule_json(RULE_FILE))


def drug_class(drug_names: pd.Series, rules: TreatmentRules, fuzzy: bool = True) -> pd.Series:
    """Drug class per medication row (e.g. 'bevacizumab'), or None for any other drug."""

    def kinds(u: pd.Series) -> pd.Series:
        exact = match_kind(u, rules.drug_pattern, rules.term_to_drug)
        if fuzzy and exact.isna().any():
            exact[exact.isna()] = fuzzy_kind(u[exact.isna()], rules)  # type: ignore[arg-type]
        return exact

    return on_distinct(drug_names, kinds)


def procedure_kind(names: pd.Series, codes: pd.Series, rules: TreatmentRules) -> pd.Series:
    """'re_resection' or 're_irradiation' per procedure row (by code first, else by name), or None."""
    bare = codes.fillna("").astype(str).str.strip().str.upper().str.replace(r"^.*[:|]", "", regex=True)
    by_code = bare.map(rules.procedure_code)
    by_name = on_distinct(names, lambda u: match_kind(u, rules.procedure_pattern, rules.procedure_term))
    out = by_code.where(by_code.notna(), by_name)
    return out.astype(object).where(out.notna(), None)
