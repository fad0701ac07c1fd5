"""Corticosteroid extractor: prescriptions -> dexamethasone-equivalent exposure -> progression events.

Steroids are a late, partial signal of GBM progression: dexamethasone is restarted or raised for
the symptoms of a growing tumour, usually after the MRI has shown it (Chappidi et al. 2025 found
it in 63 % of patients, 5.2 months late). The extractor

1. recognises systemic corticosteroid rows (:mod:`.drugs`; other drugs are counted, local forms
   are counted with their reason),
2. parses dose, unit, frequency and sig (:mod:`.doses`) and quarantines, with its reason, an order
   it cannot read or that is implausible (:mod:`.screening`),
3. builds the daily dexamethasone-equivalent series and courses (:mod:`.exposure`), discounting
   orders that look unrelated to the tumour (:mod:`.discounting`: antiemetic single doses, dose packs,
   short bursts of other steroids, physiological doses),
4. applies the progression rules (:mod:`.rules`) after the peri-treatment period: a new course
   after a steroid-free spell, a sustained rise above the post-treatment nadir, frequent
   prescribing; by default one course gives one event (:mod:`.events`, with its evidence line from
   :mod:`.evidence`).

Outputs: events (source = steroid), ``steroid_courses`` and ``steroid_daily`` (run-length form:
one row per stretch of days with the same total dose), both built in :mod:`.courses`. This module only
runs the stages in order.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from pfs.exceptions import ConfigError
from pfs.extractors import ExtractorResult, count_per_patient, totals
from pfs.extractors.steroid.courses import annotate_courses, courses_table, daily_table
from pfs.extractors.steroid.discounting import discount_reason
from pfs.extractors.steroid.doses import load_frequency_rules, parse_orders
from pfs.extractors.steroid.drugs import SteroidRules, identify_drug, load_rules, non_systemic_kind
from pfs.extractors.steroid.events import build_events
from pfs.extractors.steroid.exposure import (
    group_courses,
    order_spans,
    resolve_renewals,
    segments,
    sweep,
    to_days,
)
from pfs.extractors.steroid.rules import (
    RULE_NAMES,
    dose_rise,
    new_course,
    peri_treatment_end,
    prescription_frequency,
)
from pfs.extractors.steroid.screening import quarantine_rows, screen, working_orders
from pfs.io.export import Export
from pfs.io.schema import conform
from pfs.settings import Config

log = logging.getLogger(__name__)

__all__ = ["extract"]


class _Clock:
    """Stage timings at DEBUG level (logger ``pfs.extractors.steroid``), for profiling big exports."""

    def __init__(self) -> None:
        self.t = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        log.debug("steroid %s: %.2f s", stage, now - self.t)
        self.t = now


def _check_settings(settings: dict[str, Any]) -> None:
    unknown = [r for r in settings.get("rules", []) if r not in RULE_NAMES]
    if unknown:
        raise ConfigError(f"steroid.rules: unknown rule {unknown[0]!r} (known: {', '.join(RULE_NAMES)})")
    for key in (
        "default_duration_days",
        "max_order_days",
        "course_gap_days",
        "rise_min_days",
        "frequency_window_days",
        "frequency_min_orders",
    ):
        if settings[key] < 0 or (key != "course_gap_days" and settings[key] < 1):
            raise ConfigError(f"steroid.{key} must be a positive number of days/orders, not {settings[key]!r}")


def _prepare(meds: pd.DataFrame, rules: SteroidRules) -> tuple[pd.Series, pd.Series]:
    """(ingredient, non-systemic form) per medication row: None for a non-steroid, None for a systemic form."""
    drug = identify_drug(meds["drug_name"], rules)
    local = pd.Series(None, index=meds.index, dtype=object)
    st = drug.notna()
    if st.any():
        local[st] = non_systemic_kind(meds.loc[st, "drug_name"], meds.loc[st, "route"], meds.loc[st, "sig"], rules)
    return drug, local


def extract(export: Export, config: Config) -> ExtractorResult:
    """Steroid progression events, courses and the daily exposure series of every patient in ``export``."""
    settings = config.section("steroid")
    _check_settings(settings)
    rules = load_rules()
    meds = export.table("medications")
    patients = export.table("patients")
    clock = _Clock()
    drug, local = _prepare(meds, rules)
    systemic = (drug.notna() & local.isna()).to_numpy()
    text = meds.loc[
        systemic,
        [
            "patient_id",
            "medication_id",
            "order_date",
            "end_date",
            "drug_name",
            "dose",
            "dose_unit",
            "frequency",
            "sig",
            "_row",
        ],
    ]
    clock("recognise")
    parsed = parse_orders(text, drug[systemic], rules, load_frequency_rules())
    clock("parse")
    s = working_orders(parsed, text, drug[systemic], rules)
    reason, column = screen(s, parsed["problem"], parsed["problem_column"], patients, settings)
    quarantine = quarantine_rows(text, reason, column)
    o = s.loc[reason.isna().to_numpy()].copy()
    clock("screen")

    pids = patients["patient_id"].astype(str).to_numpy()
    pindex = pd.Index(pids)
    o["pcode"] = pindex.get_indexer(o["patient_id"].astype(str))
    if (o["pcode"].to_numpy() < 0).any():  # only when called without load_export's patient check
        o = o.loc[o["pcode"].to_numpy() >= 0].copy()
    o = order_spans(o, settings)
    death = patients["death_date"]
    death_day = np.where(death.notna(), to_days(death.fillna(pd.Timestamp(0))), np.iinfo("int64").max)
    o["stop_day"] = np.maximum(
        np.minimum(o["stop_day"].to_numpy(), death_day[o["pcode"].to_numpy()]), o["start_day"].to_numpy()
    )
    o = resolve_renewals(o) if not o.empty else o.assign(duplicate=False)
    o["discount_reason"] = discount_reason(o, settings) if not o.empty else pd.Series(dtype=object)
    o["counted"] = o["discount_reason"].isna()
    clock("orders")

    runs = (
        sweep(segments(o)) if not o.empty else sweep(pd.DataFrame(columns=["pcode", "start", "stop", "mg", "counted"]))
    )
    gap = int(settings["course_gap_days"])
    counted_courses = group_courses(runs, "mg_counted", gap)
    runs_d = runs.assign(mg_disc=np.where(runs["mg_counted"] > 0, 0.0, runs["mg_all"]))
    disc_courses = group_courses(runs_d, "mg_disc", gap)
    clock("exposure")
    peri_end = peri_treatment_end(patients, settings).to_numpy()

    counted_courses = annotate_courses(counted_courses, o.loc[o["counted"] & ~o["duplicate"]])
    disc_courses = annotate_courses(disc_courses, o.loc[~o["counted"] & ~o["duplicate"]])
    clock("courses")

    active = set(settings["rules"])
    fired = []
    if "new_course" in active:
        death_days = np.where(
            np.isnan(death_day.astype("float64")) | (death_day == np.iinfo("int64").max),
            np.nan,
            death_day.astype("float64"),
        )
        fired.append(new_course(counted_courses, peri_end, settings, death_days))
    if "dose_rise" in active:
        fired.append(dose_rise(runs, peri_end, settings))
    if "prescription_frequency" in active:
        cnt = o.loc[o["counted"] & ~o["duplicate"], ["pcode", "start_day", "dex_mg_per_day"]]
        fired.append(prescription_frequency(cnt, peri_end, settings))
    clock("rules")
    events = build_events(fired, o, pids, settings, counted_courses)
    clock("events")

    courses = courses_table(counted_courses, disc_courses, pids, peri_end)
    daily = daily_table(runs, pids)
    clock("tables")
    has_o = not o.empty
    patient_counts = count_per_patient(
        pids,
        rows_examined=meds["patient_id"],
        steroid_rows=meds.loc[systemic, "patient_id"],
        non_steroid_rows=meds.loc[drug.isna().to_numpy(), "patient_id"],
        non_systemic_rows=meds.loc[(drug.notna() & local.notna()).to_numpy(), "patient_id"],
        quarantined_rows=quarantine["patient_id"],
        duplicate_orders=o.loc[o["duplicate"], "patient_id"] if has_o else [],
        discounted_orders=o.loc[~o["counted"], "patient_id"] if has_o else [],
        counted_courses=pids[counted_courses["pcode"].to_numpy(dtype="int64")],
        discounted_courses=pids[disc_courses["pcode"].to_numpy(dtype="int64")],
        events=events["patient_id"],
    )
    counts = totals(patient_counts)
    return ExtractorResult(
        events=events,
        tables={
            "steroid_courses": conform(courses, "steroid_courses"),
            "steroid_daily": conform(daily, "steroid_daily"),
        },
        quarantine=quarantine,
        counts=counts,
        patient_counts=patient_counts,
    )
