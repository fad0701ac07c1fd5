"""ConText behaviour on radiology phrasing, through the real pipeline (shipped rules)."""

from __future__ import annotations

from pfs.extractors.nlp.pipeline import Mention, ReportPipeline


def mentions(pipe: ReportPipeline, text: str) -> dict[str, Mention]:
    return {text[m.start:m.end].lower(): m for m in pipe.analyse(text).mentions}


def test_no_after_a_findings_heading_negates_the_finding(report_pipeline: ReportPipeline) -> None:
    # medspaCy's default rules attach this "No" to the heading ("Fever: No"), leaving the finding affirmed.
    found = mentions(report_pipeline, "FINDINGS: No new enhancing lesion.")
    # The finding is the lesion; "new" is its change modifier and "No" negates it.
    assert {"NEGATED_EXISTENCE", "NEW"} <= set(found["enhancing lesion"].modifiers)
    assert found["enhancing lesion"].section == "findings"


def test_versus_makes_both_alternatives_possible(report_pipeline: ReportPipeline) -> None:
    found = mentions(report_pipeline, "IMPRESSION: May represent progressive disease versus radiation necrosis.")
    assert "POSSIBLE_EXISTENCE" in found["progressive disease"].modifiers
    assert "POSSIBLE_EXISTENCE" in found["radiation necrosis"].modifiers


def test_history_and_recommendations_are_marked(report_pipeline: ReportPipeline) -> None:
    found = mentions(report_pipeline, "IMPRESSION: Status post resection of recurrent tumor. "
                                      "Recommend follow-up to evaluate for progression.")
    assert "HISTORICAL" in found["recurrent tumor"].modifiers
    assert "HYPOTHETICAL" in found["progression"].modifiers


def test_but_ends_a_negation(report_pipeline: ReportPipeline) -> None:
    found = mentions(report_pipeline, "No new lesion but the nodular enhancement has increased.")
    assert "NEGATED_EXISTENCE" in found["lesion"].modifiers
    assert found["nodular enhancement"].modifiers == ("INCREASED",)


def test_a_phrase_containing_no_is_a_concept_not_a_negation(report_pipeline: ReportPipeline) -> None:
    found = mentions(report_pipeline, "No significant change in the enhancement.")
    # "No significant change" is one STABLE modifier of the enhancement, not a negation of it.
    assert found["enhancement"].modifiers == ("STABLE",)


def test_offsets_point_into_the_text(report_pipeline: ReportPipeline) -> None:
    text = "History: glioma.\n\nIMPRESSION:\n1. Increased enhancement, concerning for progression."
    facts = report_pipeline.analyse(text)
    prog = [m for m in facts.mentions if m.category == "PROGRESSION"][0]
    assert text[prog.start:prog.end] == "progression"
    assert text[prog.sent_start:prog.sent_end].strip().startswith("1. Increased enhancement")
    assert "PROBABLE_EXISTENCE" in prog.modifiers
    assert [s for s, _ in facts.sections] == ["history", "impression"]


def test_a_lower_case_word_before_a_colon_is_not_a_heading(report_pipeline: ReportPipeline) -> None:
    facts = report_pipeline.analyse("IMPRESSION: Mixed findings: new focus of enhancement.")
    assert [s for s, _ in facts.sections] == ["impression"]
    assert {m.section for m in facts.mentions} == {"impression"}


def test_a_comparison_line_does_not_swallow_unheaded_findings(report_pipeline: ReportPipeline) -> None:
    text = "COMPARISON: MRI 03/02/2021.\nThe enhancing nodule has increased, concerning for progression."
    facts = report_pipeline.analyse(text)
    assert [s for s, _ in facts.sections] == ["comparison", ""]
    assert {m.section for m in facts.mentions} == {""}


def test_a_comparison_heading_before_findings_keeps_its_paragraph(report_pipeline: ReportPipeline) -> None:
    text = "COMPARISON: MRI 03/02/2021, which showed progression.\nFINDINGS: Stable."
    facts = report_pipeline.analyse(text)
    assert {m.category: m.section for m in facts.mentions} == {"PROGRESSION": "comparison"}
    # "Stable." alone: a change modifier with no finding in its sentence, kept for the report decision.
    assert [(m.modifiers[0], m.section) for m in facts.unattached] == [("STABLE", "findings")]
