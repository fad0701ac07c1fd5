"""What the list and the patient page show, as plain data (the JSON API returns the same)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from pfs.review import db
from pfs.review.evidence import label_spans, segments
from pfs.review.run import SOURCES, Run

SORTS = ("patient_id", "reconciled", "reconciled_date", "status", "disagree")
FILTERS = ("all", "disagree", "unreviewed", "mine")
_TREATMENT_DATES = {"surgery_date": "Surgery"}


def _sorted(frame: pd.DataFrame, *cols: str) -> pd.DataFrame:
    present = [c for c in cols if c in frame.columns]
    return frame.sort_values(present, kind="stable") if present and len(frame) else frame


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict("records") if len(frame) else []


def patient_list(run: Run, db_path: Path, reviewer: str | None, sort: str = "patient_id", desc: bool = False,
                 filt: str = "all", offset: int = 0, limit: int = 100, query: str = "") -> dict[str, Any]:
    """One page of the patient list, with the total after filtering (sort and filter are whitelisted)."""
    status, mine = db.status_by_patient(db_path, reviewer)
    frame = run.summary
    st = frame["patient_id"].map(status).fillna("unreviewed")
    keep = pd.Series(True, index=frame.index)
    if filt == "disagree":
        keep &= frame["disagree"]
    elif filt == "unreviewed":
        keep &= st == "unreviewed"
    elif filt == "mine":
        keep &= frame["patient_id"].isin(mine)
    if query:
        keep &= frame["patient_id"].str.contains(query, regex=False, case=False)
    frame = frame.assign(status=st)[keep]
    if sort != "patient_id":
        frame = frame.sort_values([sort, "patient_id"], ascending=[not desc, True], kind="stable")
    elif desc:
        frame = frame.iloc[::-1]
    ids = frame["patient_id"].tolist()
    page = frame.iloc[offset: offset + limit]
    cols = ["patient_id", "reconciled", "reconciled_date", "status", "disagree"]
    cols += [c for m in SOURCES for c in (m, f"{m}_date") if m in page.columns]
    rows = page[cols].to_dict("records")
    for r in rows:
        r["disagree"] = bool(r["disagree"])
    return {"total": len(ids), "offset": offset, "limit": limit, "patients": rows, "order": ids}


def _neighbours(order: list[str], patient_id: str) -> tuple[str | None, str | None]:
    try:
        i = order.index(patient_id)
    except ValueError:
        return (None, order[0] if order else None)
    return (order[i - 1] if i > 0 else None, order[i + 1] if i + 1 < len(order) else None)


def _candidates(run: Run, pid: str, rec: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every source event, with the reconciled status and rule of the group it went into."""
    by_ref: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rec:
        for ref in str(r.get("ref_ids", "")).split(","):
            by_ref[(ref.strip(), r["event_date"])] = r
            by_ref.setdefault((ref.strip(), ""), r)
    out = []
    for ev in _records(_sorted(run.patient_rows("events", pid), "event_date", "source")):
        group = by_ref.get((ev["ref_id"], ev["event_date"])) or by_ref.get((ev["ref_id"], ""))
        out.append({**ev, "status": group["status"] if group else "", "rule": group["rule"] if group else ""})
    return out


def _report_views(run: Run, db_path: Path, pid: str, deciding: set[str]) -> list[dict[str, Any]]:
    labels = {r["report_id"]: r for r in _records(run.patient_rows("report_labels", pid))}
    texts = db.source_rows(db_path, "reports", pid)
    reports = []
    seen = set()
    for t in _records(texts):
        lab = labels.get(t["report_id"], {})
        spans = label_spans(t["text"], lab) if lab else []
        reports.append({"report_id": t["report_id"], "report_date": t["report_date"], "procedure": t["procedure"],
                        "label": lab.get("label", ""), "rule": lab.get("rule", ""), "bt_rads": lab.get("bt_rads", ""),
                        "evidence_sentence": lab.get("evidence_sentence", ""), "section": lab.get("section", ""),
                        "highlighted": bool(spans), "segments": segments(t["text"], spans),
                        "deciding": t["report_id"] in deciding, "has_text": True})
        seen.add(t["report_id"])
    for rid, lab in labels.items():  # labelled but the text was not copied (export moved or unreadable)
        if rid not in seen:
            reports.append({"report_id": rid, "report_date": lab.get("report_date", ""), "procedure": "",
                            "label": lab.get("label", ""), "rule": lab.get("rule", ""),
                            "bt_rads": lab.get("bt_rads", ""), "evidence_sentence": lab.get("evidence_sentence", ""),
                            "section": lab.get("section", ""), "highlighted": False, "segments": [],
                            "deciding": rid in deciding, "has_text": False})
    # The reports the accepted event rests on first: they are what the reviewer checks.
    return sorted(reports, key=lambda r: (not r["deciding"], r["report_date"], r["report_id"]))


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


def patient_view(run: Run, db_path: Path, pid: str, order: list[str] | None = None,
                 reference: pd.DataFrame | None = None) -> dict[str, Any]:
    """Timeline data and evidence for one patient (the patient must exist in the run)."""
    endpoints = {r["method"]: r for r in _records(run.patient_rows("endpoints", pid))}
    first = endpoints.get("reconciled") or next(iter(endpoints.values()))
    rec = _records(_sorted(run.patient_rows("reconciled_events", pid), "event_date"))
    accepted = [r for r in rec if r.get("status") == "accepted"]
    deciding = {x.strip() for r in accepted for x in str(r.get("ref_ids", "")).split(",")}
    candidates = _candidates(run, pid, rec)
    patient = db.patient_dates(db_path, pid)
    treatments = []
    if patient.get("surgery_date"):
        treatments.append(("Surgery", patient["surgery_date"], patient["surgery_date"]))
    if patient.get("rt_start_date"):
        treatments.append(("Radiotherapy", patient["rt_start_date"], patient.get("rt_end_date", "")))
    for col, value in patient.items():  # e.g. a second-line start date, when the export has one
        if col.endswith("_date") and value and col not in (
                "diagnosis_date", "surgery_date", "rt_start_date", "rt_end_date", "last_followup_date", "death_date"):
            treatments.append((col.removesuffix("_date").replace("_", " ").capitalize(), value, value))
    courses = _records(_sorted(run.patient_rows("steroid_courses", pid), "start_date"))
    daily = run.patient_rows("steroid_daily", pid)
    dose_steps = [(r["start_date"], r["end_date"], _float(r.get("dex_eq_mg_per_day")), "") for r in _records(daily)]
    volumes = _records(_sorted(run.patient_rows("volumes", pid), "study_date"))
    for v in volumes:
        v["qc_image"] = (run.masks_dir / pid / f"{v['study_id']}_qc.png").exists()
    volume_points = [(v["study_date"], v["study_date"], _float(v.get("et_volume_ml")), v.get("rano_state", ""))
                     for v in volumes if v.get("et_volume_ml", "") != ""]
    reports = _report_views(run, db_path, pid, deciding)
    orders = _records(db.source_rows(db_path, "orders", pid))
    reviews = _records(db.reviews(db_path, pid))
    ref = None
    if reference is not None and pid in reference.index:
        ref = {k: ("" if pd.isna(v) else str(v)) for k, v in reference.loc[pid].items()}
    death = first.get("death_date", "")
    censor = first.get("last_followup_date", "")
    rec_date = endpoints.get("reconciled", {}).get("progression_date", "")
    prev_id, next_id = _neighbours(order or run.summary["patient_id"].tolist(), pid)
    all_dates = [first.get("index_date", ""), censor, death, patient.get("diagnosis_date", ""),
                 *(t[1] for t in treatments), *(t[2] for t in treatments), *(c["event_date"] for c in candidates),
                 *(v["study_date"] for v in volumes), *(s[1] for s in dose_steps)]
    return {"patient_id": pid, "index_date": first.get("index_date", ""), "death_date": death,
            "censor_date": censor, "reconciled_date": rec_date,
            "reconciled_progressed": endpoints.get("reconciled", {}).get("progressed", ""),
            "endpoints": endpoints, "treatments": treatments, "patient": patient, "candidates": candidates,
            "reconciled_events": rec, "deciding_rule": accepted[0]["rule"] if accepted else "",
            "reports": reports, "courses": courses, "orders": orders, "dose_steps": dose_steps, "volumes": volumes,
            "volume_points": volume_points, "reviews": reviews, "reference": ref, "previous_id": prev_id,
            "next_id": next_id, "all_dates": [d for d in all_dates if d]}
