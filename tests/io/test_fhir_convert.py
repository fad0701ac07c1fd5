"""FHIR R4 -> native layout: bundles, NDJSON (gzipped too), dosage mapping, bad resources, images."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from pfs.io.export import load_export
from pfs.io.formats.fhir import convert_fhir, ref_id
from pfs.io.series import classify

DATA = Path(__file__).resolve().parents[1] / "data" / "fhir"
SYNTHEA_BUNDLES = Path("/work/shared/data/fhir-r4-synthea-bundles")
SNOMED = "http://snomed.info/sct"


def _read(result, name: str) -> pd.DataFrame:
    return pd.read_csv(result.out / f"{name}.csv", dtype=str, keep_default_na=False)


def _b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def _ndjson(path: Path, lines: list[object], gz: bool = False) -> None:
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)


@pytest.fixture
def bulk(tmp_path) -> Path:
    """A bulk export: two GBM patients (SNOMED, ICD-10) and one without GBM, with one of each bad input."""
    src = tmp_path / "bulk"
    src.mkdir()
    _ndjson(
        src / "Patient.ndjson",
        [
            {"resourceType": "Patient", "id": "a", "deceasedDateTime": "2022-03-01T10:00:00Z"},
            {"resourceType": "Patient", "id": "b"},
            {"resourceType": "Patient", "id": "c"},
        ],
    )
    _ndjson(
        src / "Condition.ndjson.gz",
        [
            {
                "resourceType": "Condition",
                "id": "c1",
                "subject": {"reference": "Patient/a"},
                "code": {"coding": [{"system": SNOMED, "code": "393563007"}]},
                "onsetDateTime": "2021-01-05",
            },
            {
                "resourceType": "Condition",
                "id": "c2",
                "subject": {"reference": "Patient/b"},
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C71.9"}]},
                "onsetPeriod": {"start": "2020-11-02"},
            },
            {
                "resourceType": "Condition",
                "id": "c3",
                "subject": {"reference": "Patient/c"},
                "code": {"text": "Hypertension"},
                "onsetDateTime": "2019-01-01",
            },
            '{"resourceType": "Condition", "id": "broken", ',
        ],
        gz=True,
    )
    _ndjson(
        src / "Procedure.ndjson",
        [
            {
                "resourceType": "Procedure",
                "id": "p1",
                "subject": {"reference": "Patient/a"},
                "code": {"text": "Craniotomy for resection of brain tumour"},
                "performedDateTime": "2021-01-12",
            },
            {
                "resourceType": "Procedure",
                "id": "p2",
                "subject": {"reference": "Patient/a"},
                "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "77412"}]},
                "performedPeriod": {"start": "2021-02-15", "end": "2021-03-29"},
            },
        ],
    )
    _ndjson(
        src / "Encounter.ndjson",
        [
            {
                "resourceType": "Encounter",
                "id": "e1",
                "subject": {"reference": "Patient/a"},
                "period": {"start": "2022-02-20", "end": "2022-02-21"},
            },
        ],
    )
    _ndjson(
        src / "Medication.ndjson",
        [
            {"resourceType": "Medication", "id": "med-dex", "code": {"text": "dexamethasone 4 mg tablet"}},
        ],
    )
    _ndjson(
        src / "MedicationRequest.ndjson",
        [
            {
                "resourceType": "MedicationRequest",
                "id": "m1",
                "subject": {"reference": "Patient/a"},
                "medicationReference": {"reference": "Medication/med-dex"},
                "authoredOn": "2021-01-05T08:00:00Z",
                "dosageInstruction": [
                    {
                        "text": "Take 1 tablet by mouth twice daily",
                        "timing": {
                            "repeat": {
                                "frequency": 2,
                                "period": 1,
                                "periodUnit": "d",
                                "boundsPeriod": {"end": "2021-01-19"},
                            }
                        },
                        "route": {"text": "Oral"},
                        "doseAndRate": [{"doseQuantity": {"value": 4, "unit": "mg"}}],
                    }
                ],
            },
            {
                "resourceType": "MedicationRequest",
                "id": "m2",
                "subject": {"reference": "Patient/zzz"},
                "medicationCodeableConcept": {"text": "prednisone 20 mg tablet"},
                "authoredOn": "2021-01-05",
            },
            {
                "resourceType": "MedicationRequest",
                "id": "m3",
                "subject": {"reference": "Patient/a"},
                "medicationCodeableConcept": {"text": "dexamethasone 2 mg tablet"},
                "authoredOn": "2021-06-01",
                "dosageInstruction": [
                    {
                        "timing": {"code": {"coding": [{"code": "Q12H"}]}},
                        "doseAndRate": [{"doseQuantity": {"value": 1}}],
                    }
                ],
            },
            {
                "resourceType": "MedicationRequest",
                "id": "m4",
                "subject": {"reference": "Patient/c"},
                "medicationCodeableConcept": {"text": "lisinopril 10 mg tablet"},
                "authoredOn": "2019-02-01",
            },
        ],
    )
    _ndjson(
        src / "MedicationAdministration.ndjson",
        [
            {
                "resourceType": "MedicationAdministration",
                "id": "ma1",
                "subject": {"reference": "Patient/b"},
                "medicationCodeableConcept": {"text": "dexamethasone sodium phosphate 10 mg/mL injection"},
                "effectiveDateTime": "2020-11-10T09:00:00Z",
                "dosage": {"dose": {"value": 10, "unit": "mg"}, "route": {"text": "IV"}},
            },
        ],
    )
    _ndjson(
        src / "DiagnosticReport.ndjson",
        [
            {
                "resourceType": "DiagnosticReport",
                "id": "r1",
                "subject": {"reference": "Patient/a"},
                "category": [
                    {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD"}]}
                ],
                "code": {"text": "MRI BRAIN W/WO CONTRAST"},
                "effectiveDateTime": "2021-01-13",
                "presentedForm": [
                    {"contentType": "text/plain; charset=utf-8", "data": _b64("Résection: no residual.")}
                ],
            },
            {
                "resourceType": "DiagnosticReport",
                "id": "r2",
                "subject": {"reference": "Patient/a"},
                "category": [{"coding": [{"code": "LAB"}]}],
                "code": {"text": "CBC panel"},
                "effectiveDateTime": "2021-01-13",
                "conclusion": "normal",
            },
            {
                "resourceType": "DiagnosticReport",
                "id": "r3",
                "subject": {"reference": "Patient/a"},
                "code": {"text": "MR brain"},
                "effectiveDateTime": "2021-04-30",
                "presentedForm": [{"contentType": "text/plain", "data": _b64(b"\xff\xfe\x00\x00binary")}],
                "conclusion": "Stable enhancement.",
            },
            {
                "resourceType": "DiagnosticReport",
                "id": "r4",
                "subject": {"reference": "Patient/a"},
                "code": {"text": "CT head"},
                "effectiveDateTime": "2021-05-30",
                "presentedForm": [{"contentType": "application/pdf", "data": _b64(b"%PDF-1.4")}],
            },
        ],
    )
    _ndjson(
        src / "DocumentReference.ndjson",
        [
            {
                "resourceType": "DocumentReference",
                "id": "d1",
                "subject": {"reference": "Patient/b"},
                "type": {"coding": [{"system": "http://loinc.org", "code": "18748-4"}], "text": "MRI head"},
                "date": "2020-12-01T12:00:00Z",
                "content": [
                    {"attachment": {"contentType": "text/plain", "data": _b64("New enhancing nodule.")}}
                ],
            },
        ],
    )
    (src / "images").mkdir()
    (src / "images" / "a_t1c.nii.gz").write_bytes(b"not really nifti")
    _ndjson(
        src / "ImagingStudy.ndjson",
        [
            {
                "resourceType": "ImagingStudy",
                "id": "s1",
                "subject": {"reference": "Patient/a"},
                "started": "2021-01-13",
                "series": [
                    {"uid": "1.2.3.1", "description": "T1 post contrast"},
                    {"uid": "1.2.3.2", "description": "FLAIR"},
                ],
            },
        ],
    )
    (src / "imaging_map.csv").write_text("series_uid,path\n1.2.3.1,images/a_t1c.nii.gz\n")
    return src


@pytest.fixture
def converted(bulk, tmp_path):
    return convert_fhir(bulk, tmp_path / "native")


def test_reference_forms():
    assert ref_id({"reference": "Patient/123"}) == "123"
    assert ref_id({"reference": "urn:uuid:9ceb9c47"}) == "9ceb9c47"
    assert ref_id({"reference": "https://x.org/fhir/Patient/123/_history/2"}) == "123"


def test_gbm_patients_by_snomed_or_icd10(converted):
    p = _read(converted, "patients").set_index("patient_id")
    assert list(p.index) == ["a", "b"]
    assert converted.counts["skipped_no_gbm"] == 1
    assert p.loc["a"].to_dict() == {
        "diagnosis_date": "2021-01-05",
        "surgery_date": "2021-01-12",
        "rt_start_date": "2021-02-15",
        "rt_end_date": "2021-03-29",
        "last_followup_date": "2022-02-21",
        "death_date": "2022-03-01",
    }
    assert p.loc["b", "diagnosis_date"] == "2020-11-02"


def test_dosage_instruction_maps_to_dose_frequency_and_sig(converted):
    m = _read(converted, "medications").set_index("medication_id")
    assert m.loc["m1"].to_dict() == {
        "patient_id": "a",
        "order_date": "2021-01-05",
        "end_date": "2021-01-19",
        "drug_name": "dexamethasone 4 mg tablet",  # from the referenced Medication
        "dose": "4",
        "dose_unit": "mg",
        "frequency": "BID",
        "route": "Oral",
        "sig": "Take 1 tablet by mouth twice daily",
    }
    assert m.loc["m3", ["dose", "dose_unit", "frequency"]].tolist() == ["1", "tablet", "q12h"]
    assert m.loc["ma1", ["dose", "dose_unit", "frequency", "route"]].tolist() == ["10", "mg", "once", "IV"]
    assert "m4" not in m.index  # patient c has no GBM


def test_radiology_reports_from_base64_text_conclusion_and_documents(converted):
    r = _read(converted, "reports").set_index("report_id")
    assert sorted(r.index) == ["d1", "r1", "r3"]
    assert r.loc["r1", "text"] == "Résection: no residual."
    assert r.loc["r3", "text"] == "Stable enhancement."  # binary attachment set aside, conclusion kept
    assert r.loc["d1", ["procedure", "report_date"]].tolist() == ["MRI head", "2020-12-01"]


def test_bad_resources_are_quarantined_with_file_line_and_id(converted):
    q = converted.quarantine
    got = {
        (t, r, v): reason
        for t, r, v, reason in zip(q["table"], q["row"], q["value"], q["reason"], strict=True)
    }
    assert got[("Condition.ndjson.gz", 4, "")].startswith("malformed NDJSON line")
    assert (
        got[("MedicationRequest.ndjson", 2, "m2")]
        == "MedicationRequest refers to Patient 'zzz', which is not in the export"
    )
    assert got[("DiagnosticReport.ndjson", 3, "r3")] == "base64 attachment does not decode to text"
    assert got[("DiagnosticReport.ndjson", 4, "r4")] == "attachment is application/pdf, not text"
    assert got[("ImagingStudy.ndjson", 1, "s1/1.2.3.2")] == "series has no local file in the image map"


def test_imaging_series_become_files_inside_the_native_export(converted):
    im = _read(converted, "imaging")
    assert im[["patient_id", "study_id", "study_date", "sequence", "path"]].values.tolist() == [
        ["a", "s1", "2021-01-13", "T1 post contrast", "images/a_t1c.nii.gz"]
    ]
    assert (converted.out / "images" / "a_t1c.nii.gz").read_bytes() == b"not really nifti"


def test_output_loads_as_a_native_export(converted):
    export = load_export(converted.out)
    # The description is kept as written; the imaging source classifies it (pfs.io.series).
    assert export.table("imaging")["sequence"].tolist() == ["T1 post contrast"]
    assert classify("T1 post contrast").role == "T1C"
    assert len(export.table("medications")) == 3


def test_synthea_fixture_bundle_prednisone_is_systemic_hydrocortisone_cream_is_not(tmp_path):
    result = convert_fhir(DATA / "synthea_steroids_bundle.json", tmp_path / "native", require_gbm=False)
    m = _read(result, "medications")
    assert result.counts["persons_seen"] == 2 and len(m) == 2
    pred = m.loc[m["drug_name"] == "predniSONE 5 MG Oral Tablet"].iloc[0]
    assert pred[["dose", "dose_unit", "frequency", "order_date"]].tolist() == [
        "1",
        "tablet",
        "daily",
        "2020-07-15",
    ]
    drugs = pytest.importorskip("pfs.extractors.steroid.drugs")
    rules = drugs.load_rules()
    assert drugs.identify_drug(m["drug_name"], rules).tolist() == ["prednisone", "hydrocortisone"]
    assert drugs.non_systemic_kind(m["drug_name"], m["route"], m["sig"], rules).tolist() == [None, "topical"]


@pytest.mark.skipif(not SYNTHEA_BUNDLES.exists(), reason="shared FHIR sample not present")
def test_real_synthea_bundles(tmp_path):
    gbm_only = convert_fhir(SYNTHEA_BUNDLES, tmp_path / "gbm")
    assert (gbm_only.counts["persons_seen"], gbm_only.counts["gbm_patients"]) == (4, 0)
    everyone = convert_fhir(SYNTHEA_BUNDLES, tmp_path / "all", require_gbm=False)
    assert everyone.counts["medications_rows"] == 14 and everyone.counts["quarantined"] == 0
    p = _read(everyone, "patients")
    assert len(p) == 4 and (p["death_date"] != "").sum() == 2
    assert len(load_export(everyone.out).quarantine) == 0
