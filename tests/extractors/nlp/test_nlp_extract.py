"""The extractor on whole exports: every report labelled, bad input handled, outputs match their schemas."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import pfs.extractors.nlp as nlp
from pfs.extractors.nlp.pipeline import ReportPipeline
from pfs.io import load_export
from pfs.io.schema import load_schema
from pfs.settings import load_config

PATIENTS = """patient_id,diagnosis_date,surgery_date,rt_start_date,rt_end_date,last_followup_date,death_date
P1,2020-01-01,2020-01-10,2020-02-10,2020-03-20,2021-06-01,
P2,2020-02-01,2020-02-05,2020-03-05,2020-04-15,,
"""


@pytest.fixture
def use_session_pipeline(monkeypatch: pytest.MonkeyPatch, report_pipeline: ReportPipeline) -> None:
    monkeypatch.setattr(nlp, "build_pipeline", lambda settings: report_pipeline)


def export_with(tmp_path: Path, reports: pd.DataFrame, raw: bytes | None = None) -> Path:
    root = tmp_path / "export"
    root.mkdir()
    (root / "patients.csv").write_text(PATIENTS, encoding="utf-8")
    if raw is not None:
        (root / "reports.csv").write_bytes(raw)
    else:
        reports.to_csv(root / "reports.csv", index=False)
    return root


def run(root: Path, overrides: dict | None = None) -> nlp.ExtractorResult:
    return nlp.extract(load_export(root, tables=("patients", "reports")), load_config(overrides))


# Every brain MRI here names the tumour or its resection site: a report that shows no brain tumour is
# no_assessment by design (labels.has_tumour_context), which test_nlp_findings.py tests on its own.
REPORTS = pd.DataFrame([
    ("P1", "R1", "2019-12-20", "MRI BRAIN W/WO", "IMPRESSION: Enlarging mass, consistent with tumor growth."),
    ("P1", "R2", "2020-06-01", "MRI BRAIN W/WO", "FINDINGS: No new lesion.\nIMPRESSION: Stable. BT-RADS 2"),
    ("P1", "R3", "2020-09-01", "MRI BRAIN W/WO",
     "IMPRESSION: New enhancing lesion at the resection cavity, consistent with progression."),
    ("P1", "R4", "2020-09-02", "CT CHEST", "IMPRESSION: Progression of pulmonary metastases."),
    ("P2", "R5", "2020-08-01", "MRI BRAIN", "<html><body><p>IMPRESSION:</p><p>Recurrent tumor.</p></body></html>"),
    ("P2", "R6", "2020-09-01", "MRI BRAIN",
     r"{\rtf1\ansi\f0 IMPRESSION: Decreased enhancement of the residual tumor.\par}"),
    ("P2", "R7", "2020-10-01", "MRI BRAIN", "IMPRESSION: Progression. " + "x" * 1_000_000),
], columns=["patient_id", "report_id", "report_date", "procedure", "text"])


def test_every_report_gets_one_label_row_and_only_brain_mri_is_assessed(tmp_path: Path,
                                                                       use_session_pipeline: None) -> None:
    result = run(export_with(tmp_path, REPORTS))
    lab = result.tables["report_labels"].set_index("report_id")
    assert lab.index.tolist() == [f"R{i}" for i in range(1, 8)]
    assert lab["label"].to_dict() == {
        "R1": "progression", "R2": "stable", "R3": "progression", "R4": "not_applicable",
        "R5": "progression", "R6": "improved", "R7": "no_assessment"}
    assert lab.loc["R2", "bt_rads"] == "2" and lab.loc["R2", "rule"] == "bt_rads(2)"
    assert list(result.tables["report_labels"].columns) == load_schema("report_labels").columns


def test_events_skip_contradicted_and_non_brain_reports(tmp_path: Path, use_session_pipeline: None) -> None:
    result = run(export_with(tmp_path, REPORTS))
    # R1 (before surgery) is reported: the index date is the reconciler's to apply.
    # R5 (progression) is followed by R6 (improved) within 90 days: contradicted, no event.
    assert result.events["ref_id"].tolist() == ["R1", "R3"]
    assert list(result.events.columns) == load_schema("events").columns
    assert result.counts["events_contradicted"] == 1
    assert result.counts["reports_before_diagnosis"] == 1


def test_a_huge_report_is_quarantined_without_its_text(tmp_path: Path, use_session_pipeline: None) -> None:
    result = run(export_with(tmp_path, REPORTS))
    q = result.quarantine
    assert q[["table", "row", "patient_id", "column", "stage"]].values.tolist() == [["reports", 7, "P2", "text", "nlp"]]
    assert q["value"].iloc[0] == "<1000025 characters>"  # the length, never the text
    assert "max_report_chars" in q["reason"].iloc[0]


def test_evidence_offsets_point_into_the_exported_text(tmp_path: Path, use_session_pipeline: None) -> None:
    result = run(export_with(tmp_path, REPORTS))
    lab = result.tables["report_labels"].set_index("report_id")
    text = REPORTS.set_index("report_id").loc["R5", "text"]
    assert text[lab.loc["R5", "evidence_start"]:lab.loc["R5", "evidence_end"]] == "Recurrent tumor."


def test_non_utf8_export_is_read_and_labelled(tmp_path: Path, use_session_pipeline: None) -> None:
    raw = ("patient_id,report_id,report_date,procedure,text\n"
           "P1,R1,2020-06-01,MRI BRAIN,\"IMPRESSION: Glioblastoma unver\xe4ndert, stable.\"\n").encode("latin-1")
    result = run(export_with(tmp_path, REPORTS, raw=raw))
    assert result.tables["report_labels"]["label"].tolist() == ["stable"]


def test_no_reports_table_gives_empty_outputs(tmp_path: Path, use_session_pipeline: None) -> None:
    root = tmp_path / "export"
    root.mkdir()
    (root / "patients.csv").write_text(PATIENTS, encoding="utf-8")
    result = run(root)
    assert result.events.empty and result.tables["report_labels"].empty
    assert result.counts["reports"] == 0


def test_pfs_extract_writes_report_labels_and_accounts_for_every_row(tmp_path: Path,
                                                                      use_session_pipeline: None) -> None:
    from pfs.pipeline import run_extract

    root = export_with(tmp_path, REPORTS)
    result = run_extract(root, tmp_path / "out", sources=["nlp"])
    written = pd.read_csv(tmp_path / "out" / "report_labels.csv", dtype=str, keep_default_na=False)
    assert len(written) == len(REPORTS)
    reports = result.manifest["tables"]["reports"]
    assert (reports["rows_read"], reports["rows_quarantined"], reports["rows_used"]) == (7, 1, 6)
    assert result.manifest["sources"]["nlp"]["status"] == "ran"
    assert (result.endpoints.query("method == 'nlp' and patient_id == 'P1'")["progression_date"]
            == pd.Timestamp("2020-09-01")).all()


def test_empty_and_blank_texts_are_quarantined_and_the_rest_labelled(tmp_path: Path,
                                                                     use_session_pipeline: None) -> None:
    reports = pd.DataFrame([
        ("P1", "R1", "2020-06-01", "MRI BRAIN", ""),
        ("P1", "R2", "2020-07-01", "MRI BRAIN", "   \n  "),
        ("P1", "R3", "2020-08-01", "MRI BRAIN", "IMPRESSION: Stable residual tumor."),
    ], columns=["patient_id", "report_id", "report_date", "procedure", "text"])
    root = export_with(tmp_path, reports)
    export = load_export(root, tables=("patients", "reports"))
    result = nlp.extract(export, load_config())
    q = export.quarantine.frame()
    assert q.loc[q["table"] == "reports", "row"].tolist() == [1, 2]
    assert result.tables["report_labels"][["report_id", "label"]].values.tolist() == [["R3", "stable"]]
