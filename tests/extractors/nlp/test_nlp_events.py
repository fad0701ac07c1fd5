"""The confirmation rule that turns progression reports into events."""

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


def test_early_post_radiotherapy_progression_needs_confirmation() -> None:
    # 2020-04-20 is 31 days after RT end: the next scan (stable) within 70 days does not confirm it.
    ev, counts = progression_events(labels(("R1", "2020-04-20", "progression"), ("R2", "2020-06-10", "stable")),
                                    PATIENTS, SETTINGS)
    assert ev.empty and counts["events_unconfirmed_early"] == 1
    ev, _ = progression_events(labels(("R1", "2020-04-20", "progression"), ("R2", "2020-06-10", "progression")),
                               PATIENTS, SETTINGS)
    assert ev["ref_id"].tolist() == ["R1", "R2"]


def test_early_progression_without_follow_up_stands_with_lower_confidence() -> None:
    ev, _ = progression_events(labels(("R1", "2020-04-20", "progression")), PATIENTS, SETTINGS)
    assert ev["confidence"].tolist() == [0.63]


def test_reports_before_surgery_make_no_event() -> None:
    ev, counts = progression_events(labels(("R0", "2020-01-05", "progression")), PATIENTS, SETTINGS)
    assert ev.empty and counts["events_before_index"] == 1


def test_confirmation_can_be_switched_off() -> None:
    settings = dict(SETTINGS, confirm_early=False)
    ev, _ = progression_events(labels(("R1", "2020-04-20", "progression"), ("R2", "2020-06-10", "stable")),
                               PATIENTS, settings)
    assert ev["ref_id"].tolist() == ["R1"]
