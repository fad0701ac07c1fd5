"""MedicationRequest / MedicationStatement / MedicationAdministration -> the native medications table."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from pfs.io.formats.common import iso_date, number_text, set_aside
from pfs.io.formats.fhir.reader import Where
from pfs.io.formats.fhir.resources import concept_text, get_path, ref_id
from pfs.io.formats.fhir.rules import FhirRules
from pfs.io.formats.fhir.state import State
from pfs.io.schema import load_schema

MED_TYPES = ("MedicationRequest", "MedicationStatement", "MedicationAdministration")


def _frequency(timing: Any, as_needed: bool, rules: FhirRules) -> str:
    """Timing -> the frequency words an EHR writes: Timing.code as written, else repeat mapped."""
    if not isinstance(timing, dict):
        return "PRN" if as_needed else ""
    code = timing.get("code")
    if isinstance(code, dict):
        if code.get("text"):
            return str(code["text"]).strip()
        c = str(get_path(code, "coding", 0, "code") or "").strip()
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


def medication(st: State, where: Where, res: dict[str, Any], pid: str, rid: str) -> None:
    rtype = res["resourceType"]
    concept = res.get("medicationCodeableConcept")
    med_ref = ref_id(get_path(res, "medicationReference"))
    name = concept_text(concept)
    if not rid:
        set_aside(st.quarantine, where.file, where.row, f"{rtype} without an id", patient_id=pid)
        return
    if rtype == "MedicationRequest":
        dosage = get_path(res, "dosageInstruction", 0) or {}
        start = iso_date(res.get("authoredOn")) or iso_date(
            get_path(dosage, "timing", "repeat", "boundsPeriod", "start")
        )
        end = iso_date(get_path(dosage, "timing", "repeat", "boundsPeriod", "end")) or iso_date(
            get_path(res, "dispenseRequest", "validityPeriod", "end")
        )
    elif rtype == "MedicationStatement":
        dosage = get_path(res, "dosage", 0) or {}
        start = (
            iso_date(res.get("effectiveDateTime"))
            or iso_date(get_path(res, "effectivePeriod", "start"))
            or iso_date(res.get("dateAsserted"))
        )
        end = iso_date(get_path(res, "effectivePeriod", "end"))
    else:  # MedicationAdministration: one dose given; its dosage has no timing
        dosage = res.get("dosage") or {}
        start = iso_date(res.get("effectiveDateTime")) or iso_date(get_path(res, "effectivePeriod", "start"))
        end = iso_date(get_path(res, "effectivePeriod", "end"))
    if not start:
        set_aside(
            st.quarantine,
            where.file, where.row, f"{rtype} without a date", patient_id=pid, column="authoredOn", value=rid
        )
        return
    quantity = (
        get_path(dosage, "doseAndRate", 0, "doseQuantity")
        or get_path(dosage, "doseAndRate", 0, "doseRange", "low")
        or get_path(dosage, "dose")
        or {}
    )
    dose = number_text(get_path(quantity, "value")) if isinstance(quantity, dict) else ""
    unit = (
        str(get_path(quantity, "unit") or get_path(quantity, "code") or "").strip()
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
            "route": concept_text(dosage.get("route")),
            "sig": str(dosage.get("text") or "").strip(),
            "file": where.file,
            "row": where.row,
        }
    )
    st.bump(f"{rtype}_rows")


def medications_table(st: State, kept: set[str]) -> pd.DataFrame:
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
            set_aside(
                st.quarantine,
                m["file"],
                m["row"],
                why,
                patient_id=m["patient_id"],
                column="medication",
                value=m["medication_id"],
            )
            continue
        if m["medication_id"] in seen:
            set_aside(
                st.quarantine,
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
