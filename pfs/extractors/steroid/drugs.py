"""Which medication rows are systemic corticosteroids: drug-name normalisation from the shipped rule files.

The clinical knowledge (names, brands, misspellings, RxNorm codes, potency, local forms and routes)
lives in ``pfs/rules/corticosteroids.json``; this module only compiles it into regular expressions
and applies them to the *distinct* values of a column, so the cost follows the vocabulary of the
export, not its row count.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import numpy as np
import pandas as pd

from pfs.exceptions import RuleFileError
from pfs.rules import check_keys, read_rule_json

RULE_FILE = "corticosteroids.json"
_TOP_KEYS = {"description", "sources", "drugs", "non_systemic", "dose_packs", "antiemetic"}
_DRUG_KEYS = {"rxnorm", "equivalent_mg", "terms"}
_NONSYS_KEYS = {"description", "forms", "routes"}
_PACK_KEYS = {"drug", "terms", "mg_per_day"}
#: The reference drug: potencies are expressed as mg of it.
REFERENCE_DRUG = "dexamethasone"


@dataclass(frozen=True)
class DosePack:
    """A fixed-schedule pack: the label's mg/day of ``drug`` for each day."""

    drug: str
    pattern: re.Pattern[str]
    mg_per_day: tuple[float, ...]


@dataclass(frozen=True)
class SteroidRules:
    """The compiled drug table."""

    drug_pattern: re.Pattern[str]
    term_to_drug: dict[str, str]
    rxnorm: dict[str, str]
    equivalent_mg: dict[str, float]
    form_pattern: re.Pattern[str]
    form_kind: dict[str, str]
    route_pattern: re.Pattern[str]
    route_kind: dict[str, str]
    dose_packs: tuple[DosePack, ...]
    antiemetic_pattern: re.Pattern[str]

    def dex_factor(self, drug: str) -> float:
        """Multiplier from mg of ``drug`` to dexamethasone-equivalent mg."""
        return self.equivalent_mg[REFERENCE_DRUG] / self.equivalent_mg[drug]


#: (pattern, replacement) applied in order by both normalisers, so rule terms and data agree.
_NORMALISE_STEPS: tuple[tuple[str, str], ...] = (
    (r"(?<=\d),(?=\d{3}\b)", ""),  # '1,000 mg' is one number
    (r"(?<=[a-z])\.(?=[a-z0-9])", ""),  # 'b.i.d.' -> 'bid.'
    (r"(?<![0-9])\.|\.(?![0-9])", " "),  # dots that are not decimal points
    (r"[^a-z0-9/.%µ½ ]+", " "),
    (r"\s+", " "),
)
_COMPILED_STEPS = tuple((re.compile(p), r) for p, r in _NORMALISE_STEPS)


def normalise_text(values: pd.Series) -> pd.Series:
    """Lower-case, abbreviation dots removed ('b.i.d.' -> 'bid'), punctuation except '/', '.', '%' as spaces.

    Decimal points inside numbers are kept; everything else that separates words becomes one space,
    so rule terms can be matched as whole words.
    """
    s = values.fillna("").astype(str).str.lower()
    for pattern, repl in _NORMALISE_STEPS:
        s = s.str.replace(pattern, repl, regex=True)
    return s.str.strip()


@lru_cache(maxsize=1 << 16)
def normalise_one(text: str) -> str:
    """:func:`normalise_text` for one string (rule terms go through the same normalisation as data)."""
    s = "" if text is None else str(text).lower()
    for pattern, repl in _COMPILED_STEPS:
        s = pattern.sub(repl, s)
    return s.strip()


def _alternation(terms: list[str]) -> str:
    uniq = sorted(set(terms), key=lambda t: (-len(t), t))
    return "|".join(re.escape(t).replace(r"\ ", r"\s") for t in uniq)


def word_pattern(terms: list[str]) -> re.Pattern[str]:
    # Rule terms are written with spaces where EHRs put '-', '/' or spaces: normalise_text makes them spaces.
    return re.compile(r"(?<![a-z0-9])(" + _alternation([normalise_one(t) for t in terms]) + r")(?![a-z0-9])")


def _check_keys(obj: Any, allowed: set[str], where: str) -> None:
    check_keys(obj, allowed, where, RULE_FILE)


def parse_rules(data: dict[str, Any]) -> SteroidRules:
    """Validate and compile a drug table (the shape of ``pfs/rules/corticosteroids.json``)."""
    _check_keys(data, _TOP_KEYS, "the top level")
    drugs = data.get("drugs", {})
    if REFERENCE_DRUG not in drugs:
        raise RuleFileError(f"{RULE_FILE}: the drug table must contain {REFERENCE_DRUG!r}, the reference drug")
    term_to_drug: dict[str, str] = {}
    rxnorm, equivalent = {}, {}
    for name, spec in drugs.items():
        _check_keys(spec, _DRUG_KEYS, f"drug {name!r}")
        eq = spec.get("equivalent_mg")
        if not isinstance(eq, (int, float)) or eq <= 0:
            raise RuleFileError(f"{RULE_FILE}: drug {name!r} needs a positive equivalent_mg, not {eq!r}")
        equivalent[name] = float(eq)
        rxnorm[name] = str(spec.get("rxnorm", ""))
        for term in [name, *spec.get("terms", [])]:
            key = normalise_one(term)
            if term_to_drug.get(key, name) != name:
                raise RuleFileError(f"{RULE_FILE}: term {term!r} is listed for {term_to_drug[key]!r} and {name!r}")
            term_to_drug[key] = name
    nonsys = data.get("non_systemic", {})
    _check_keys(nonsys, _NONSYS_KEYS, "non_systemic")
    form_kind = {normalise_one(t): kind for kind, terms in nonsys.get("forms", {}).items() for t in terms}
    route_kind = {normalise_one(t): kind for kind, terms in nonsys.get("routes", {}).items() for t in terms}
    packs_spec = data.get("dose_packs", {})
    _check_keys(packs_spec, {"description", "packs"}, "dose_packs")
    packs = []
    for i, p in enumerate(packs_spec.get("packs", [])):
        _check_keys(p, _PACK_KEYS, f"dose_packs.packs[{i}]")
        if p["drug"] not in drugs:
            raise RuleFileError(f"{RULE_FILE}: dose pack {i} names unknown drug {p['drug']!r}")
        packs.append(DosePack(p["drug"], word_pattern(p["terms"]), tuple(float(x) for x in p["mg_per_day"])))
    anti = data.get("antiemetic", {})
    _check_keys(anti, {"description", "terms"}, "antiemetic")
    return SteroidRules(
        drug_pattern=word_pattern(list(term_to_drug)),
        term_to_drug=term_to_drug,
        rxnorm=rxnorm,
        equivalent_mg=equivalent,
        form_pattern=word_pattern(list(form_kind)),
        form_kind=form_kind,
        route_pattern=word_pattern(list(route_kind)),
        route_kind=route_kind,
        dose_packs=tuple(packs),
        antiemetic_pattern=word_pattern(anti.get("terms", []) or ["\x00never"]),
    )


@cache
def load_rules() -> SteroidRules:
    """The shipped drug table, compiled once per process."""
    return parse_rules(read_rule_json(RULE_FILE))


def on_distinct(values: pd.Series, func: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """Apply ``func`` to the distinct values of ``values`` and broadcast back: text columns repeat heavily."""
    codes, uniques = pd.factorize(values.fillna(""), use_na_sentinel=False)
    result = func(pd.Series(uniques, dtype=object))
    return pd.Series(np.asarray(result, dtype=object)[codes], index=values.index)


def match_kind(texts: pd.Series, pattern: re.Pattern[str], lookup: dict[str, str]) -> pd.Series:
    found = normalise_text(texts).str.extract(pattern, expand=False)
    return found.map(lookup).astype(object).where(found.notna(), None)


#: Misspellings not in the table are caught by similarity: words of at least this many letters whose
#: similarity ratio (difflib) to a listed name is at least FUZZY_CUTOFF. 0.85 accepts one wrong,
#: missing or extra letter in a 9-letter brand ('decadrone', 'dexamethsaone') but not a different drug.
FUZZY_MIN_LENGTH = 7
FUZZY_CUTOFF = 0.85


def fuzzy_kind(texts: pd.Series, rules: SteroidRules) -> pd.Series:
    long_terms = [t for t in rules.term_to_drug if len(t) >= FUZZY_MIN_LENGTH and " " not in t]
    cache: dict[str, str | None] = {}

    def one(text: str) -> str | None:
        for word in re.findall(rf"[a-z]{{{FUZZY_MIN_LENGTH},}}", text):
            if word not in cache:
                hit = difflib.get_close_matches(word, long_terms, n=1, cutoff=FUZZY_CUTOFF)
                cache[word] = rules.term_to_drug[hit[0]] if hit else None
            if cache[word]:
                return cache[word]
        return None

    return normalise_text(texts).map(one)


def identify_drug(drug_names: pd.Series, rules: SteroidRules, fuzzy: bool = True) -> pd.Series:
    """Corticosteroid ingredient per row (e.g. 'dexamethasone'), or None for any other drug.

    Exact whole-word matches of the table's names first; names with none are tried for a close
    misspelling (see :data:`FUZZY_CUTOFF`). Works on the distinct names only: an export of a
    million orders holds a few thousand names.
    """

    def kinds(u: pd.Series) -> pd.Series:
        exact = match_kind(u, rules.drug_pattern, rules.term_to_drug)
        if fuzzy and exact.isna().any():
            exact[exact.isna()] = fuzzy_kind(u[exact.isna()], rules)
        return exact

    return on_distinct(drug_names, kinds)


def _route_kind(routes: pd.Series, rules: SteroidRules) -> pd.Series:
    norm = normalise_text(routes)
    found = norm.str.extract(rules.route_pattern, expand=False)
    # Two-letter codes (OD, OS, AU, PR, IA) count only as the whole route value: 'OD' is also 'once daily'.
    ok = found.notna() & ((found.str.len() > 2) | (found == norm))
    return found.map(rules.route_kind).astype(object).where(ok, None)


def non_systemic_kind(drug_names: pd.Series, routes: pd.Series, sigs: pd.Series, rules: SteroidRules) -> pd.Series:
    """'topical', 'inhaled', 'ophthalmic', ... when the product or route is local; None when systemic.

    The product name and the route decide; the sig is only read when the route is blank, because
    a sig may mention an eye or a joint for reasons that do not change an oral tablet's route.
    """
    by_name = on_distinct(drug_names, lambda u: match_kind(u, rules.form_pattern, rules.form_kind))
    by_route = on_distinct(routes, lambda u: _route_kind(u, rules))
    blank_route = routes.fillna("").astype(str).str.strip() == ""
    out = by_name.where(by_name.notna(), by_route)
    need_sig = out.isna() & blank_route
    if need_sig.any():
        by_sig = on_distinct(sigs[need_sig], lambda u: match_kind(u, rules.form_pattern, rules.form_kind))
        out = out.astype(object)
        out[need_sig] = by_sig
    return out.where(out.notna(), None)
