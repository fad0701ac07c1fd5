"""Code lists of the mapping rule files (``pfs/rules/omop_mapping.json``, ``fhir_mapping.json``).

A clinical concept (a GBM diagnosis, a resection, a radiology note) is a :class:`CodeSet`: exact
codes and code patterns per vocabulary or code system, plus text patterns for exports that carry
only what the source system wrote.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pfs.exceptions import RuleFileError
from pfs.rules import check_keys, read_rule_json


def load_rule_file(name: str, allowed: set[str]) -> dict[str, Any]:
    """Read a shipped mapping rule file, rejecting keys pfs does not know (a typo must not be ignored)."""
    data = read_rule_json(name)
    check_keys(data, allowed, "the top level", name)
    return data


def _compile(patterns: Iterable[str], where: str) -> re.Pattern[str] | None:
    pats = list(patterns)
    if not pats:
        return None
    try:
        return re.compile("|".join(f"(?:{p})" for p in pats), re.IGNORECASE)
    except re.error as err:
        raise RuleFileError(f"{where}: invalid regular expression: {err}") from err


_CODESET_KEYS = {
    "description",
    "codes",
    "code_patterns",
    "concept_ids",
    "name_patterns",
    "source_value_patterns",
    "title_patterns",
    "text_patterns",
}


@dataclass(frozen=True)
class CodeSet:
    """One clinical code list: exact codes and code patterns per vocabulary/system, and text patterns.

    ``codes``/``code_patterns`` are keyed by OMOP vocabulary_id or by a FHIR system key; matching
    on them is exact (codes) or by regular expression (patterns), case-insensitive.
    """

    name: str
    codes: Mapping[str, frozenset[str]]
    code_patterns: Mapping[str, re.Pattern[str]]
    concept_ids: frozenset[str]
    names: re.Pattern[str] | None
    source_values: re.Pattern[str] | None
    titles: re.Pattern[str] | None

    def matches_code(self, system: str, code: str) -> bool:
        code = str(code).strip()
        if not code:
            return False
        if code.upper() in self.codes.get(system, frozenset()):
            return True
        pat = self.code_patterns.get(system)
        return bool(pat and pat.search(code))

    def matches_name(self, text: str | None) -> bool:
        return bool(text and self.names and self.names.search(str(text)))

    def source_mask(self, values: pd.Series) -> pd.Series:
        """Vectorised: which source values (codes or text as the source wrote them) match."""
        return _search_distinct(values, self.source_values)

    def title_mask(self, values: pd.Series) -> pd.Series:
        return _search_distinct(values, self.titles)

    def concept_mask(self, concepts: pd.DataFrame) -> pd.Series:
        """Which rows of a CONCEPT table (vocabulary_id, concept_code, concept_name) the set selects."""
        vocab = concepts["vocabulary_id"].fillna("").astype(str).str.strip()
        code = concepts["concept_code"].fillna("").astype(str).str.strip()
        mask = pd.Series(False, index=concepts.index)
        for v, codes in self.codes.items():
            mask |= (vocab == v) & code.str.upper().isin(codes)
        for v, pat in self.code_patterns.items():
            mask |= (vocab == v) & code.str.contains(pat, regex=True)
        mask |= _search_distinct(concepts["concept_name"], self.names)
        mask |= concepts["concept_id"].astype(str).isin(self.concept_ids)
        return mask


def _search_distinct(values: pd.Series, pattern: re.Pattern[str] | None) -> pd.Series:
    """Which values contain ``pattern``; each distinct value is searched once (exports repeat codes)."""
    if pattern is None or values.empty:
        return pd.Series(False, index=values.index)
    s = values.fillna("").astype(str).str.strip()
    uniq = s.unique()
    found = {u: bool(pattern.search(u)) for u in uniq}
    return s.map(found).astype(bool)


def parse_code_set(spec: Mapping[str, Any], name: str, origin: str) -> CodeSet:
    """Validate one code set of a mapping file."""
    where = f"rules/{origin}: {name}"
    check_keys(spec, _CODESET_KEYS, name, f"rules/{origin}")
    codes = {k: frozenset(str(c).strip().upper() for c in v) for k, v in spec.get("codes", {}).items()}
    pats: dict[str, re.Pattern[str]] = {}
    for k, v in spec.get("code_patterns", {}).items():
        pat = _compile(v, f"{where}.code_patterns.{k}")
        if pat is not None:
            pats[k] = pat
    texts = list(spec.get("name_patterns", [])) + list(spec.get("text_patterns", []))
    return CodeSet(
        name=name,
        codes=codes,
        code_patterns=pats,
        concept_ids=frozenset(str(c) for c in spec.get("concept_ids", [])),
        names=_compile(texts, f"{where}.name_patterns"),
        source_values=_compile(spec.get("source_value_patterns", []), f"{where}.source_value_patterns"),
        titles=_compile(spec.get("title_patterns", []), f"{where}.title_patterns"),
    )
