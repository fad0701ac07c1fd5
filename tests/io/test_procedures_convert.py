"""OMOP procedure_occurrence and FHIR Procedure -> the optional native procedures table."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from procedures_testdata import CPT, fhir_export, omop_export

from pfs.io.export import load_export
from pfs.io.formats import convert

COLUMNS = ["patient_id", "procedure_id", "procedure_date", "name", "code"]
OMOP_SAMPLE = Path("/work/shared/data/omop-synthea27nj-5.4/Synthea27Nj_5.4.zip")
FHIR_SAMPLE = Path("/work/shared/data/fhir-r4-synthea-bundles")


def _procedures(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "procedures.csv", dtype=str, keep_default_na=False)


def test_omop_procedures_are_named_and_coded_through_the_concept_table(tmp_path):
    result = convert(omop_export(tmp_path / "omop"), tmp_path / "native", "omop")
    p = _procedures(result.out)
    assert list(p.columns) == COLUMNS
    assert p.values.tolist() == [
        ["1", "101", "2021-01-20", "Craniectomy or craniotomy for excision of brain tumor", "CPT4:61510"],
        ["1", "102", "2021-03-01", "Radiation treatment delivery", "CPT4:77412"],
        ["1", "103", "2021-02-01", "Collection of venous blood by venipuncture", "CPT4:36415"],
        ["1", "104", "2021-09-15", "Craniectomy or craniotomy for excision of brain tumor", "CPT4:61510"],
        # no concept: the source value as written; the date of procedure_datetime
        ["1", "105", "2021-11-02", "Gamma knife radiosurgery", "Gamma knife radiosurgery"],
    ]  # person 2 has no GBM: their craniotomy (107) is not read
    assert result.counts["procedures_rows"] == 5


def test_omop_undated_procedure_is_quarantined_with_its_reason(tmp_path):
    result = convert(omop_export(tmp_path / "omop"), tmp_path / "native", "omop")
    q = result.quarantine
    assert q[["table", "row", "reason"]].values.tolist() == [
        ["procedure_occurrence.csv", 6, "unparseable or missing date in procedure_date"]
    ]
    assert q["patient_id"].tolist() == ["1"]


def test_omop_first_line_dates_still_come_from_the_same_rows(tmp_path):
    result = convert(omop_export(tmp_path / "omop"), tmp_path / "native", "omop")
    p = pd.read_csv(result.out / "patients.csv", dtype=str, keep_default_na=False).iloc[0]
    assert p[["surgery_date", "rt_start_date", "rt_end_date"]].tolist() == ["2021-01-20", "2021-03-01", "2021-04-12"]


def test_omop_patient_id_option_and_all_persons_apply_to_procedures(tmp_path):
    result = convert(omop_export(tmp_path / "omop"), tmp_path / "native", "omop",
                     patient_id="person_source_value", require_gbm=False)
    p = _procedures(result.out)
    assert sorted(set(p["patient_id"])) == ["MRN-A", "MRN-B"]
    assert p.loc[p["procedure_id"] == "107", "patient_id"].tolist() == ["MRN-B"]
    assert len(load_export(result.out).table("procedures")) == 6


def test_omop_duplicate_or_missing_procedure_ids_are_set_aside(tmp_path):
    src = omop_export(tmp_path / "omop")
    text = (src / "procedure_occurrence.csv").read_text(encoding="utf-8")
    (src / "procedure_occurrence.csv").write_text(
        text.replace("103,1,912,", "101,1,912,").replace("104,1,910,", ",1,910,"), encoding="utf-8")
    result = convert(src, tmp_path / "native", "omop")
    reasons = dict(zip(result.quarantine["row"], result.quarantine["reason"], strict=True))
    assert reasons[3].startswith("duplicate procedure_occurrence_id")
    assert reasons[4].startswith("missing procedure_occurrence_id")
    assert _procedures(result.out)["procedure_id"].tolist() == ["101", "102", "105"]
    # A re-resection without an id still dates nothing wrong: first line is the earliest resection.
    assert pd.read_csv(result.out / "patients.csv", dtype=str).loc[0, "surgery_date"] == "2021-01-20"


def test_omop_export_without_procedures_writes_no_procedures_table(tmp_path):
    src = omop_export(tmp_path / "omop")
    (tmp_path / "native").mkdir()
    (tmp_path / "native" / "procedures.csv").write_text("stale\n")  # from an earlier conversion
    (src / "procedure_occurrence.csv").unlink()
    result = convert(src, tmp_path / "native", "omop")
    assert not (result.out / "procedures.csv").exists()
    assert "procedures_rows" not in result.counts


@pytest.mark.parametrize("bundle", [False, True], ids=["ndjson", "bundle"])
def test_fhir_procedures_from_performed_or_occurrence_dates(tmp_path, bundle):
    result = convert(fhir_export(tmp_path / "fhir", bundle=bundle), tmp_path / "native", "fhir")
    p = _procedures(result.out)
    assert p.values.tolist() == [
        ["a", "p1", "2021-01-20", "Craniotomy for excision of brain tumor", f"{CPT}|61510"],
        ["a", "p2", "2021-03-01", "Radiation treatment delivery", f"{CPT}|77412"],
        ["a", "p3", "2021-09-15", "Re-resection of recurrent glioblastoma", f"{CPT}|61510"],  # code.text wins
        ["a", "p6", "2021-11-02", "Gamma Knife radiosurgery", f"{CPT}|61796"],  # R5 occurrenceDateTime
    ]
    patients = pd.read_csv(result.out / "patients.csv", dtype=str).iloc[0]
    assert patients[["surgery_date", "rt_start_date", "rt_end_date"]].tolist() == [
        "2021-01-20", "2021-03-01", "2021-04-12"]


def test_fhir_entered_in_error_and_not_done_are_counted_and_undated_quarantined(tmp_path):
    result = convert(fhir_export(tmp_path / "fhir"), tmp_path / "native", "fhir")
    assert result.counts["entered_in_error_skipped"] == 1
    assert result.counts["procedures_not_performed_skipped"] == 1
    q = result.quarantine
    assert q[["table", "row", "reason", "value"]].values.tolist() == [
        ["Procedure.ndjson", 7, "Procedure without a performed (or occurrence) date", "p7"]
    ]
    manifest = json.loads((result.out / "conversion_manifest.json").read_text(encoding="utf-8"))
    assert manifest["procedures_not_performed_skipped"] == 1


def test_fhir_not_done_surgery_does_not_date_first_line(tmp_path):
    src = fhir_export(tmp_path / "fhir")
    lines = (src / "Procedure.ndjson").read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0]) | {"status": "not-done"}
    (src / "Procedure.ndjson").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n", encoding="utf-8")
    result = convert(src, tmp_path / "native", "fhir")
    # The surgery never happened: the next craniotomy (2021-09-15) is taken as the first one.
    assert pd.read_csv(result.out / "patients.csv", dtype=str).loc[0, "surgery_date"] == "2021-09-15"
    assert "p1" not in set(_procedures(result.out)["procedure_id"])


@pytest.mark.skipif(not OMOP_SAMPLE.exists(), reason="shared OMOP sample not present")
def test_real_omop_sample_procedures_convert_without_loss(tmp_path):
    result = convert(OMOP_SAMPLE, tmp_path / "native", "omop", require_gbm=False)
    p = load_export(result.out).table("procedures")
    # Synthea27Nj: 1,649 procedure_occurrence rows of 28 persons, all dated and in the vocabulary.
    assert len(p) == result.counts["procedures_rows"] == 1649
    assert p["patient_id"].nunique() == 28 and result.counts["quarantined"] == 0
    assert p["code"].str.match(r"^SNOMED:\d+$").all()


@pytest.mark.skipif(not FHIR_SAMPLE.exists(), reason="shared FHIR sample not present")
def test_real_fhir_sample_procedures_convert_without_loss(tmp_path):
    result = convert(FHIR_SAMPLE, tmp_path / "native", "fhir", require_gbm=False)
    p = load_export(result.out).table("procedures")
    assert len(p) == result.counts["procedures_rows"] == 21  # every Procedure in the 4 bundles (all completed)
    assert p["code"].str.startswith("http://snomed.info/sct|").all() and (p["name"] != "").all()


def test_fhir_rule_file_statuses_must_be_a_list(monkeypatch):
    from pfs.exceptions import RuleFileError
    from pfs.io.formats.fhir import rules

    real = rules.load_rule_file

    def with_a_string(name, allowed):
        return real(name, allowed) | {"procedure_statuses_not_performed": "not-done"}

    monkeypatch.setattr(rules, "load_rule_file", with_a_string)
    with pytest.raises(RuleFileError, match="procedure_statuses_not_performed"):
        rules.load_rules()
