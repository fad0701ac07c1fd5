"""The compiled OMOP mapping rules (``pfs/rules/omop_mapping.json``)."""

from __future__ import annotations

from dataclasses import dataclass

from pfs.exceptions import RuleFileError
from pfs.io.formats.codes import CodeSet, load_rule_file, parse_code_set

RULE_FILE = "omop_mapping.json"


_RULE_KEYS = {
    "description",
    "sources",
    "gbm_diagnosis",
    "resection",
    "radiotherapy",
    "radiology_notes",
    "series_description",
    "route_concepts",
    "corticosteroid_ingredients",
    "ingredient_relationships",
    "resection_window_days_before_diagnosis",
    "radiotherapy_course_gap_days",
}


@dataclass(frozen=True)
class OmopRules:
    """The compiled ``omop_mapping.json``."""

    gbm: CodeSet
    resection: CodeSet
    radiotherapy: CodeSet
    radiology: CodeSet
    series_description: CodeSet
    routes: dict[str, str]
    ingredients: dict[str, str]
    ingredient_relationships: frozenset[str]
    resection_window_days: int
    rt_gap_days: int


def load_rules() -> OmopRules:
    """Read and validate the shipped OMOP mapping."""
    data = load_rule_file(RULE_FILE, _RULE_KEYS)
    for key in ("resection_window_days_before_diagnosis", "radiotherapy_course_gap_days"):
        if not isinstance(data.get(key), int) or data[key] < 0:
            raise RuleFileError(
                f"rules/{RULE_FILE}: {key} must be a non-negative integer, not {data.get(key)!r}"
            )
    return OmopRules(
        gbm=parse_code_set(data["gbm_diagnosis"], "gbm_diagnosis", RULE_FILE),
        resection=parse_code_set(data["resection"], "resection", RULE_FILE),
        radiotherapy=parse_code_set(data["radiotherapy"], "radiotherapy", RULE_FILE),
        radiology=parse_code_set(data["radiology_notes"], "radiology_notes", RULE_FILE),
        series_description=parse_code_set(data["series_description"], "series_description", RULE_FILE),
        routes={str(k): str(v) for k, v in data["route_concepts"].items()},
        ingredients={str(k): str(v) for k, v in data["corticosteroid_ingredients"].items()},
        ingredient_relationships=frozenset(data["ingredient_relationships"]),
        resection_window_days=data["resection_window_days_before_diagnosis"],
        rt_gap_days=data["radiotherapy_course_gap_days"],
    )
