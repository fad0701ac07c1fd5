"""Dates per person from OMOP: GBM diagnosis, death and last follow-up (procedures: ``procedures.py``)."""

from __future__ import annotations

import pandas as pd

from pfs.io.formats.omop.rules import OmopRules
from pfs.io.formats.omop.source import OmopSource, canonical_ids, dated, person_filter
from pfs.io.formats.omop.vocabulary import Vocabulary
from pfs.io.quarantine import Quarantine


def diagnoses(
    source: OmopSource, rules: OmopRules, vocab: Vocabulary, quarantine: Quarantine, known: set[str]
) -> dict[str, str]:
    """person_id -> the earliest GBM condition start (CONDITION_OCCURRENCE)."""
    dx: dict[str, str] = {}
    if source.has("condition_occurrence"):
        label = source.label("condition_occurrence")
        cols = [
            "person_id",
            "condition_concept_id",
            "condition_source_concept_id",
            "condition_source_value",
            "condition_start_date",
            "condition_start_datetime",
        ]
        gbm_ids = vocab.sets["gbm"]

        def is_gbm(chunk: pd.DataFrame) -> pd.Series:
            hit = (
                canonical_ids(chunk["condition_concept_id"]).isin(gbm_ids)
                | canonical_ids(chunk["condition_source_concept_id"]).isin(gbm_ids)
                | rules.gbm.source_mask(chunk["condition_source_value"])
            )
            return hit & person_filter(quarantine, label, known)(chunk)

        cond = source.read("condition_occurrence", cols, quarantine, keep=is_gbm)
        cond["condition_start_date"] = cond["condition_start_date"].where(
            cond["condition_start_date"].str.strip() != "", cond["condition_start_datetime"]
        )
        cond = dated(cond, "condition_start_date", quarantine, label, required=True)
        dx = cond.groupby("person_id")["condition_start_date"].min().to_dict()
    return dx


def deaths(source: OmopSource, quarantine: Quarantine, known: set[str]) -> dict[str, str]:
    """person_id -> death date (DEATH)."""
    death: dict[str, str] = {}
    if source.has("death"):
        label = source.label("death")
        frame = source.read(
            "death",
            ["person_id", "death_date", "death_datetime"],
            quarantine,
            keep=person_filter(quarantine, label, known),
        )
        frame["death_date"] = frame["death_date"].where(
            frame["death_date"].str.strip() != "", frame["death_datetime"]
        )
        frame = dated(frame, "death_date", quarantine, label, required=True)
        death = frame.groupby("person_id")["death_date"].min().to_dict()
    return death


def follow_up(
    source: OmopSource, quarantine: Quarantine, known: set[str], keep_ids: set[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """(last follow-up, start of observation) per person: OBSERVATION_PERIOD, then VISIT_OCCURRENCE."""
    follow: dict[str, str] = {}
    obs_start: dict[str, str] = {}
    if source.has("observation_period"):
        label = source.label("observation_period")
        frame = source.read(
            "observation_period",
            ["person_id", "observation_period_start_date", "observation_period_end_date"],
            quarantine,
            keep=person_filter(quarantine, label, known),
        )
        frame = dated(frame, "observation_period_start_date", quarantine, label, required=False)
        frame = dated(frame, "observation_period_end_date", quarantine, label, required=False)
        follow = (
            frame.loc[frame["observation_period_end_date"] != ""]
            .groupby("person_id")["observation_period_end_date"]
            .max()
            .to_dict()
        )
        obs_start = (
            frame.loc[frame["observation_period_start_date"] != ""]
            .groupby("person_id")["observation_period_start_date"]
            .min()
            .to_dict()
        )
    if source.has("visit_occurrence"):
        label = source.label("visit_occurrence")
        pfilter = person_filter(quarantine, label, known)
        frame = source.read(
            "visit_occurrence",
            ["person_id", "visit_start_date", "visit_end_date"],
            quarantine,
            keep=lambda c: pfilter(c) & c["person_id"].isin(keep_ids),
        )
        frame = dated(frame, "visit_start_date", quarantine, label, required=False)
        frame = dated(frame, "visit_end_date", quarantine, label, required=False)
        last = frame[["visit_start_date", "visit_end_date"]].max(axis=1)
        frame = frame.assign(last=last).loc[last != ""]
        for pid, d in frame.groupby("person_id")["last"].max().items():
            follow[pid] = max(d, follow.get(pid, ""))
    return follow, obs_start
