"""OMOP CDM -> native layout: cohort selection, dates, drugs, notes, bad rows, zips, the real sample."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from pfs.exceptions import ExportError
from pfs.io.export import load_export
from pfs.io.formats.omop import convert_omop

DATA = Path(__file__).resolve().parents[1] / "data" / "omop"
SYNTHEA_ZIP = Path("/work/shared/data/omop-synthea27nj-5.4/Synthea27Nj_5.4.zip")


def _csv(path: Path, text: str) -> None:
    path.write_text("\n".join(line.strip() for line in text.strip().splitlines()) + "\n")


def _omop(root: Path) -> Path:
    """Three persons: 1 GBM by concept (SNOMED via CONCEPT), 2 GBM by ICD-10 source value, 3 no GBM."""
    root.mkdir()
    _csv(
        root / "PERSON.csv",
        """
        PERSON_ID,GENDER_CONCEPT_ID,YEAR_OF_BIRTH,PERSON_SOURCE_VALUE
        1,8507,1960,MRN-A
        2,8532,1955,MRN-B
        3,8532,1970,MRN-C""",
    )
    _csv(
        root / "concept.csv",
        """
        concept_id,concept_name,domain_id,vocabulary_id,concept_class_id,standard_concept,concept_code
        900,Glioblastoma multiforme,Condition,SNOMED,Clinical Finding,S,393563007
        901,Essential hypertension,Condition,SNOMED,Clinical Finding,S,59621000
        910,Craniotomy,Procedure,SNOMED,Procedure,S,25353009
        920,dexamethasone 4 MG Oral Tablet,Drug,RxNorm,Clinical Drug,S,197579
        4132161,Oral,Route,SNOMED,Qualifier Value,S,26643006""",
    )
    _csv(
        root / "condition_occurrence.csv",
        """
        condition_occurrence_id,person_id,condition_concept_id,condition_start_date,condition_source_value,condition_source_concept_id
        1,1,900,2021-02-03,,0
        2,1,900,2021-01-10,,0
        3,2,0,2020-06-01,C71.1,0
        4,3,901,2019-01-01,I10,0
        5,99,900,2021-01-01,,0""",
    )
    _csv(
        root / "procedure_occurrence.csv",
        """
        procedure_occurrence_id,person_id,procedure_concept_id,procedure_date,procedure_end_date,procedure_source_value
        1,1,910,2021-01-20,,
        2,1,0,2021-03-01,2021-04-12,77412
        3,2,0,2020-06-05,,61510
        4,2,0,not-a-date,,77412""",
    )
    _csv(
        root / "drug_exposure.csv",
        """
        drug_exposure_id,person_id,drug_concept_id,drug_exposure_start_date,drug_exposure_end_date,verbatim_end_date,quantity,days_supply,sig,route_concept_id,route_source_value,drug_source_value,dose_unit_source_value
        11,1,920,2021-01-10,2021-01-24,2021-01-24,4,,4 mg PO BID,4132161,,,mg
        12,1,0,2021-05-01,2021-05-01,,,,Take 1 tablet by mouth daily,0,PO,prednisone 20 mg tablet,
        13,1,777,2021-06-01,2021-06-01,,,,,0,,,
        14,2,0,2020-06-01,2020-06-30,2020-06-30,30,30,,0,,DECADRON 2 MG TAB,
        15,3,920,2019-01-01,2019-01-10,,,,,0,,,
        16,42,920,2021-01-01,2021-01-02,,,,,0,,,""",
    )
    _csv(
        root / "note.csv",
        """
        note_id,person_id,note_date,note_type_concept_id,note_class_concept_id,note_title,note_text
        21,1,2021-01-11,44814641,0,,Enhancing mass in the right temporal lobe.
        22,1,2021-01-12,44814639,0,Progress note,Patient seen.
        23,1,2021-04-20,0,0,MRI BRAIN W/WO CONTRAST,Stable post-operative changes.
        24,2,2020-07-01,44814641,0,CT HEAD,""",
    )
    _csv(
        root / "death.csv",
        """
        person_id,death_date
        2,2021-02-01""",
    )
    _csv(
        root / "observation_period.csv",
        """
        observation_period_id,person_id,observation_period_start_date,observation_period_end_date
        1,1,2020-01-01,2021-09-30
        2,2,2019-01-01,2021-02-01
        3,3,2018-05-01,2021-01-01""",
    )
    _csv(
        root / "visit_occurrence.csv",
        """
        visit_occurrence_id,person_id,visit_start_date,visit_end_date
        1,1,2021-10-05,2021-10-06""",
    )
    return root


@pytest.fixture
def converted(tmp_path):
    src = _omop(tmp_path / "omop")
    return convert_omop(src, tmp_path / "native")


def _read(result, name: str) -> pd.DataFrame:
    return pd.read_csv(result.out / f"{name}.csv", dtype=str, keep_default_na=False)


def test_only_gbm_patients_are_kept_and_the_others_counted(converted):
    assert converted.counts["persons_seen"] == 3
    assert converted.counts["gbm_patients"] == 2
    assert converted.counts["skipped_no_gbm"] == 1
    assert _read(converted, "patients")["patient_id"].tolist() == ["1", "2"]


def test_patient_dates(converted):
    p = _read(converted, "patients").set_index("patient_id")
    assert p.loc["1"].to_dict() == {
        "diagnosis_date": "2021-01-10",  # the earliest GBM condition
        "surgery_date": "2021-01-20",
        "rt_start_date": "2021-03-01",
        "rt_end_date": "2021-04-12",
        "last_followup_date": "2021-10-06",  # a visit after the observation period's end
        "death_date": "",
    }
    assert p.loc["2", "surgery_date"] == "2020-06-05"
    assert p.loc["2", "death_date"] == "2021-02-01"


def test_medications_keep_names_doses_and_sigs(converted):
    m = _read(converted, "medications").set_index("medication_id")
    assert m.loc["11", ["drug_name", "dose", "dose_unit", "route", "sig", "end_date"]].tolist() == [
        "dexamethasone 4 MG Oral Tablet",
        "4",
        "mg",
        "Oral",
        "4 mg PO BID",
        "2021-01-24",
    ]
    # no concept: the source value names the drug; a blank verbatim end date stays blank
    assert m.loc["12", ["drug_name", "route", "end_date"]].tolist() == ["prednisone 20 mg tablet", "PO", ""]
    # quantity with a days' supply is a dispensed count, not a dose
    assert m.loc["14", "dose"] == ""
    assert "15" not in m.index  # person 3 has no GBM


def test_radiology_notes_by_type_or_title(converted):
    r = _read(converted, "reports")
    assert r["report_id"].tolist() == ["21", "23"]
    assert r["procedure"].tolist() == ["", "MRI BRAIN W/WO CONTRAST"]


def test_bad_rows_are_quarantined_with_reasons(converted):
    q = converted.quarantine
    reasons = dict(zip(q["table"] + ":" + q["row"].astype(str), q["reason"], strict=True))
    assert reasons["condition_occurrence.csv:5"] == "person_id not in the person table"
    assert reasons["drug_exposure.csv:6"] == "person_id not in the person table"
    assert reasons["drug_exposure.csv:3"] == "unknown drug_concept_id 777 and no drug_source_value"
    assert reasons["procedure_occurrence.csv:4"].startswith("unparseable or missing date")
    assert reasons["note.csv:4"] == "radiology note with empty note_text"
    assert set(q["stage"]) == {"convert"}
    on_disk = pd.read_csv(converted.out / "conversion_quarantine.csv")
    assert len(on_disk) == len(q)


def test_output_loads_as_a_native_export(converted):
    export = load_export(converted.out)
    assert len(export.quarantine) == 0
    assert len(export.table("medications")) == 3
    assert converted.counts["tables_missing"] == [
        "concept_ancestor",
        "concept_relationship",
        "drug_strength",
        "image_occurrence",
    ]


def test_require_gbm_false_keeps_everyone_with_a_stand_in_diagnosis_date(tmp_path):
    result = convert_omop(
        _omop(tmp_path / "omop"), tmp_path / "native", require_gbm=False, patient_id="person_source_value"
    )
    p = _read(result, "patients").set_index("patient_id")
    assert list(p.index) == ["MRN-A", "MRN-B", "MRN-C"]
    assert p.loc["MRN-C", "diagnosis_date"] == "2018-05-01"  # observation start
    assert result.counts["diagnosis_date_fallback"] == 1


def test_ingredient_through_concept_ancestor_prefixes_a_brand_name(tmp_path):
    src = _omop(tmp_path / "omop")
    with open(src / "concept.csv", "a") as fh:
        fh.write(
            "930,Hemady 20 MG Oral Tablet,Drug,RxNorm,Branded Drug,S,2180300\n"
            "1518254,dexamethasone,Drug,RxNorm,Ingredient,S,3264\n"
        )
    _csv(
        src / "concept_ancestor.csv",
        """
        ancestor_concept_id,descendant_concept_id,min_levels_of_separation,max_levels_of_separation
        1518254,930,1,1
        1518254,920,1,1""",
    )
    text = (src / "drug_exposure.csv").read_text(encoding="utf-8").replace("11,1,920,", "11,1,930,")
    (src / "drug_exposure.csv").write_text(text)
    m = _read(convert_omop(src, tmp_path / "native"), "medications").set_index("medication_id")
    assert m.loc["11", "drug_name"] == "dexamethasone (Hemady 20 MG Oral Tablet)"


def test_zip_with_macosx_entries_and_parquet_tables(tmp_path):
    src = _omop(tmp_path / "omop")
    buf = tmp_path / "export.zip"
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(src.iterdir()):
            if f.name == "drug_exposure.csv":
                data = io.BytesIO()
                pd.read_csv(f, dtype=str, keep_default_na=False).to_parquet(data)
                z.writestr("cdm/DRUG_EXPOSURE.parquet", data.getvalue())
            else:
                z.write(f, f"cdm/{f.name}")
                z.writestr(f"__MACOSX/cdm/._{f.name}", b"\x00\x05\x16\x07 resource fork")
    result = convert_omop(buf, tmp_path / "native")
    direct = convert_omop(src, tmp_path / "native2")
    for table in ("patients", "medications", "reports"):
        pd.testing.assert_frame_equal(_read(result, table), _read(direct, table))


def test_zip_over_the_size_limit_is_refused(tmp_path):
    buf = tmp_path / "bomb.zip"
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("person.csv", "person_id\n" + "1\n" * 500_000)
    with pytest.raises(ExportError, match="limit"):
        convert_omop(buf, tmp_path / "native", max_unzipped_bytes=100_000)


def test_synthea_fixture_keeps_local_corticosteroids_as_medications(tmp_path):
    result = convert_omop(DATA / "synthea27nj_steroids", tmp_path / "native", require_gbm=False)
    m = _read(result, "medications")
    assert result.counts["persons_seen"] == 2 and result.counts["medications_rows"] == 9
    names = set(m["drug_name"])
    assert "hydrocortisone 10 MG/ML Topical Cream" in names
    assert "120 ACTUAT fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler" in names
    drugs = pytest.importorskip("pfs.extractors.steroid.drugs")
    rules = drugs.load_rules()
    drug = drugs.identify_drug(m["drug_name"], rules)
    kind = drugs.non_systemic_kind(m["drug_name"], m["route"], m["sig"], rules)
    hydrocortisone = m["drug_name"].str.startswith("hydrocortisone")
    assert drug[hydrocortisone].tolist() == ["hydrocortisone"] and kind[hydrocortisone].tolist() == [
        "topical"
    ]
    systemic = drug.notna() & kind.isna()
    assert not systemic.any(), "no systemic corticosteroid in these two Synthea persons"


@pytest.mark.skipif(not SYNTHEA_ZIP.exists(), reason="shared OMOP sample not present")
def test_real_synthea27nj_zip(tmp_path):
    gbm_only = convert_omop(SYNTHEA_ZIP, tmp_path / "gbm")
    assert (
        gbm_only.counts["persons_seen"],
        gbm_only.counts["gbm_patients"],
        gbm_only.counts["skipped_no_gbm"],
    ) == (28, 0, 28)
    everyone = convert_omop(SYNTHEA_ZIP, tmp_path / "all", require_gbm=False)
    assert everyone.counts["patients_rows"] == 28
    assert everyone.counts["medications_rows"] == 883
    assert everyone.counts["quarantined"] == 0
    p = _read(everyone, "patients")
    assert (p["death_date"] != "").sum() == 3
    export = load_export(everyone.out)
    assert len(export.quarantine) == 0
