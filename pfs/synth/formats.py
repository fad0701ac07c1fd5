"""Write a native export as an OMOP CDM 5.4 export or a FHIR R4 bulk export (``pfs synth --format``).

The same cohort in three layouts lets the test suite check the converters end to end:
``convert(native_to_omop(export))`` and ``convert(native_to_fhir(export))`` must give back the
native tables. The writers use the code lists of the mapping rule files, so a change of rule that
breaks the round trip fails a test.

What OMOP cannot carry (documented, and asserted by the round-trip tests):

- identifiers: OMOP ids are integers, so patients keep theirs through ``person_source_value``
  (convert with ``patient_id="person_source_value"``) while medication and report ids become
  ``drug_exposure_id`` and ``note_id`` (1, 2, ... in export order);
- ``medications.frequency``: DRUG_EXPOSURE has no frequency column; it is written as the sig when
  the sig is blank (the steroid extractor reads frequencies from the sig), otherwise the sig,
  which already states it, stands alone;
- ``imaging.mask_path``: IMAGE_OCCURRENCE has no place for a precomputed mask.

FHIR carries everything (Timing.code.text holds the frequency as written) except ``mask_path``.

Both write ``imaging.sequence`` as a real export would: a vendor-style series description
(``rules/synth_series.json``: Siemens, GE, Philips or site names, one vendor per study), in
OMOP as an OBSERVATION tied to the image occurrence (the OHDSI imaging extension's place for
DICOM attributes) and in FHIR as ``ImagingStudy.series.description``. The converted native table
carries the description; the imaging source classifies it back to the same role.
"""

from __future__ import annotations

import base64
import json
import zlib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from pfs.io.export import load_export
from pfs.io.formats.common import number_text, place_file
from pfs.io.output import write_bytes, write_table
from pfs.io.series import classify

#: Site-specific OMOP concept ids start above 2,000,000,000 (CDM convention for local concepts).
LOCAL_CONCEPT_BASE = 2_000_000_000
#: OMOP Type Concept 'EHR' and Note Type 'Radiology report' (see rules/omop_mapping.json sources).
TYPE_EHR = 32817
NOTE_TYPE_RADIOLOGY = 44814641

_GBM = {"snomed": "393563007", "display": "Glioblastoma multiforme (disorder)", "icd10": "C71.9"}
_RESECTION = {"cpt": "61510", "display": "Craniotomy for excision of brain tumor, supratentorial"}
_RT = {"snomed": "108290001", "display": "Radiation oncology AND/OR radiotherapy (procedure)"}
SNOMED = "http://snomed.info/sct"
CPT = "http://www.ama-assn.org/go/cpt"
LOINC = "http://loinc.org"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
DICOM_MODALITY = "http://dicom.nema.org/resources/ontology/DCM"


#: How the series description is labelled in OBSERVATION (DICOM Series Description, tag 0008,103E).
SERIES_DESCRIPTION_SOURCE = "Series Description (0008,103E)"
_VENDORS = ("siemens", "ge", "philips", "site")


@cache
def _vendor_names() -> dict[str, dict[str, list[str]]]:
    """The vendors' series names of ``rules/synth_series.json`` (unknown keys and vendors are errors)."""
    from pfs.exceptions import RuleFileError

    data = json.loads(resources.files("pfs.rules").joinpath("synth_series.json").read_text(encoding="utf-8"))
    unknown = (set(data) - {"description", "vendors"}) | (set(data.get("vendors", {})) - set(_VENDORS))
    if unknown or "vendors" not in data:
        raise RuleFileError(f"rules/synth_series.json: unknown or missing keys {sorted(unknown) or ['vendors']}")
    return data["vendors"]


def series_description(study_id: str, sequence: str) -> str:
    """A vendor-style description for a native series (fixed by the study id: same cohort, same names).

    One vendor per study (one scanner acquires a study); a name the classifier cannot place keeps
    the native name.
    """
    role = classify(sequence).role
    vendor = _VENDORS[zlib.crc32(f"vendor:{study_id}".encode()) % len(_VENDORS)]
    names = _vendor_names()[vendor].get(role)
    if not names:
        return str(sequence)
    return names[zlib.crc32(f"{role}:{study_id}".encode()) % len(names)]


def _s(value: Any) -> str:
    """A native cell as text: '' for missing, ISO dates for timestamps."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return ""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d")
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return str(value)


def _records(frame: pd.DataFrame) -> list[dict[str, str]]:
    cols = [c for c in frame.columns if c != "_row"]
    return [{c: _s(v) for c, v in zip(cols, row, strict=True)} for row in frame[cols].itertuples(index=False)]


# ---------------------------------------------------------------------------------------------
# OMOP


def native_to_omop(native_export: Path | str, out: Path | str) -> Path:
    """Write the native export at ``native_export`` as OMOP CDM 5.4 CSV tables in ``out``."""
    export = load_export(native_export)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    patients = _records(export.table("patients"))
    person_id = {p["patient_id"]: i for i, p in enumerate(patients, start=1)}
    concepts = [
        {
            "concept_id": LOCAL_CONCEPT_BASE + 1,
            "concept_name": "Glioblastoma multiforme",
            "domain_id": "Condition",
            "vocabulary_id": "SNOMED",
            "concept_class_id": "Clinical Finding",
            "standard_concept": "S",
            "concept_code": _GBM["snomed"],
        },
        {
            "concept_id": LOCAL_CONCEPT_BASE + 2,
            "concept_name": _RESECTION["display"],
            "domain_id": "Procedure",
            "vocabulary_id": "CPT4",
            "concept_class_id": "CPT4",
            "standard_concept": "S",
            "concept_code": _RESECTION["cpt"],
        },
        {
            "concept_id": LOCAL_CONCEPT_BASE + 3,
            "concept_name": "Radiation oncology AND/OR radiotherapy",
            "domain_id": "Procedure",
            "vocabulary_id": "SNOMED",
            "concept_class_id": "Procedure",
            "standard_concept": "S",
            "concept_code": _RT["snomed"],
        },
        {
            "concept_id": NOTE_TYPE_RADIOLOGY,
            "concept_name": "Radiology report",
            "domain_id": "Type Concept",
            "vocabulary_id": "Note Type",
            "concept_class_id": "Note Type",
            "standard_concept": "S",
            "concept_code": "OMOP4822164",
        },
    ]
    person, obs, cond, proc, death = [], [], [], [], []
    for p in patients:
        pid = person_id[p["patient_id"]]
        person.append(
            {
                "person_id": pid,
                "gender_concept_id": 0,
                "year_of_birth": "",
                "race_concept_id": 0,
                "ethnicity_concept_id": 0,
                "person_source_value": p["patient_id"],
            }
        )
        if p["last_followup_date"]:
            obs.append(
                {
                    "observation_period_id": len(obs) + 1,
                    "person_id": pid,
                    "observation_period_start_date": min(p["diagnosis_date"], p["last_followup_date"]),
                    "observation_period_end_date": p["last_followup_date"],
                    "period_type_concept_id": TYPE_EHR,
                }
            )
        cond.append(
            {
                "condition_occurrence_id": len(cond) + 1,
                "person_id": pid,
                "condition_concept_id": LOCAL_CONCEPT_BASE + 1,
                "condition_start_date": p["diagnosis_date"],
                "condition_type_concept_id": TYPE_EHR,
                "condition_source_value": _GBM["icd10"],
                "condition_source_concept_id": 0,
            }
        )
        if p["surgery_date"]:
            proc.append(
                {
                    "procedure_occurrence_id": len(proc) + 1,
                    "person_id": pid,
                    "procedure_concept_id": LOCAL_CONCEPT_BASE + 2,
                    "procedure_date": p["surgery_date"],
                    "procedure_end_date": "",
                    "procedure_type_concept_id": TYPE_EHR,
                    "procedure_source_value": _RESECTION["cpt"],
                    "procedure_source_concept_id": 0,
                }
            )
        if p["rt_start_date"]:
            proc.append(
                {
                    "procedure_occurrence_id": len(proc) + 1,
                    "person_id": pid,
                    "procedure_concept_id": LOCAL_CONCEPT_BASE + 3,
                    "procedure_date": p["rt_start_date"],
                    "procedure_end_date": p["rt_end_date"],
                    "procedure_type_concept_id": TYPE_EHR,
                    "procedure_source_value": _RT["snomed"],
                    "procedure_source_concept_id": 0,
                }
            )
        if p["death_date"]:
            death.append({"person_id": pid, "death_date": p["death_date"], "death_type_concept_id": TYPE_EHR})
    drugs = []
    for i, m in enumerate(_records(export.table("medications")), start=1):
        drugs.append(
            {
                "drug_exposure_id": i,
                "person_id": person_id[m["patient_id"]],
                "drug_concept_id": 0,
                "drug_exposure_start_date": m["order_date"],
                # THEMIS: the CDM end date is required; verbatim_end_date keeps the source's own.
                "drug_exposure_end_date": m["end_date"] or m["order_date"],
                "verbatim_end_date": m["end_date"],
                "drug_type_concept_id": TYPE_EHR,
                "quantity": number_text(m["dose"]),
                "days_supply": "",
                "sig": m["sig"] or m["frequency"],
                "route_concept_id": 0,
                "drug_source_value": m["drug_name"],
                "drug_source_concept_id": 0,
                "route_source_value": m["route"],
                "dose_unit_source_value": m["dose_unit"],
            }
        )
    notes = [
        {
            "note_id": i,
            "person_id": person_id[r["patient_id"]],
            "note_date": r["report_date"],
            "note_type_concept_id": NOTE_TYPE_RADIOLOGY,
            "note_class_concept_id": 0,
            "note_title": r["procedure"],
            "note_text": r["text"],
            "encoding_concept_id": 0,
            "language_concept_id": 0,
        }
        for i, r in enumerate(_records(export.table("reports")), start=1)
    ]
    images = []
    series_obs = []
    for i, im in enumerate(_records(export.table("imaging")), start=1):
        place_file(export.root / im["path"], out / im["path"])
        images.append(
            {
                "image_occurrence_id": i,
                "person_id": person_id[im["patient_id"]],
                "image_occurrence_date": im["study_date"],
                "image_study_uid": im["study_id"],
                "image_series_uid": f"{im['study_id']}.{i}",
                "local_path": im["path"],
                "modality_concept_id": 0,
            }
        )
        # The OHDSI imaging extension keeps DICOM attributes in OBSERVATION, tied to the image occurrence.
        series_obs.append(
            {
                "observation_id": i,
                "person_id": person_id[im["patient_id"]],
                "observation_concept_id": 0,
                "observation_date": im["study_date"],
                "observation_type_concept_id": TYPE_EHR,
                "value_as_string": series_description(im["study_id"], im["sequence"]),
                "observation_source_value": SERIES_DESCRIPTION_SOURCE,
                "observation_event_id": i,
                "obs_event_field_concept_id": 0,
            }
        )
    tables = {
        "person": person,
        "observation_period": obs,
        "condition_occurrence": cond,
        "procedure_occurrence": proc,
        "death": death,
        "drug_exposure": drugs,
        "note": notes,
        "concept": concepts,
    }
    if images:
        tables["image_occurrence"] = images
        tables["observation"] = series_obs
    for name, rows in tables.items():
        write_table(pd.DataFrame(rows), out / f"{name}.csv")
    return out


# ---------------------------------------------------------------------------------------------
# FHIR


def _ref(pid: str) -> dict[str, str]:
    return {"reference": f"Patient/{pid}"}


def native_to_fhir(native_export: Path | str, out: Path | str) -> Path:
    """Write the native export at ``native_export`` as a FHIR R4 bulk export (NDJSON per type) in ``out``."""
    export = load_export(native_export)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res: dict[str, list[dict[str, Any]]] = {
        k: []
        for k in (
            "Patient",
            "Condition",
            "Procedure",
            "Encounter",
            "MedicationRequest",
            "DiagnosticReport",
            "ImagingStudy",
        )
    }
    for p in _records(export.table("patients")):
        pid = p["patient_id"]
        patient: dict[str, Any] = {"resourceType": "Patient", "id": pid}
        if p["death_date"]:
            patient["deceasedDateTime"] = p["death_date"]
        res["Patient"].append(patient)
        res["Condition"].append(
            {
                "resourceType": "Condition",
                "id": f"{pid}-dx",
                "subject": _ref(pid),
                "onsetDateTime": p["diagnosis_date"],
                "verificationStatus": {"coding": [{"code": "confirmed"}]},
                "code": {"coding": [{"system": SNOMED, "code": _GBM["snomed"], "display": _GBM["display"]}]},
            }
        )
        if p["surgery_date"]:
            res["Procedure"].append(
                {
                    "resourceType": "Procedure",
                    "id": f"{pid}-surgery",
                    "status": "completed",
                    "subject": _ref(pid),
                    "code": {
                        "coding": [
                            {"system": CPT, "code": _RESECTION["cpt"], "display": _RESECTION["display"]}
                        ]
                    },
                    "performedDateTime": p["surgery_date"],
                }
            )
        if p["rt_start_date"]:
            period = {"start": p["rt_start_date"]} | ({"end": p["rt_end_date"]} if p["rt_end_date"] else {})
            res["Procedure"].append(
                {
                    "resourceType": "Procedure",
                    "id": f"{pid}-rt",
                    "status": "completed",
                    "subject": _ref(pid),
                    "code": {
                        "coding": [{"system": SNOMED, "code": _RT["snomed"], "display": _RT["display"]}]
                    },
                    "performedPeriod": period,
                }
            )
        if p["last_followup_date"]:
            res["Encounter"].append(
                {
                    "resourceType": "Encounter",
                    "id": f"{pid}-last-contact",
                    "status": "finished",
                    "class": {"code": "AMB"},
                    "subject": _ref(pid),
                    "period": {"start": p["last_followup_date"], "end": p["last_followup_date"]},
                }
            )
    for m in _records(export.table("medications")):
        dosage: dict[str, Any] = {}
        if m["sig"]:
            dosage["text"] = m["sig"]
        timing: dict[str, Any] = {}
        if m["frequency"]:
            timing["code"] = {"text": m["frequency"]}
        timing["repeat"] = {
            "boundsPeriod": {"start": m["order_date"]} | ({"end": m["end_date"]} if m["end_date"] else {})
        }
        dosage["timing"] = timing
        if m["route"]:
            dosage["route"] = {"text": m["route"]}
        quantity = ({"value": float(m["dose"])} if m["dose"] else {}) | (
            {"unit": m["dose_unit"]} if m["dose_unit"] else {}
        )
        if quantity:
            dosage["doseAndRate"] = [{"doseQuantity": quantity}]
        res["MedicationRequest"].append(
            {
                "resourceType": "MedicationRequest",
                "id": m["medication_id"],
                "status": "active",
                "intent": "order",
                "medicationCodeableConcept": {"text": m["drug_name"]},
                "subject": _ref(m["patient_id"]),
                "authoredOn": m["order_date"],
                "dosageInstruction": [dosage],
            }
        )
    for r in _records(export.table("reports")):
        code = (
            {"text": r["procedure"]} if r["procedure"] else {"coding": [{"system": LOINC, "code": "18748-4"}]}
        )
        res["DiagnosticReport"].append(
            {
                "resourceType": "DiagnosticReport",
                "id": r["report_id"],
                "status": "final",
                "subject": _ref(r["patient_id"]),
                "category": [{"coding": [{"system": V2_0074, "code": "RAD"}]}],
                "code": code,
                "effectiveDateTime": r["report_date"],
                "presentedForm": [
                    {
                        "contentType": "text/plain; charset=utf-8",
                        "data": base64.b64encode(r["text"].encode("utf-8")).decode("ascii"),
                    }
                ],
            }
        )
    image_map = []
    studies: dict[str, dict[str, Any]] = {}
    for i, im in enumerate(_records(export.table("imaging")), start=1):
        place_file(export.root / im["path"], out / im["path"])
        study = studies.setdefault(
            im["study_id"],
            {
                "resourceType": "ImagingStudy",
                "id": im["study_id"],
                "status": "available",
                "subject": _ref(im["patient_id"]),
                "started": im["study_date"],
                "series": [],
            },
        )
        uid = f"{im['study_id']}.{i}"
        study["series"].append(
            {
                "uid": uid,
                "modality": {"system": DICOM_MODALITY, "code": "MR"},
                "description": series_description(im["study_id"], im["sequence"]),
                "started": im["study_date"],
            }
        )
        image_map.append({"series_uid": uid, "path": im["path"]})
    res["ImagingStudy"] = list(studies.values())
    for rtype, items in res.items():
        if items:
            data = "".join(json.dumps(x, ensure_ascii=False, sort_keys=True) + "\n" for x in items)
            write_bytes(data.encode("utf-8"), out / f"{rtype}.ndjson")
    if image_map:
        write_table(pd.DataFrame(image_map), out / "imaging_map.csv")
    return out
