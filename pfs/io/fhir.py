"""Read a FHIR R4 export (bulk-export NDJSON, gzipped or not, and Bundle JSON) into the native layout.

Codes and code systems are in ``pfs/rules/fhir_mapping.json``. NDJSON files are streamed line by
line in two passes, so memory holds the kept rows, never the export:

1. Patient and Condition resources: every patient, and the GBM diagnosis (earliest onset).
2. Everything else, kept only for the patients that stay: Procedure (surgery, first radiotherapy
   course), Encounter (last follow-up), MedicationRequest / MedicationStatement /
   MedicationAdministration (+ Medication for medicationReference) -> medications, with
   dosageInstruction mapped to dose, dose_unit, frequency, route and its text kept as the sig;
   DiagnosticReport (presentedForm base64 text, else conclusion) and DocumentReference (base64
   attachments) of radiology -> reports; ImagingStudy series -> imaging through a series-uid ->
   file map (``imaging_map.csv``: series_uid,path).

Malformed lines, resources whose subject is not a Patient of the export, attachments that are
not text, and unmapped image series go to ``conversion_quarantine.csv`` with the file name, the
line (or bundle entry) number and the resource id; everything else proceeds.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pfs.exceptions import ExportError, RuleFileError
from pfs.io.convert import (
    CodeSet,
    ConversionLog,
    ConvertResult,
    iso_date,
    load_rule_file,
    number_text,
    parse_code_set,
    place_file,
    safe_relative,
    treatment_dates,
    write_native,
)
from pfs.io.limits import open_text_gzip_limited
from pfs.io.schema import load_schema

RULE_FILE = "fhir_mapping.json"
_RULE_KEYS = {
    "description",
    "sources",
    "systems",
    "gbm_diagnosis",
    "resection",
    "radiotherapy",
    "radiology_reports",
    "timing_codes",
    "repeat_frequencies",
    "unitless_dose_forms",
    "text_content_types",
    "image_map_file",
    "resection_window_days_before_diagnosis",
    "radiotherapy_course_gap_days",
}
#: A Bundle is one JSON document and must be parsed whole; larger ones should come as NDJSON.
MAX_BUNDLE_BYTES = 1024**3
_FIRST_PASS = re.compile(r'"resourceType"\s*:\s*"(?:Patient|Condition)"')
_MED_TYPES = ("MedicationRequest", "MedicationStatement", "MedicationAdministration")
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class FhirRules:
    """The compiled ``fhir_mapping.json``."""

    system_keys: dict[str, str]
    gbm: CodeSet
    resection: CodeSet
    radiotherapy: CodeSet
    radiology: CodeSet
    timing_codes: dict[str, str]
    repeat: dict[tuple[float, float, str], str]
    unitless: dict[str, str]
    text_types: frozenset[str]
    image_map_file: str
    window_days: int
    gap_days: int

    def matches(self, cs: CodeSet, concepts: list[dict[str, Any]] | dict[str, Any] | None) -> bool:
        """Whether any CodeableConcept in ``concepts`` falls in code set ``cs``."""
        for cc in _as_list(concepts):
            if not isinstance(cc, dict):
                continue
            for coding in _as_list(cc.get("coding")):
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
        timing_codes={str(k).upper(): str(v) for k, v in data["timing_codes"].items()},
        repeat=repeat,
        unitless={str(k).lower(): str(v) for k, v in data["unitless_dose_forms"].items()},
        text_types=frozenset(t.lower() for t in data["text_content_types"]),
        image_map_file=str(data["image_map_file"]),
        window_days=int(data["resection_window_days_before_diagnosis"]),
        gap_days=int(data["radiotherapy_course_gap_days"]),
    )


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _get(obj: Any, *path: str | int) -> Any:
    """obj[path0][path1]...; None as soon as a step is missing or of the wrong type."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(obj, list) or len(obj) <= step:
                return None
            obj = obj[step]
        else:
            if not isinstance(obj, dict):
                return None
            obj = obj.get(step)
    return obj


def _text(cc: Any) -> str:
    """A CodeableConcept as the EHR wrote it: its text, else the first coding's display."""
    if not isinstance(cc, dict):
        return ""
    if cc.get("text"):
        return str(cc["text"]).strip()
    for coding in _as_list(cc.get("coding")):
        if isinstance(coding, dict) and coding.get("display"):
            return str(coding["display"]).strip()
    return ""


def ref_id(reference: Any) -> str:
    """The id a reference points to: 'Patient/123', '.../Patient/123/_history/2', 'urn:uuid:123' -> '123'."""
    ref = _get(reference, "reference") if isinstance(reference, dict) else reference
    if not ref:
        return ""
    ref = str(ref).strip()
    if ref.startswith("urn:uuid:") or ref.startswith("urn:oid:"):
        return ref.split(":", 2)[2]
    parts = [p for p in ref.split("/") if p]
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return parts[-1] if parts else ""


# ---------------------------------------------------------------------------------------------
# Reading resources


@dataclass
class _Where:
    file: str
    row: int


def _files(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise ExportError(f"{src}: FHIR export not found (a directory of .ndjson/.json files or one file)")
    files = [
        p
        for p in sorted(src.rglob("*"))
        if p.is_file()
        and not p.name.startswith(".")
        and "__MACOSX" not in p.parts
        and p.name.lower().endswith((".ndjson", ".ndjson.gz", ".json", ".json.gz", ".jsonl"))
    ]
    if not files:
        raise ExportError(f"{src}: no FHIR files (.ndjson, .ndjson.gz, .json) found")
    return files


def _open_text(path: Path) -> Any:
    if path.name.lower().endswith(".gz"):
        return open_text_gzip_limited(path, encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed by the caller


def _is_ndjson(path: Path) -> bool:
    """NDJSON by name, or a .json file whose first line is a complete resource (bulk exports vary)."""
    low = path.name.lower()
    if low.endswith((".ndjson", ".ndjson.gz", ".jsonl")):
        return True
    with _open_text(path) as fh:
        first = fh.readline()
        second = fh.readline()
    if not second.strip():
        return False
    try:
        json.loads(first)
    except json.JSONDecodeError:
        return False
    return True


def iter_resources(
    path: Path, log: ConversionLog, first_pass: bool
) -> Iterator[tuple[_Where, dict[str, Any]]]:
    """Yield (where, resource) from one file; pass 1 yields Patient/Condition, pass 2 everything else.

    Each NDJSON line is parsed in exactly one pass (decided by a cheap text test), so a malformed
    line is quarantined once.
    """
    label = path.name
    try:
        if _is_ndjson(path):
            with _open_text(path) as fh:
                for n, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    if bool(_FIRST_PASS.search(line)) != first_pass:
                        continue
                    try:
                        res = json.loads(line)
                    except json.JSONDecodeError as err:
                        log.add(label, n, f"malformed NDJSON line: {err.msg} at column {err.colno}")
                        continue
                    yield from _expand(res, _Where(label, n), log, first_pass)
            return
        if path.stat().st_size > MAX_BUNDLE_BYTES:
            raise ExportError(
                f"{path}: a {path.stat().st_size}-byte Bundle is over the {MAX_BUNDLE_BYTES}-byte "
                "limit; export it as NDJSON (one resource per line) instead"
            )
        with _open_text(path) as fh:
            try:
                doc = json.load(fh)
            except json.JSONDecodeError as err:
                if first_pass:
                    log.add(label, err.lineno, f"malformed JSON: {err.msg} at column {err.colno}")
                return
        yield from _expand(doc, _Where(label, 1), log, first_pass)
    except (OSError, EOFError, UnicodeError) as err:
        raise ExportError(f"{path}: cannot read: {err}") from err


def _expand(
    res: Any, where: _Where, log: ConversionLog, first_pass: bool
) -> Iterator[tuple[_Where, dict[str, Any]]]:
    if not isinstance(res, dict) or "resourceType" not in res:
        if first_pass:
            log.add(where.file, where.row, "not a FHIR resource (no resourceType)")
        return
    if res["resourceType"] == "Bundle":
        for i, entry in enumerate(_as_list(res.get("entry")), start=1):
            inner = _get(entry, "resource")
            row = i if where.row == 1 and not _is_line_based(where) else where.row
            if isinstance(inner, dict):
                yield from _expand(inner, _Where(where.file, row), log, first_pass)
        return
    is_first = res["resourceType"] in ("Patient", "Condition")
    if is_first == first_pass:
        yield where, res


def _is_line_based(where: _Where) -> bool:
    return where.file.lower().endswith((".ndjson", ".ndjson.gz", ".jsonl"))


# ---------------------------------------------------------------------------------------------
# Conversion


@dataclass
class _State:
    rules: FhirRules
    log: ConversionLog
    patients: dict[str, dict[str, Any]] = field(default_factory=dict)
    diagnosis: dict[str, str] = field(default_factory=dict)
    diagnosis_where: dict[str, tuple[_Where, str]] = field(default_factory=dict)
    first_record: dict[str, str] = field(default_factory=dict)
    procedures: list[dict[str, str]] = field(default_factory=list)
    followup: dict[str, str] = field(default_factory=dict)
    meds: list[dict[str, Any]] = field(default_factory=list)
    med_names: dict[str, str] = field(default_factory=dict)
    reports: list[dict[str, Any]] = field(default_factory=list)
    series: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    pending_missing: list[tuple[_Where, str, str, str]] = field(default_factory=list)

    def bump(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def seen(self, pid: str, date: str) -> None:
        if date and (pid not in self.first_record or date < self.first_record[pid]):
            self.first_record[pid] = date


def convert_fhir(
    src: Path, out: Path, *, require_gbm: bool = True, image_map: Path | None = None
) -> ConvertResult:
    """Convert the FHIR R4 export at ``src`` (directory or file) into the native layout at ``out``.

    Args:
        src: a bulk-export directory (``*.ndjson``, ``*.ndjson.gz``), Bundle ``*.json`` files, or one file.
        out: the native export directory to write.
        require_gbm: skip (and count) patients without a GBM Condition; False keeps everyone, with
            the diagnosis date falling back to their first dated record.
        image_map: CSV with columns series_uid,path mapping ImagingStudy series to local NIfTI files
            or DICOM folders (paths relative to the CSV); default ``imaging_map.csv`` in ``src``.
    """
    src, out = Path(src), Path(out)
    rules = load_rules()
    log = ConversionLog()
    st = _State(rules=rules, log=log)
    files = _files(src)
    for path in files:
        for where, res in iter_resources(path, log, first_pass=True):
            _first(st, where, res)
    for pid, (where, rid) in st.diagnosis_where.items():
        if pid not in st.patients:
            log.add(
                where.file,
                where.row,
                f"Condition refers to Patient {pid!r}, which is not in the export",
                patient_id=pid,
                column="subject",
                value=rid,
            )
    keep = (set(st.diagnosis) if require_gbm else set(st.patients)) & set(st.patients)
    for path in files:
        for where, res in iter_resources(path, log, first_pass=False):
            _second(st, where, res, keep)
    for where, rtype, rid, pid in st.pending_missing:
        if pid not in st.patients:
            log.add(
                where.file,
                where.row,
                f"{rtype} refers to Patient {pid!r}, which is not in the export",
                patient_id=pid,
                column="subject",
                value=rid,
            )
    base = src if src.is_dir() else src.parent
    imaging = _imaging(st, base, out, image_map)
    counts: dict[str, Any] = {
        "format": "fhir",
        "source": str(src),
        "require_gbm": require_gbm,
        "files": len(files),
        "persons_seen": len(st.patients),
        "gbm_patients": len(set(st.diagnosis) & set(st.patients)),
        "skipped_no_gbm": len(st.patients) - len(keep) if require_gbm else 0,
        **dict(sorted(st.counts.items())),
    }
    patients = _patients(st, keep, counts)
    kept = set(patients["patient_id"])
    tables = {
        "patients": patients,
        "medications": _medications(st, kept),
        "reports": pd.DataFrame(
            st.reports, columns=["patient_id", "report_id", "report_date", "procedure", "text"]
        ),
        "imaging": imaging,
    }
    for name in ("reports", "imaging"):
        tables[name] = tables[name].loc[tables[name]["patient_id"].isin(kept)]
    counts["patients"] = len(patients)
    return write_native(out, tables, log, counts)


def _subject(st: _State, where: _Where, res: dict[str, Any], keep: set[str]) -> str | None:
    """The kept patient a resource belongs to; None (quarantined when unknown) otherwise."""
    pid = ref_id(res.get("subject") or res.get("patient"))
    rid = str(res.get("id", ""))
    if not pid:
        st.log.add(
            where.file, where.row, f"{res['resourceType']} without a subject", column="subject", value=rid
        )
        return None
    if pid not in st.patients:
        # A Patient may sit in a file read later in this pass only for pass-2 types; check at the end.
        st.pending_missing.append((where, res["resourceType"], rid, pid))
        return None
    return pid if pid in keep else None


def _first(st: _State, where: _Where, res: dict[str, Any]) -> None:
    rtype = res["resourceType"]
    rid = str(res.get("id", "")).strip()
    if rtype == "Patient":
        if not rid:
            st.log.add(where.file, where.row, "Patient without an id")
            return
        if rid in st.patients:
            st.log.add(where.file, where.row, "duplicate Patient id", patient_id=rid, value=rid)
            return
        death = iso_date(res.get("deceasedDateTime"))
        if res.get("deceasedBoolean") is True and not death:
            st.bump("deceased_without_date")
        st.patients[rid] = {"death_date": death, "where": where}
        return
    # Condition
    if _entered_in_error(res, "verificationStatus") or _code_of(res.get("verificationStatus")) == "refuted":
        st.bump("conditions_refuted_or_in_error")
        return
    if not st.rules.matches(st.rules.gbm, res.get("code")):
        return
    pid = ref_id(res.get("subject"))
    date = (
        iso_date(res.get("onsetDateTime"))
        or iso_date(_get(res, "onsetPeriod", "start"))
        or iso_date(res.get("recordedDate"))
    )
    if not date:
        st.log.add(
            where.file,
            where.row,
            "GBM Condition without an onset or recorded date",
            patient_id=pid,
            column="onsetDateTime",
            value=rid,
        )
        return
    if pid and (pid not in st.diagnosis or date < st.diagnosis[pid]):
        st.diagnosis[pid] = date
        st.diagnosis_where[pid] = (where, rid)


def _code_of(cc: Any) -> str:
    return str(_get(cc, "coding", 0, "code") or "").strip().lower()


def _entered_in_error(res: dict[str, Any], status_field: str = "status") -> bool:
    value = res.get(status_field)
    code = value if isinstance(value, str) else _code_of(value)
    return str(code).lower() == "entered-in-error"


def _second(st: _State, where: _Where, res: dict[str, Any], keep: set[str]) -> None:
    rtype = res["resourceType"]
    if rtype == "Medication":
        rid = str(res.get("id", "")).strip()
        if rid:
            st.med_names[rid] = _text(res.get("code"))
        return
    if rtype not in (
        "Procedure",
        "Encounter",
        *_MED_TYPES,
        "DiagnosticReport",
        "DocumentReference",
        "ImagingStudy",
    ):
        return
    if _entered_in_error(res):
        st.bump("entered_in_error_skipped")
        return
    pid = _subject(st, where, res, keep)
    if pid is None:
        return
    rid = str(res.get("id", "")).strip()
    if rtype == "Encounter":
        end = iso_date(_get(res, "period", "end")) or iso_date(_get(res, "period", "start"))
        if end and end > st.followup.get(pid, ""):
            st.followup[pid] = end
        st.seen(pid, iso_date(_get(res, "period", "start")) or end)
        return
    if rtype == "Procedure":
        kind = (
            "radiotherapy"
            if st.rules.matches(st.rules.radiotherapy, res.get("code"))
            else "resection"
            if st.rules.matches(st.rules.resection, res.get("code"))
            else ""
        )
        if not kind:
            return
        start = iso_date(res.get("performedDateTime")) or iso_date(_get(res, "performedPeriod", "start"))
        if not start:
            st.log.add(
                where.file,
                where.row,
                f"{kind} Procedure without a performed date",
                patient_id=pid,
                column="performedDateTime",
                value=rid,
            )
            return
        st.procedures.append(
            {
                "patient_id": pid,
                "kind": kind,
                "date": start,
                "end": iso_date(_get(res, "performedPeriod", "end")),
            }
        )
        return
    if rtype in _MED_TYPES:
        _medication(st, where, res, pid, rid)
        return
    if rtype == "ImagingStudy":
        _imaging_study(st, where, res, pid, rid)
        return
    _report(st, where, res, pid, rid)


def _frequency(timing: Any, as_needed: bool, rules: FhirRules) -> str:
    """Timing -> the frequency words an EHR writes: Timing.code as written, else repeat mapped."""
    if not isinstance(timing, dict):
        return "PRN" if as_needed else ""
    code = timing.get("code")
    if isinstance(code, dict):
        if code.get("text"):
            return str(code["text"]).strip()
        c = str(_get(code, "coding", 0, "code") or "").strip()
        if c:
            return rules.timing_codes.get(c.upper(), c)
    rep = timing.get("repeat")
    text = ""
    if isinstance(rep, dict) and rep.get("period") is not None:
        f = float(rep.get("frequency", 1) or 1)
        p = float(rep["period"])
        unit = str(rep.get("periodUnit", "")).strip()
        text = rules.repeat.get((f, p, unit), "")
        if not text and unit == "h" and f == 1:
            text = f"q{number_text(p)}h"
        if not text:
            text = f"{number_text(f)} times every {number_text(p)} {unit}".strip()
    if as_needed:
        text = f"{text} PRN".strip()
    return text


def _medication(st: _State, where: _Where, res: dict[str, Any], pid: str, rid: str) -> None:
    rtype = res["resourceType"]
    concept = res.get("medicationCodeableConcept")
    med_ref = ref_id(_get(res, "medicationReference"))
    name = _text(concept)
    if not rid:
        st.log.add(where.file, where.row, f"{rtype} without an id", patient_id=pid)
        return
    if rtype == "MedicationRequest":
        dosage = _get(res, "dosageInstruction", 0) or {}
        start = iso_date(res.get("authoredOn")) or iso_date(
            _get(dosage, "timing", "repeat", "boundsPeriod", "start")
        )
        end = iso_date(_get(dosage, "timing", "repeat", "boundsPeriod", "end")) or iso_date(
            _get(res, "dispenseRequest", "validityPeriod", "end")
        )
    elif rtype == "MedicationStatement":
        dosage = _get(res, "dosage", 0) or {}
        start = (
            iso_date(res.get("effectiveDateTime"))
            or iso_date(_get(res, "effectivePeriod", "start"))
            or iso_date(res.get("dateAsserted"))
        )
        end = iso_date(_get(res, "effectivePeriod", "end"))
    else:  # MedicationAdministration: one dose given; its dosage has no timing
        dosage = res.get("dosage") or {}
        start = iso_date(res.get("effectiveDateTime")) or iso_date(_get(res, "effectivePeriod", "start"))
        end = iso_date(_get(res, "effectivePeriod", "end"))
    if not start:
        st.log.add(
            where.file, where.row, f"{rtype} without a date", patient_id=pid, column="authoredOn", value=rid
        )
        return
    quantity = (
        _get(dosage, "doseAndRate", 0, "doseQuantity")
        or _get(dosage, "doseAndRate", 0, "doseRange", "low")
        or _get(dosage, "dose")
        or {}
    )
    dose = number_text(_get(quantity, "value")) if isinstance(quantity, dict) else ""
    unit = (
        str(_get(quantity, "unit") or _get(quantity, "code") or "").strip()
        if isinstance(quantity, dict)
        else ""
    )
    frequency = _frequency(dosage.get("timing"), dosage.get("asNeededBoolean") is True, st.rules)
    if rtype == "MedicationAdministration" and not frequency:
        frequency = "once"
    st.seen(pid, start)
    st.meds.append(
        {
            "patient_id": pid,
            "medication_id": rid,
            "order_date": start,
            "end_date": end,
            "drug_name": name,
            "med_ref": med_ref,
            "dose": dose,
            "dose_unit": unit,
            "frequency": frequency,
            "route": _text(dosage.get("route")),
            "sig": str(dosage.get("text") or "").strip(),
            "file": where.file,
            "row": where.row,
        }
    )
    st.bump(f"{rtype}_rows")


def _medications(st: _State, kept: set[str]) -> pd.DataFrame:
    rows = []
    seen: set[str] = set()
    for m in st.meds:
        if m["patient_id"] not in kept:
            continue
        if not m["drug_name"] and m["med_ref"]:
            m["drug_name"] = st.med_names.get(m["med_ref"], "")
        if not m["drug_name"]:
            why = (
                f"medicationReference {m['med_ref']!r} not found among Medication resources"
                if m["med_ref"]
                else "no medication code or text"
            )
            st.log.add(
                m["file"],
                m["row"],
                why,
                patient_id=m["patient_id"],
                column="medication",
                value=m["medication_id"],
            )
            continue
        if m["medication_id"] in seen:
            st.log.add(
                m["file"],
                m["row"],
                "duplicate medication resource id",
                patient_id=m["patient_id"],
                value=m["medication_id"],
            )
            continue
        seen.add(m["medication_id"])
        if m["dose"] and not m["dose_unit"]:
            # A unitless doseQuantity counts the product's dose form (Synthea: '1' = one tablet).
            words = re.findall(r"[a-z]+", m["drug_name"].lower())
            m["dose_unit"] = next(
                (st.rules.unitless[w] for w in reversed(words) if w in st.rules.unitless), ""
            )
        rows.append(m)
    cols = load_schema("medications").columns
    return pd.DataFrame(rows, columns=[*cols, "med_ref", "file", "row"])[cols]


def _is_radiology(st: _State, res: dict[str, Any]) -> bool:
    r = st.rules
    return (
        r.matches(r.radiology, res.get("category"))
        or r.matches(r.radiology, res.get("code"))
        or r.matches(r.radiology, res.get("type"))
    )


def _attachment_text(st: _State, where: _Where, att: dict[str, Any], pid: str, rid: str) -> str | None:
    """Decoded text of an inline attachment; None (quarantined) when it is not text."""
    ctype = str(att.get("contentType", "")).lower()
    mime = ctype.split(";")[0].strip()
    if mime and mime not in st.rules.text_types:
        st.log.add(
            where.file,
            where.row,
            f"attachment is {mime}, not text",
            patient_id=pid,
            column="attachment",
            value=rid,
        )
        return None
    data = att.get("data")
    if not data:
        if att.get("url"):
            st.bump("attachments_by_url_not_fetched")
        return None
    try:
        raw = base64.b64decode(str(data), validate=True)
    except (binascii.Error, ValueError):
        st.log.add(
            where.file,
            where.row,
            "attachment data is not valid base64",
            patient_id=pid,
            column="attachment",
            value=rid,
        )
        return None
    m = re.search(r"charset=([\w\-]+)", ctype)
    try:
        text = raw.decode(m.group(1) if m else "utf-8")
    except (UnicodeDecodeError, LookupError):
        text = None
    if text is None or "\x00" in text:
        st.log.add(
            where.file,
            where.row,
            "base64 attachment does not decode to text",
            patient_id=pid,
            column="attachment",
            value=rid,
        )
        return None
    if mime in ("text/html", "application/xhtml+xml"):
        text = html.unescape(_TAG.sub(" ", text))
    return text


def _report(st: _State, where: _Where, res: dict[str, Any], pid: str, rid: str) -> None:
    if not _is_radiology(st, res):
        return
    rtype = res["resourceType"]
    if rtype == "DiagnosticReport":
        date = (
            iso_date(res.get("effectiveDateTime"))
            or iso_date(_get(res, "effectivePeriod", "start"))
            or iso_date(res.get("issued"))
        )
        atts = [a for a in _as_list(res.get("presentedForm")) if isinstance(a, dict)]
        procedure = _text(res.get("code"))
    else:
        date = iso_date(_get(res, "context", "period", "start")) or iso_date(res.get("date"))
        atts = [
            a for a in (_get(c, "attachment") for c in _as_list(res.get("content"))) if isinstance(a, dict)
        ]
        procedure = _text(res.get("type")) or str(res.get("description") or "").strip()
    texts = [t for t in (_attachment_text(st, where, a, pid, rid) for a in atts) if t and t.strip()]
    text = texts[0] if texts else str(res.get("conclusion") or "").strip()
    if not rid or not date or not text.strip():
        missing = "id" if not rid else "date" if not date else "text (no text attachment or conclusion)"
        st.log.add(where.file, where.row, f"radiology {rtype} without {missing}", patient_id=pid, value=rid)
        return
    st.seen(pid, date)
    st.reports.append(
        {"patient_id": pid, "report_id": rid, "report_date": date, "procedure": procedure, "text": text}
    )
    st.bump(f"{rtype}_radiology")


def _imaging_study(st: _State, where: _Where, res: dict[str, Any], pid: str, rid: str) -> None:
    study_date = iso_date(res.get("started"))
    for s in _as_list(res.get("series")):
        if not isinstance(s, dict):
            continue
        date = iso_date(s.get("started")) or study_date
        st.series.append(
            {
                "patient_id": pid,
                "study_id": rid,
                "study_date": date,
                "sequence": str(s.get("description") or "").strip(),
                "uid": str(s.get("uid") or "").strip(),
                "file": where.file,
                "row": where.row,
            }
        )


def _imaging(st: _State, base: Path, out: Path, image_map: Path | None) -> pd.DataFrame:
    cols = ["patient_id", "study_id", "study_date", "sequence", "path", "mask_path"]
    if not st.series:
        return pd.DataFrame(columns=cols)
    map_path = Path(image_map) if image_map else base / st.rules.image_map_file
    mapping: dict[str, str] = {}
    if map_path.is_file():
        frame = pd.read_csv(map_path, dtype=str, keep_default_na=False)
        frame.columns = [c.strip().lower() for c in frame.columns]
        if not {"series_uid", "path"} <= set(frame.columns):
            raise ExportError(
                f"{map_path}: the image map needs columns series_uid,path (found {list(frame.columns)})"
            )
        mapping = dict(zip(frame["series_uid"].str.strip(), frame["path"].str.strip(), strict=True))
    rows = []
    for s in st.series:
        rel = mapping.get(s["uid"])
        why = (
            "series has no local file in the image map"
            if rel is None
            else "series without a date"
            if not s["study_date"]
            else None
        )
        rel_safe = safe_relative(rel) if rel else None
        if why is None and rel_safe is None:
            why = "image map path is absolute or escapes its directory"
        if why is None and not (map_path.parent / rel_safe).exists():
            why = "image file not found"
        if why:
            st.log.add(
                s["file"],
                s["row"],
                why,
                patient_id=s["patient_id"],
                column="series.uid",
                value=f"{s['study_id']}/{s['uid']}",
            )
            continue
        place_file(map_path.parent / rel_safe, out / rel_safe)
        rows.append(
            {
                "patient_id": s["patient_id"],
                "study_id": s["study_id"],
                "study_date": s["study_date"],
                "sequence": s["sequence"],
                "path": rel_safe,
                "mask_path": "",
            }
        )
    return pd.DataFrame(rows, columns=cols)


def _patients(st: _State, keep: set[str], counts: dict[str, Any]) -> pd.DataFrame:
    procs = pd.DataFrame(st.procedures, columns=["patient_id", "kind", "date", "end"])
    rows = []
    fallback = 0
    for pid in sorted(keep):
        info = st.patients[pid]
        diagnosis = st.diagnosis.get(pid) or st.first_record.get(pid, "")
        if pid not in st.diagnosis:
            fallback += 1
        if not diagnosis:
            w = info["where"]
            st.log.add(
                w.file,
                w.row,
                "no GBM diagnosis date and no dated record to stand in",
                patient_id=pid,
                value=pid,
            )
            continue
        surgery, rt_start, rt_end = treatment_dates(
            procs.loc[procs["patient_id"] == pid], diagnosis, st.rules.window_days, st.rules.gap_days
        )
        rows.append(
            {
                "patient_id": pid,
                "diagnosis_date": diagnosis,
                "surgery_date": surgery,
                "rt_start_date": rt_start,
                "rt_end_date": rt_end,
                "last_followup_date": st.followup.get(pid, ""),
                "death_date": info["death_date"],
            }
        )
    counts["diagnosis_date_fallback"] = fallback
    return pd.DataFrame(
        rows,
        columns=[
            "patient_id",
            "diagnosis_date",
            "surgery_date",
            "rt_start_date",
            "rt_end_date",
            "last_followup_date",
            "death_date",
        ],
    )
