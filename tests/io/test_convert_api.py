"""The shared conversion layer: dispatch, rule files, dates and treatment dating."""

from __future__ import annotations

import pandas as pd
import pytest

from pfs.exceptions import ExportError, RuleFileError
from pfs.io.formats import convert
from pfs.io.formats.codes import load_rule_file, parse_code_set
from pfs.io.formats.common import iso_date, safe_relative, treatment_dates
from pfs.io.formats.fhir import rules as fhir
from pfs.io.formats.omop import rules as omop


def test_unknown_format_names_the_choices(tmp_path):
    with pytest.raises(ExportError, match="unknown export format 'hl7v2'.*omop, fhir"):
        convert(tmp_path, tmp_path / "out", "hl7v2")


def test_missing_input_is_an_export_error(tmp_path):
    with pytest.raises(ExportError, match="not found"):
        convert(tmp_path / "nowhere", tmp_path / "out", "omop")


def test_omop_without_person_table_is_one_clear_error(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "drug_exposure.csv").write_text("drug_exposure_id,person_id\n1,1\n")
    with pytest.raises(ExportError, match="required OMOP table 'person'"):
        convert(tmp_path / "src", tmp_path / "out", "OMOP")


def test_directory_without_fhir_files_is_an_export_error(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "notes.txt").write_text("hello")
    with pytest.raises(ExportError, match="no FHIR files"):
        convert(tmp_path / "src", tmp_path / "out", "fhir")


def test_shipped_mapping_files_validate():
    o = omop.load_rules()
    f = fhir.load_rules()
    assert o.gbm.matches_code("SNOMED", "393563007")
    assert o.gbm.matches_code("ICD10CM", "C71.9") and not o.gbm.matches_code("ICD10CM", "C79.31")
    assert o.gbm.matches_code("ICDO3", "9440/3-C71.9")
    assert f.gbm.matches_code("icd10", "C71.2") and f.radiotherapy.matches_code("cpt", "77412")
    for name in ("omop_mapping.json", "fhir_mapping.json"):
        with pytest.raises(RuleFileError, match="unknown keys"):
            load_rule_file(name, {"description"})  # every other key is unknown to this caller


def test_unknown_code_set_key_is_rejected():
    with pytest.raises(RuleFileError, match="unknown keys"):
        parse_code_set({"codes": {}, "cods": {}}, "gbm", "test.json")


def test_bad_regular_expression_is_rejected():
    with pytest.raises(RuleFileError, match="invalid regular expression"):
        parse_code_set({"source_value_patterns": ["(unclosed"]}, "gbm", "test.json")


@pytest.mark.parametrize(
    ("raw", "iso"),
    [
        ("2014-04-22", "2014-04-22"),
        ("2014-04-22 00:00:00", "2014-04-22"),
        ("20140422", "2014-04-22"),
        ("2020-07-15T21:22:33+00:00", "2020-07-15"),
        ("2021-02-30", ""),
        ("yesterday", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_iso_date(raw, iso):
    assert iso_date(raw) == iso


def test_safe_relative_refuses_escapes():
    assert safe_relative("images/p1/t1c.nii.gz") == "images/p1/t1c.nii.gz"
    assert safe_relative("../secret.nii.gz") is None
    assert safe_relative("/data/x.nii.gz") is None


def _procs(rows):
    return pd.DataFrame(rows, columns=["kind", "date", "end"])


def test_first_rt_course_from_daily_fractions_ends_at_the_last_fraction():
    fractions = [
        ("radiotherapy", d.strftime("%Y-%m-%d"), "") for d in pd.bdate_range("2021-03-01", periods=30)
    ]
    later = [("radiotherapy", "2022-01-10", "2022-01-20")]  # re-irradiation: a second course
    surgery = [
        ("resection", "2021-01-20", ""),
        ("resection", "2019-05-01", ""),
    ]  # the old one is before the window
    out = treatment_dates(_procs(fractions + later + surgery), "2021-01-15", 30, 30)
    assert out == ("2021-01-20", "2021-03-01", "2021-04-09")


def test_lone_rt_row_without_end_leaves_the_end_blank():
    assert treatment_dates(_procs([("radiotherapy", "2021-03-01", "")]), "2021-01-15", 30, 30) == (
        "",
        "2021-03-01",
        "",
    )
