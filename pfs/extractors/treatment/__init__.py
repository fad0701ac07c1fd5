"""Next-line therapy: the start of a new line of treatment after first-line chemoradiation.

In real-world data the start of a second line (bevacizumab, lomustine/CCNU, carmustine, regorafenib,
a re-challenge of temozolomide after a break, a trial drug, a re-resection or re-irradiation) is the
most specific progression marker clinicians leave, usually days to weeks after the scan that showed
progression. This source emits one event per new line, dated to its first order (or procedure), with
the order and the drug as evidence. It does not date progression itself: the reconciler uses it to
confirm a tumour event, and dates progression by it (flagged late) only when no tumour event precedes
it (pfs/config/reconcile.toml).

First line (not an event): everything on or before the end of radiotherapy, and the temozolomide
series that starts by ``first_line_tmz_start_days`` after it and continues without a break of more
than ``rechallenge_gap_days`` (pfs/config/treatment.toml gives each threshold's reason).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pfs.exceptions import ConfigError
from pfs.extractors import ExtractorResult, count_per_patient, totals
from pfs.extractors.treatment.rules import TreatmentRules, drug_class, load_rules, procedure_kind
from pfs.io.schema import empty_frame

SOURCE = "treatment"
_DAY_KEYS = ("first_line_days_without_rt", "first_line_tmz_start_days", "rechallenge_gap_days", "combine_days",
             "line_gap_days", "first_surgery_days", "first_rt_days")


def _check_settings(settings: dict[str, Any]) -> None:
    for key in _DAY_KEYS:
        value = settings.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"treatment.{key} must be a whole number >= 0, not {value!r}")


def _first_line_end(patients: pd.DataFrame, settings: dict[str, Any]) -> pd.Series:
    """Per patient, the last day of first-line treatment: RT end, else surgery (or diagnosis) + a typical span."""
    p = patients.drop_duplicates("patient_id").set_index("patient_id")
    start = p["surgery_date"].fillna(p["diagnosis_date"])
    return p["rt_end_date"].fillna(start + pd.Timedelta(days=int(settings["first_line_days_without_rt"])))


def _drug_orders(meds: pd.DataFrame, rules: TreatmentRules, first_end: pd.Series,
                 settings: dict[str, Any]) -> pd.DataFrame:
    """Orders of next-line drug classes after first line; temozolomide only as a re-challenge."""
    cls = drug_class(meds["drug_name"], rules)
    orders = meds.assign(drug_class=cls).loc[cls.notna()].copy()
    orders["first_end"] = orders["patient_id"].map(first_end)
    orders = orders.sort_values(["patient_id", "order_date", "medication_id"], kind="stable")
    tmz = orders["drug_class"].isin(rules.first_line)
    keep = ~tmz & (orders["first_end"].isna() | (orders["order_date"] > orders["first_end"]))
    rechallenge = pd.Series(False, index=orders.index)
    gap = pd.Timedelta(days=int(settings["rechallenge_gap_days"]))
    late = pd.Timedelta(days=int(settings["first_line_tmz_start_days"]))
    t = orders.loc[tmz, ["patient_id", "order_date", "end_date", "first_end"]]
    previous: str | None = None
    last: pd.Timestamp | None = None
    for idx, pid, start, end, first_end in t.itertuples(name=None):
        if pid != previous:
            previous, last = pid, None
        if last is None:
            # the first temozolomide: first line when it starts by RT end + the adjuvant delay
            rechallenge[idx] = pd.notna(first_end) and start > first_end + late
        elif start - last > gap:
            rechallenge[idx] = True
        end = end if pd.notna(end) and end >= start else start
        last = end if last is None else max(last, end)
    orders["rechallenge"] = rechallenge
    return orders.loc[keep | rechallenge]


def _lines(orders: pd.DataFrame, settings: dict[str, Any], confidence: float) -> list[dict]:
    """Group a patient's next-line orders into lines; one event per line start."""
    combine = pd.Timedelta(days=int(settings["combine_days"]))
    pause = pd.Timedelta(days=int(settings["line_gap_days"]))
    events: list[dict] = []
    narrow = orders[["patient_id", "medication_id", "order_date", "drug_name", "drug_class", "rechallenge"]]
    previous: str | None = None
    line: dict | None = None
    last: pd.Timestamp | None = None
    for row in narrow.sort_values(["patient_id", "order_date", "medication_id"], kind="stable").itertuples(index=False):
        pid = row.patient_id
        if pid != previous:
            previous, line, last = pid, None, None
        cls, date = row.drug_class, row.order_date
        new_class = line is not None and cls not in line["classes"] and date > line["start"] + combine
        restart = last is not None and date - last > pause
        tmz_restart = bool(row.rechallenge) and (line is None or "temozolomide" not in line["classes"]
                                                  or restart)
        if line is None or new_class or restart or (tmz_restart and date > line["start"] + combine):
            line = {"start": date, "classes": [cls], "orders": [row]}
            events.append(line | {"patient_id": pid})
        elif cls not in line["classes"]:
            line["classes"].append(cls)
            line["orders"].append(row)
        last = date if last is None else max(last, date)
    out = []
    for ln in events:
        first = ln["orders"][0]
        classes = ln["classes"]
        if "bevacizumab" in classes:
            kind = "next_line_bevacizumab"
        elif classes == ["temozolomide"]:
            kind = "temozolomide_rechallenge"
        else:
            kind = "next_line_therapy"
        drugs = "; ".join(f"{o.medication_id} {' '.join(str(o.drug_name).split())[:80]} ({o.drug_class})"
                          for o in ln["orders"])
        out.append({"patient_id": ln["patient_id"], "source": SOURCE, "event_date": ln["start"], "kind": kind,
                    "ref_id": str(first.medication_id),
                    "evidence": f"new line started: {drugs}"[:300], "value": np.nan, "confidence": confidence})
    return out


def _procedure_events(procs: pd.DataFrame, patients: pd.DataFrame, rules: TreatmentRules,
                      settings: dict[str, Any]) -> list[dict]:
    """Re-resections after the first surgery and re-irradiation after the first RT course."""
    if procs.empty:
        return []
    kind = procedure_kind(procs["name"], procs["code"], rules)
    p = patients.drop_duplicates("patient_id").set_index("patient_id")
    found = procs.assign(kind=kind).loc[kind.notna()]
    surgery = found["patient_id"].map(p["surgery_date"].fillna(p["diagnosis_date"]))
    rt_end = found["patient_id"].map(_first_line_end(patients, settings))
    day = found["procedure_date"]
    after_surgery = surgery.isna() | (day > surgery + pd.Timedelta(days=int(settings["first_surgery_days"])))
    after_rt = rt_end.isna() | (day > rt_end + pd.Timedelta(days=int(settings["first_rt_days"])))
    # A re-resection is a surgery after the first one; it is second line only once first line has ended.
    ok = (((found["kind"] == "re_resection") & after_surgery & after_rt)
          | ((found["kind"] == "re_irradiation") & after_rt))
    found = found.loc[ok].sort_values(["patient_id", "procedure_date", "procedure_id"], kind="stable")
    found = found.drop_duplicates(["patient_id", "procedure_date", "kind"])
    conf = float(settings["confidence_procedure"])
    return [{"patient_id": r.patient_id, "source": SOURCE, "event_date": r.procedure_date, "kind": r.kind,
             "ref_id": str(r.procedure_id),
             "evidence": f"{r.kind.replace('_', '-')}: {r.procedure_id} {' '.join(str(r.name).split())[:80]} {r.code}"
             .strip()[:300], "value": np.nan, "confidence": conf}
            for r in found.itertuples(index=False)]


def extract(export: Any, config: Any) -> ExtractorResult:
    """Next-line therapy events of every patient in ``export`` (medications, and procedures when present)."""
    settings = config.section("treatment")
    _check_settings(settings)
    rules = load_rules()
    patients = export.table("patients")
    meds = export.table("medications")
    procs = export.table("procedures")
    first_end = _first_line_end(patients, settings) if not patients.empty else pd.Series(dtype="datetime64[ns]")
    orders = _drug_orders(meds, rules, first_end, settings) if not meds.empty else meds.iloc[:0]
    rows = _lines(orders, settings, float(settings["confidence_systemic"])) if not orders.empty else []
    rows += _procedure_events(procs, patients, rules, settings)
    columns = empty_frame("events").columns
    events = pd.DataFrame(rows, columns=columns) if rows else empty_frame("events")
    events = events.sort_values(["patient_id", "event_date", "ref_id"], kind="stable").reset_index(drop=True)
    per = count_per_patient(export.patient_ids, next_line_orders=orders["patient_id"] if not orders.empty else [],
                            events=events["patient_id"])
    return ExtractorResult(events=events, counts=totals(per), patient_counts=per)
