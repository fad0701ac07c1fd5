"""Specification of the finding-centric reading (issue 15), one test per failure class.

Each report is written for this file in a style unlike the development sets (British and American
spellings, "Opinion:" / "Result:" headings, clinical-letter prose), so that the tests state principles:
a change word belongs to the finding it describes; a tumour word is read with its own change; a hedged
benign explanation is not progression; an undeterminable status is no assessment; no tumour, no call.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pfs.extractors.nlp import label_reports
from pfs.extractors.nlp.events import progression_events
from pfs.extractors.nlp.labels import decide
from pfs.extractors.nlp.pipeline import ReportPipeline
from pfs.settings import load_config

GBM = "Clinical information: right temporal glioblastoma, resected 2022, chemoradiation completed.\n"


def call(pipe: ReportPipeline, text: str) -> tuple[str, str]:
    d = decide(text, pipe.analyse(text))
    return str(d.label), d.rule


# --- a change word decides only for the finding it is attached to -------------------------------------

@pytest.mark.parametrize("text", [
    GBM + "Result:\nThe temporal horns are larger than before and the third ventricle has enlarged, in keeping "
          "with communicating hydrocephalus. The treated tumour bed is unchanged.\nOpinion:\nEnlarging ventricles; "
          "unchanged tumour bed.",
    GBM + "OPINION: Unchanged appearance of the resection cavity without new enhancement. More numerous "
          "microbleeds within the radiotherapy field than on the last scan.",
    GBM + "CONCLUSION: The resection cavity and its rim are unchanged. New fluid filling the right mastoid air cells.",
    GBM + "IMPRESSION: Post-treatment change at the operative site is stable; the small subdural hygroma has "
          "increased slightly.",
], ids=["ventricles", "microbleeds", "mastoid", "hygroma"])
def test_change_of_a_non_tumour_finding_does_not_make_progression(report_pipeline: ReportPipeline,
                                                                   text: str) -> None:
    assert call(report_pipeline, text)[0] == "stable"


def test_worsening_symptoms_in_a_clinical_narrative_are_not_tumour_change(report_pipeline: ReportPipeline) -> None:
    text = ("MRI head with gadolinium. Over the last month her headaches have increased and her word-finding "
            "difficulty has become worse, so the oncologist requested an early scan. Glioblastoma of the left "
            "frontal lobe treated in 2023. The enhancing tissue at the resection margin measures the same as in "
            "March. No new lesions.")
    assert call(report_pipeline, text)[0] == "stable"


# --- a tumour word is read with its own change ----------------------------------------------------------

def test_a_recurrence_described_as_smaller_is_improvement(report_pipeline: ReportPipeline) -> None:
    text = GBM + "IMPRESSION: The recurrence at the posterior cavity margin is smaller than in June (9 mm, was 15 mm)."
    assert call(report_pipeline, text) == ("improved", "improved(recurrence)")


def test_earlier_recurrences_in_the_history_line_of_an_unsectioned_report_do_not_count(
        report_pipeline: ReportPipeline) -> None:
    text = ("Brain MRI with contrast\nPatient with glioblastoma, first progression 2021 treated with lomustine, "
            "second recurrence 2023 re-resected.\nThe enhancement at the resection site is unchanged in size. No new "
            "focus of enhancement is seen.")
    facts = report_pipeline.analyse(text)
    history = [m for m in facts.mentions if m.category == "PROGRESSION"]
    assert history and all("HISTORICAL" in m.modifiers for m in history)
    assert call(report_pipeline, text)[0] == "stable"


# --- a hedged, nonspecific new focus with a benign explanation --------------------------------------------

HEDGED = (GBM + "FINDINGS: Stable resection cavity.\nIMPRESSION: A new 2 mm dot of enhancement in the left "
                "cerebellum is nonspecific and may be a small vessel; attention on follow-up. Otherwise stable.")


def test_a_hedged_benign_new_focus_is_not_progression(report_pipeline: ReportPipeline) -> None:
    assert call(report_pipeline, HEDGED)[0] != "progression"


def test_a_hedged_benign_new_focus_dates_no_progression_event(report_pipeline: ReportPipeline) -> None:
    settings = load_config().section("nlp")
    reports = pd.DataFrame({"patient_id": ["P1"], "report_id": ["R1"], "report_date": [pd.Timestamp("2023-06-01")],
                            "procedure": ["MRI BRAIN W/WO"], "text": [HEDGED]})
    labels, _, _ = label_reports(reports, report_pipeline, settings)
    patients = pd.DataFrame({"patient_id": ["P1"], "diagnosis_date": [pd.Timestamp("2022-01-01")],
                             "surgery_date": [pd.Timestamp("2022-01-10")], "rt_end_date": [pd.Timestamp("2022-03-20")]})
    events, counts = progression_events(labels, patients, settings["events"])
    assert events.empty and counts["events_candidates"] == 0


# --- a status that cannot be determined is no assessment ----------------------------------------------------

@pytest.mark.parametrize("sentence", [
    "Severe motion degrades the post-contrast images; the status of the tumour cannot be determined.",
    "Without gadolinium the residual tumour cannot be assessed.",
    "The known glioma has not been evaluated on this limited shunt series.",
])
def test_a_tumour_status_that_cannot_be_determined_is_no_assessment(report_pipeline: ReportPipeline,
                                                                    sentence: str) -> None:
    text = GBM + f"IMPRESSION: {sentence} The ventricles are stable."
    assert call(report_pipeline, text) == ("no_assessment", "nondiagnostic")


# --- no brain tumour, no tumour assessment -------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "MRI BRAIN: Relapsing multiple sclerosis. IMPRESSION: Three new enhancing lesions in the periventricular white "
    "matter, consistent with active demyelination.",
    "MRI BRAIN: Left arm weakness. IMPRESSION: Evolving subacute infarct in the right MCA territory with new "
    "gyriform enhancement; the area of restricted diffusion has increased.",
    "MRI brain without contrast. Impression: Progression of chronic small vessel ischemic disease compared with "
    "2019. No mass.",
    "MR head: drained left cerebellar abscess. Conclusion: The abscess cavity and its rim enhancement are smaller; "
    "new small satellite focus of enhancement medially.",
    "Oncology consult. Newly diagnosed non-small cell lung cancer; the left adrenal mass, compatible with tumor, "
    "has enlarged since March. Brain MRI: no intracranial metastasis.",
    "MRI head. Right subdural collection drained in May. Conclusion: Recurrence of the right-sided subdural "
    "collection, now 14 mm, with increased mass effect on the right hemisphere.",
], ids=["demyelination", "infarct", "small_vessel", "abscess", "lung_cancer", "recurrent_collection"])
def test_a_report_about_someone_without_a_brain_tumour_is_no_assessment(report_pipeline: ReportPipeline,
                                                                       text: str) -> None:
    assert call(report_pipeline, text) == ("no_assessment", "no_brain_tumour_mentioned")


# --- evidence names the finding and each modifier, with offsets and rule ids -------------------------------

def test_report_labels_name_the_finding_and_its_modifiers(report_pipeline: ReportPipeline) -> None:
    text = GBM + "IMPRESSION: New enhancing nodule along the cavity wall, concerning for tumour progression."
    reports = pd.DataFrame({"patient_id": ["P1"], "report_id": ["R1"], "report_date": [pd.Timestamp("2023-06-01")],
                            "procedure": ["MRI BRAIN"], "text": [text]})
    row = label_reports(reports, report_pipeline, load_config().section("nlp"))[0].iloc[0]
    assert row["label"] == "progression"
    assert text[row["finding_start"]:row["finding_end"]] == "tumour progression"
    assert row["finding_rule"] == "PROGRESSION:tumour progression"
    mods = json.loads(row["modifiers"])
    assert [(m["category"], text[m["start"]:m["end"]], m["rule"]) for m in mods] == [
        ("PROBABLE_EXISTENCE", "concerning for", "PROBABLE_EXISTENCE:concerning for")]


# --- negation: at least medspaCy's default ConText on general clinical sentences -----------------------------

NEGATION = [  # (sentence, finding, negated) written for this test in NegEx's general clinical style
    ("The patient denies headache.", "headache", True), ("No evidence of hemorrhage.", "hemorrhage", True),
    ("Negative for infarct.", "infarct", True), ("Hydrocephalus was ruled out.", "hydrocephalus", True),
    ("She has been free of seizures since March.", "seizures", True), ("Without hydrocephalus.", "hydrocephalus", True),
    ("No acute infarct or hemorrhage.", "hemorrhage", True), ("He reports headache.", "headache", False),
    ("Hemorrhage is present.", "hemorrhage", False), ("No headache but new seizures.", "seizures", False),
    ("The patient does not have a tumor.", "tumor", True), ("Infarct is not seen.", "infarct", True),
    ("He never had seizures.", "seizures", True), ("Absence of hemorrhage.", "hemorrhage", True),
    ("Denied any headache.", "headache", True), ("The CT was negative for hemorrhage.", "hemorrhage", True),
    ("Tumor cannot be excluded.", "tumor", False), ("The infarct is old.", "infarct", False),
    ("No longer has seizures.", "seizures", True), ("Lack of hydrocephalus.", "hydrocephalus", True),
    ("Patient was not having seizures.", "seizures", True), ("Headache is absent.", "headache", True),
]


def test_negation_is_at_least_as_good_as_medspacys_default_context(report_pipeline: ReportPipeline) -> None:
    import warnings

    medspacy = pytest.importorskip("medspacy")
    from medspacy.target_matcher import TargetRule

    default = medspacy.load()  # its tokenizer, PyRuSH sentences and default ConText rules
    default.get_pipe("medspacy_target_matcher").add([TargetRule(t, "FINDING") for t in {t for _, t, _ in NEGATION}])
    ours = theirs = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for text, term, negated in NEGATION:
            found = [m for m in report_pipeline.analyse(text).mentions if text[m.start:m.end].lower() == term]
            ours += (bool(found) and "NEGATED_EXISTENCE" in found[0].modifiers) == negated
            ents = [e for e in default(text).ents if e.text.lower() == term]
            theirs += (bool(ents) and ents[0]._.is_negated) == negated
    assert ours >= theirs
    assert ours == len(NEGATION)
