"""The report-level decision (labels.decide) on short hand-written reports."""

from __future__ import annotations

import pytest

from pfs.extractors.nlp.labels import decide, find_bt_rads, is_brain_mri
from pfs.extractors.nlp.pipeline import ReportPipeline


#: A report assesses a tumour only when it shows one (labels.has_tumour_context); these short reports say so
#: in a history line, as follow-up reports do, so that each test is about the rule it names.
GBM = "CLINICAL HISTORY: Left frontal glioblastoma, resected, after chemoradiation.\n"


def label(pipe: ReportPipeline, text: str, history: str = GBM) -> tuple[str, str, str]:
    text = history + text
    d = decide(text, pipe.analyse(text))
    return str(d.label), d.rule, text[d.evidence_start:d.evidence_end] if d.evidence_start >= 0 else ""


@pytest.mark.parametrize(("written", "score"), [
    ("BT-RADS: 4", "4"), ("BT-RADS 3c.", "3c"), ("BTRADS category 3-b", "3b"), ("bt-rads score 1b", "1b"),
    ("BT RADS 2", "2"), ("BT-RADS: 3", "3b"), ("BT-RADS 0", "0"),
])
def test_bt_rads_scores_are_read(written: str, score: str) -> None:
    assert [s for s, _, _ in find_bt_rads(f"IMPRESSION: see text. {written}")] == [score]


def test_bt_rads_score_decides_and_is_the_evidence(report_pipeline: ReportPipeline) -> None:
    text = "IMPRESSION: Increased enhancement.\nBT-RADS: 3a"
    lab, rule, evidence = label(report_pipeline, text)
    assert (lab, rule, evidence) == ("treatment_effect", "bt_rads(3a)", "BT-RADS: 3a")


def test_a_bt_rads_score_quoted_in_the_history_does_not_decide(report_pipeline: ReportPipeline) -> None:
    text = "CLINICAL HISTORY: GBM, BT-RADS 4 on the outside study.\n\nIMPRESSION: Stable. No new lesion."
    lab, rule, _ = label(report_pipeline, text)
    assert (lab, rule) == ("stable", "stable(stable)")


def test_impression_outranks_findings(report_pipeline: ReportPipeline) -> None:
    text = ("FINDINGS: The enhancing nodule has increased in size.\n"
            "IMPRESSION: Findings favor pseudoprogression.")
    lab, _, evidence = label(report_pipeline, text)
    assert lab == "treatment_effect"
    assert evidence == "Findings favor pseudoprogression."


def test_addendum_overrules_impression(report_pipeline: ReportPipeline) -> None:
    text = ("IMPRESSION: Stable examination.\n"
            "ADDENDUM: On review of the outside study the enhancing lesion has enlarged, consistent with progression.")
    assert label(report_pipeline, text)[0] == "progression"


def test_negated_progression_is_stable(report_pipeline: ReportPipeline) -> None:
    lab, rule, _ = label(report_pipeline, "IMPRESSION: No evidence of recurrent tumor.")
    assert (lab, rule) == ("stable", "negated_progression")


def test_historical_progression_does_not_count(report_pipeline: ReportPipeline) -> None:
    text = "IMPRESSION: History of tumor progression in 2020. Unchanged appearance today."
    assert label(report_pipeline, text)[0] == "stable"


def test_unresolved_tumour_versus_treatment_is_indeterminate(report_pipeline: ReportPipeline) -> None:
    text = "IMPRESSION: Increased enhancement. This may represent progression versus pseudoprogression."
    assert label(report_pipeline, text)[0] == "indeterminate"


def test_firm_call_beats_a_possibility_raised_beside_it(report_pipeline: ReportPipeline) -> None:
    text = "IMPRESSION: Findings likely represent pseudoprogression. Progression cannot be entirely excluded."
    assert label(report_pipeline, text)[0] == "treatment_effect"


def test_new_lesion_alone_is_progression_and_decrease_is_improved(report_pipeline: ReportPipeline) -> None:
    assert label(report_pipeline, "IMPRESSION: New enhancing lesion in the left cerebellum.")[0] == "progression"
    assert label(report_pipeline, "IMPRESSION: Decreased enhancement. No new lesions.")[0] == "improved"


def test_no_tumour_words_is_no_assessment(report_pipeline: ReportPipeline) -> None:
    lab, rule, evidence = label(report_pipeline, "IMPRESSION: Expected postoperative appearance.")
    assert (lab, rule, evidence) == ("no_assessment", "no_assessment_found", "")


def test_history_section_never_decides(report_pipeline: ReportPipeline) -> None:
    text = "CLINICAL HISTORY: GBM with progression.\nIMPRESSION: Nondiagnostic study due to motion."
    assert label(report_pipeline, text)[0] == "no_assessment"


@pytest.mark.parametrize(("procedure", "text", "expected"), [
    ("MRI BRAIN W/WO CONTRAST", "", True),
    ("MR HEAD WWO", "", True),
    ("CT HEAD W/O", "", False),
    ("MRI LUMBAR SPINE", "", False),
    ("", "MRI BRAIN WITH AND WITHOUT CONTRAST\nFINDINGS: ...", True),
    ("", "CT CHEST\nFINDINGS: ...", False),
    ("MRI", "FINDINGS: Left frontal resection cavity, unchanged.", True),
    ("MR IMAGING", "FINDINGS: Normal marrow signal of the lumbar vertebrae.", False),
])
def test_brain_mri_is_recognised_by_procedure_or_heading(procedure: str, text: str, expected: bool) -> None:
    assert is_brain_mri(procedure, text) is expected
