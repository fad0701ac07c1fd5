"""One GBM patient's procedures as an OMOP and a FHIR export: first-line surgery and RT, a venipuncture,
a re-resection (CPT 61510) and radiosurgery after first line, and the rows a converter must set aside.

Diagnosis 2021-01-10, craniotomy 2021-01-20, RT 2021-03-01 .. 2021-04-12 (first line ends there),
re-resection 2021-09-15, radiosurgery 2021-11-02.
"""

from __future__ import annotations

import json
from pathlib import Path

CPT = "http://www.ama-assn.org/go/cpt"
SNOMED = "http://snomed.info/sct"


def _csv(path: Path, text: str) -> None:
    path.write_text("\n".join(line.strip() for line in text.strip().splitlines()) + "\n", encoding="utf-8")


def omop_export(root: Path) -> Path:
    """Person 1 has GBM; person 2 (no GBM) has a craniotomy that must not reach procedures.csv."""
    root.mkdir(parents=True)
    _csv(root / "person.csv", """
        person_id,gender_concept_id,year_of_birth,person_source_value
        1,8507,1960,MRN-A
        2,8532,1955,MRN-B""")
    _csv(root / "concept.csv", """
        concept_id,concept_name,domain_id,vocabulary_id,concept_class_id,standard_concept,concept_code
        900,Glioblastoma multiforme,Condition,SNOMED,Clinical Finding,S,393563007
        910,Craniectomy or craniotomy for excision of brain tumor,Procedure,CPT4,CPT4,S,61510
        911,Radiation treatment delivery,Procedure,CPT4,CPT4,S,77412
        912,Collection of venous blood by venipuncture,Procedure,CPT4,CPT4,S,36415""")
    _csv(root / "condition_occurrence.csv", """
        condition_occurrence_id,person_id,condition_concept_id,condition_start_date
        1,1,900,2021-01-10""")
    _csv(root / "procedure_occurrence.csv", """
        procedure_occurrence_id,person_id,procedure_concept_id,procedure_date,procedure_datetime,procedure_end_date,procedure_source_value,procedure_source_concept_id
        101,1,910,2021-01-20,,,61510,0
        102,1,911,2021-03-01,,2021-04-12,77412,0
        103,1,912,2021-02-01,,,36415,0
        104,1,910,2021-09-15,,,61510,0
        105,1,0,,2021-11-02 08:30:00,,Gamma knife radiosurgery,0
        106,1,912,,,,36415,0
        107,2,910,2021-05-05,,,61510,0""")
    _csv(root / "observation_period.csv", """
        observation_period_id,person_id,observation_period_start_date,observation_period_end_date
        1,1,2020-01-01,2022-06-30
        2,2,2021-01-01,2021-12-31""")
    return root


def fhir_resources() -> list[dict]:
    """Patient 'a' with GBM; procedures including an entered-in-error, a not-done and an undated one."""
    subject = {"reference": "Patient/a"}

    def proc(pid: str, code: dict, **fields: object) -> dict:
        return {"resourceType": "Procedure", "id": pid, "subject": subject, "code": code,
                "status": "completed", **fields}

    craniotomy = {"coding": [{"system": CPT, "code": "61510", "display": "Craniotomy for excision of brain tumor"}]}
    return [
        {"resourceType": "Patient", "id": "a"},
        {"resourceType": "Condition", "id": "c1", "subject": subject, "onsetDateTime": "2021-01-10",
         "code": {"coding": [{"system": SNOMED, "code": "393563007"}]}},
        proc("p1", craniotomy, performedDateTime="2021-01-20"),
        proc("p2", {"coding": [{"system": CPT, "code": "77412", "display": "Radiation treatment delivery"}]},
             performedPeriod={"start": "2021-03-01", "end": "2021-04-12"}),
        proc("p3", {**craniotomy, "text": "Re-resection of recurrent glioblastoma"},
             performedPeriod={"start": "2021-09-15T08:00:00Z", "end": "2021-09-15T12:30:00Z"}),
        proc("p4", craniotomy, performedDateTime="2021-06-01") | {"status": "entered-in-error"},
        proc("p5", {"text": "Gamma Knife radiosurgery"}, performedDateTime="2021-07-01") | {"status": "not-done"},
        # FHIR R5 renames performed[x] to occurrence[x].
        proc("p6", {"coding": [{"system": CPT, "code": "61796", "display": "Stereotactic radiosurgery, 1 simple "
                                "cranial lesion"}], "text": "Gamma Knife radiosurgery"},
             occurrenceDateTime="2021-11-02T09:00:00Z"),
        proc("p7", {"coding": [{"system": CPT, "code": "36415", "display": "Venipuncture"}]}),
    ]


def fhir_export(root: Path, *, bundle: bool = False) -> Path:
    """The resources as bulk-export NDJSON (one file per type) or as one transaction Bundle."""
    root.mkdir(parents=True)
    resources = fhir_resources()
    if bundle:
        entries = [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources]
        (root / "bundle.json").write_text(json.dumps({"resourceType": "Bundle", "type": "transaction",
                                                      "entry": entries}), encoding="utf-8")
        return root
    by_type: dict[str, list[dict]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(r)
    for rtype, rows in by_type.items():
        (root / f"{rtype}.ndjson").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return root
