"""Progression events from labelled reports, with a contradiction rule against false alarms.

A report labelled progression is an event unless the patient's course contradicts it: a report
labelled treatment effect or improved within ``contradiction_window_days`` after it (the
"progression" was pseudoprogression or responded, so it was not progression). Event date = report
date: RANO 2.0 dates a confirmed progression to its first scan.

What the report saw is reported whenever it was written: the pseudoprogression window and the index
date are clinical decisions of the reconciler (:mod:`pfs.reconcile.window`, :mod:`pfs.reconcile.endpoints`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pfs.vocab import ReportLabel, Source

_ASSESSED = {ReportLabel.PROGRESSION, ReportLabel.STABLE, ReportLabel.IMPROVED, ReportLabel.TREATMENT_EFFECT,
             ReportLabel.INDETERMINATE}
#: Confidence of an event by how firmly the deciding sentence said it (labels.DEFINITE ... POSSIBLE).
_CONFIDENCE = {3: 0.9, 2: 0.8, 1: 0.6, 0: 0.6}


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _bump(counts: dict[str, int], per_patient: dict[str, dict[str, int]] | None, pid: str, key: str) -> None:
    counts[key] += 1
    if per_patient is not None:
        mine = per_patient.setdefault(str(pid), {})
        mine[key] = mine.get(key, 0) + 1


def progression_events(labels: pd.DataFrame, patients: pd.DataFrame, settings: dict[str, Any],
                       per_patient: dict[str, dict[str, int]] | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """Events (events.json columns) from report labels; also counts of what was dropped and why.

    ``labels`` needs patient_id, report_id, report_date, label, rule, evidence_sentence, certainty.
    ``per_patient``, when given, receives the same counts for each patient.
    """
    counts = {"events_candidates": 0, "events_contradicted": 0}
    columns = ["patient_id", "source", "event_date", "kind", "ref_id", "evidence", "value", "confidence"]
    if labels.empty:
        return pd.DataFrame(columns=columns), counts
    lab = labels.loc[labels["label"].isin([str(x) for x in _ASSESSED]) & labels["report_date"].notna()]
    lab = lab.sort_values(["patient_id", "report_date", "report_id"], kind="stable")
    rows = []
    contra = set(settings["contradicting_labels"])
    window = pd.Timedelta(days=settings["contradiction_window_days"])
    for pid, group in lab.groupby("patient_id", sort=True):
        dates = group["report_date"].to_numpy()
        labels_ = group["label"].to_numpy()
        for row in group.itertuples(index=False):
            if row.label != ReportLabel.PROGRESSION:
                continue
            _bump(counts, per_patient, pid, "events_candidates")
            later = (dates > np.datetime64(row.report_date)) & (dates <= np.datetime64(row.report_date + window))
            if any(lbl in contra for lbl in labels_[later]):
                _bump(counts, per_patient, pid, "events_contradicted")
                continue
            confidence = _CONFIDENCE.get(int(row.certainty), 0.6)
            rows.append({
                "patient_id": pid,
                "source": str(Source.NLP),
                "event_date": row.report_date,
                "kind": "report_progression",
                "ref_id": row.report_id,
                "evidence": _one_line(f"{row.label} [{row.rule}] {row.evidence_sentence}"),
                "value": np.nan,
                "confidence": round(float(confidence), 3),
            })
    return pd.DataFrame(rows, columns=columns), counts
