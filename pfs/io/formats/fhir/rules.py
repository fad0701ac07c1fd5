"""The compiled FHIR mapping rules (``pfs/rules/fhir_mapping.json``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pfs.exceptions import RuleFileError
from pfs.io.formats.codes import CodeSet, load_rule_file, parse_code_set
from pfs.io.formats.fhir.resources import as_list

RULE_FILE = "fhir_mapping.json"


_RULE_KEYS = {
    "description",
    "sources",
    "systems",
    "gbm_diagnosis",
    "resection",
    "radiotherapy",
    "radiology_reports",
    "procedure_statuses_not_performed",
    "timing_codes",
    "repeat_frequencies",
    "unitless_dose_forms",
    "text_content_types",
    "image_map_file",
    "resection_window_days_before_diagnosis",
    "radiotherapy_course_gap_days",
}


@dataclass(frozen=True)
class FhirRules:
    """The compiled ``fhir_mapping.json``."""

    system_keys: dict[str, str]
    gbm: CodeSet
    resection: CodeSet
    radiotherapy: CodeSet
    radiology: CodeSet
    not_performed: frozenset[str]
    timing_codes: dict[str, str]
    repeat: dict[tuple[float, float, str], str]
    unitless: dict[str, str]
    text_types: frozenset[str]
    image_map_file: str
    window_days: int
    gap_days: int

    def matches(self, cs: CodeSet, concepts: list[dict[str, Any]] | dict[str, Any] | None) -> bool:
        """Whether any CodeableConcept in ``concepts`` falls in code set ``cs``."""
        for cc in as_list(concepts):
            if not isinstance(cc, dict):
                continue
            for coding in as_list(cc.get("coding")):
                if not isinstance(coding, dict):
                    continue
                key = self.system_keys.get(str(coding.get("system", "")).strip().rstrip("/"))
                if key and cs.matches_code(key, str(coding.get("code", ""))):
                    return True
                if cs.matches_name(coding.get("display")):
                    return True
            if cs.matches_name(cc.get("text")):
                return True
        return False


def load_rules() -> FhirRules:
    """Read and validate the shipped FHIR mapping."""
    data = load_rule_file(RULE_FILE, _RULE_KEYS)
    keys = {str(url).rstrip("/"): key for key, urls in data["systems"].items() for url in urls}
    for key in ("resection_window_days_before_diagnosis", "radiotherapy_course_gap_days"):
        if not isinstance(data.get(key), int) or data[key] < 0:
            raise RuleFileError(
                f"rules/{RULE_FILE}: {key} must be a non-negative integer, not {data.get(key)!r}"
            )
    statuses = data.get("procedure_statuses_not_performed")
    if not isinstance(statuses, list) or not all(isinstance(s, str) for s in statuses):
        raise RuleFileError(f"rules/{RULE_FILE}: procedure_statuses_not_performed must be a list of status codes")
    repeat: dict[tuple[float, float, str], str] = {}
    for item in data["repeat_frequencies"]:
        if set(item) != {"frequency", "period", "unit", "text"}:
            raise RuleFileError(
                f"rules/{RULE_FILE}: repeat_frequencies entries need exactly "
                f"frequency, period, unit, text; got {sorted(item)}"
            )
        repeat[(float(item["frequency"]), float(item["period"]), str(item["unit"]))] = str(item["text"])
    sets = {
        k: parse_code_set(data[k], k, RULE_FILE)
        for k in ("gbm_diagnosis", "resection", "radiotherapy", "radiology_reports")
    }
    for name, cs in sets.items():
        bad = (set(cs.codes) | set(cs.code_patterns)) - set(data["systems"])
        if bad:
            raise RuleFileError(
                f"rules/{RULE_FILE}: {name} uses system keys {sorted(bad)} not listed in 'systems'"
            )
    return FhirRules(
        system_keys=keys,
        gbm=sets["gbm_diagnosis"],
        resection=sets["resection"],
        radiotherapy=sets["radiotherapy"],
        radiology=sets["radiology_reports"],
        not_performed=frozenset(s.strip().lower() for s in statuses),
        timing_codes={str(k).upper(): str(v) for k, v in data["timing_codes"].items()},
        repeat=repeat,
        unitless={str(k).lower(): str(v) for k, v in data["unitless_dose_forms"].items()},
        text_types=frozenset(t.lower() for t in data["text_content_types"]),
        image_map_file=str(data["image_map_file"]),
        window_days=int(data["resection_window_days_before_diagnosis"]),
        gap_days=int(data["radiotherapy_course_gap_days"]),
    )
