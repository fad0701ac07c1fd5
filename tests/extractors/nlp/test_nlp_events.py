"""The contradiction rule that turns progression reports into events."""

from __future__ import annotations

import pandas as pd

from pfs.extractors.nlp.events import progression_events
from pfs.settings import load_config

SETTINGS = load_config().section("nlp")["events"]
PATIENTS = pd.DataFrame({
    "patient_id": ["P1"],
    "diagnosis_date": pd.to_datetime(["2020-01-01"]),
    "surgery_date": pd.to_datetime(["2020-01-10"]),
    "rt_end_date": pd.to_datetime(["2020-03-20"]),
})


def labels(*rows: tuple[str, str, str]) -> pd.DataFrame:
    return pd.DataFrame([{"patient_id": "P1", "report_id": rid, "report_date": pd.Timestamp(day), "label": lab,
                          "rule": "r", "evidence_sentence": "Increased\nenhancement.", "certainty": 3}
                         for rid, day, lab in rows])


def test_uncontradicted_progression_is_an_event_dated_to_the_report() -> None:
    ev, counts = progression_events(labels(("R1", "2020-09-01", "progression"), ("R2", "2020-11-01", "progression")),
                                    PATIENTS, SETTINGS)
    assert ev["ref_id"].tolist() == ["R1", "R2"]
    assert ev["event_date"].iloc[0] == pd.Timestamp("2020-09-01")
    assert set(ev["source"]) == {"nlp"} and set(ev["kind"]) == {"report_progression"}
    assert ev["evidence"].iloc[0] == "progression [r] Increased enhancement."
    assert counts["events_candidates"] == 2


def test_progression_followed_by_treatment_effect_within_the_window_is_dropped() -> None:
    ev, counts = progression_events(labels(("R1", "2020-09-01", "progression"),
                                           ("R2", "2020-10-15", "treatment_effect")), PATIENTS, SETTINGS)
    assert ev.empty and counts["events_contradicted"] == 1


def test_contradiction_after_the_window_does_not_count() -> None:
    ev, _ = progression_events(labels(("R1", "2020-09-01", "progression"), ("R2", "2021-01-15", "improved")),
                               PATIENTS, SETTINGS)
    assert ev["ref_id"].tolist() == ["R1"]


def test_what_a_report_saw_is_reported_whenever_it_was_written() -> None:
    """Early post-RT and pre-surgery reports make events: the window and the index date are the reconciler's."""
    ev, counts = progression_events(labels(("R0", "2020-01-05", "progression"), ("R1", "2020-04-20", "progression"),
                                           ("R2", "2020-06-10", "stable")), PATIENTS, SETTINGS)
    assert ev["ref_id"].tolist() == ["R0", "R1"] and ev["confidence"].tolist() == [0.9, 0.9]
    assert set(counts) == {"events_candidates", "events_contradicted"}
