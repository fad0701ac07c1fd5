"""The evidence chain shared by every strategy: events as plain records, reconciled rows, their frame.

A reconciled row (columns :data:`RECONCILED_COLUMNS`) is one patient and candidate date:

- ``status`` is ``accepted`` (a progression date) or ``rejected`` (a signal set aside, kept so the
  report can show why); :func:`pfs.reconcile.build_endpoints` uses accepted rows only and takes the
  first one on or after the index date.
- ``rule`` says which rule decided; ``sources``, ``kinds``, ``ref_ids`` and ``evidence`` keep the
  evidence chain of every contributing event (``evidence`` joins one line per event with `` | ``);
  context that did not contribute (the other source's reading of the same study) is appended to
  ``evidence`` as lines starting with ``context:`` and counts in no other column.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

RECONCILED_COLUMNS = [
    "patient_id",
    "event_date",
    "status",
    "rule",
    "sources",
    "kinds",
    "ref_ids",
    "n_events",
    "evidence",
    "note",
]
ACCEPTED = "accepted"
REJECTED = "rejected"

Event = dict[str, Any]


def empty_reconciled() -> pd.DataFrame:
    """The reconciled-events frame with no rows but the right columns and dtypes."""
    out = pd.DataFrame({c: pd.Series(dtype="object") for c in RECONCILED_COLUMNS})
    out["event_date"] = pd.Series(dtype="datetime64[ns]")
    out["n_events"] = pd.Series(dtype="int64")
    return out


def row(pid: str, date: pd.Timestamp, status: str, rule: str, chain: list[Event], note: str = "",
        context: list[str] | None = None) -> dict:
    """One reconciled row; ``chain`` holds the contributing events in the order they are told."""
    lines = [e["line"] for e in chain] + [f"context: {c}" for c in context or []]
    return {
        "patient_id": pid,
        "event_date": date,
        "status": status,
        "rule": rule,
        "sources": ",".join(sorted({e["source"] for e in chain})),
        "kinds": ",".join(dict.fromkeys(e["kind"] for e in chain)),
        "ref_ids": ",".join(dict.fromkeys(e["ref_id"] for e in chain)),
        "n_events": len(chain),
        "evidence": " | ".join(lines),
        "note": note,
    }


def frame(rows: list[dict]) -> pd.DataFrame:
    if not rows:
        return empty_reconciled()
    out = pd.DataFrame(rows, columns=RECONCILED_COLUMNS)
    out["event_date"] = pd.to_datetime(out["event_date"])
    return out.sort_values(["patient_id", "event_date", "status"], kind="stable").reset_index(drop=True)


def prepare(events: pd.DataFrame) -> dict[str, list[Event]]:
    """Events per patient as plain records, sorted by date; same-day ties ordered by source and ref_id.

    Strategies walk each patient's short list in Python: pandas per-patient slicing costs ~1 ms a call,
    which made a thousand-patient cohort take tens of seconds.
    """
    ev = events.copy()
    for col in ("kind", "ref_id", "evidence"):
        if col not in ev:
            ev[col] = ""
        ev[col] = ev[col].fillna("").astype(str)
    ev["event_date"] = pd.to_datetime(ev["event_date"]).dt.normalize()
    ev = ev.dropna(subset=["patient_id", "event_date"])
    ev = ev.sort_values(["patient_id", "event_date", "source", "ref_id"], kind="stable")
    ev["line"] = (
        ev["source"].astype(str)
        + " "
        + ev["event_date"].dt.strftime("%Y-%m-%d")
        + " "
        + ev["ref_id"]
        + " ("
        + ev["kind"]
        + "): "
        + ev["evidence"]
    )
    out: dict[str, list[Event]] = {}
    cols = ["patient_id", "source", "event_date", "kind", "ref_id", "line"]
    for rec in ev[cols].to_dict("records"):
        out.setdefault(rec["patient_id"], []).append(rec)
    return out


def by_date(chain: list[Event]) -> list[tuple[pd.Timestamp, list[Event]]]:
    """Consecutive same-day groups of a date-sorted list."""
    groups: list[tuple[pd.Timestamp, list[Event]]] = []
    for e in chain:
        if groups and groups[-1][0] == e["event_date"]:
            groups[-1][1].append(e)
        else:
            groups.append((e["event_date"], [e]))
    return groups


def dates(patients: pd.DataFrame, column: str) -> dict[str, pd.Timestamp]:
    """Per patient, the date in ``column`` (patients without one are absent)."""
    if patients.empty or column not in patients:
        return {}
    s = patients.dropna(subset=[column]).drop_duplicates("patient_id").set_index("patient_id")[column]
    return {pid: pd.Timestamp(v) for pid, v in s.items()}


def collapse(out: pd.DataFrame) -> pd.DataFrame:
    """Accepted rows that land on the same date (e.g. two back-dated to one steroid increase) become one."""
    acc = out["status"] == ACCEPTED
    dup = out.loc[acc].duplicated(["patient_id", "event_date"], keep=False)
    if not dup.any():
        return out
    keep = out.loc[~acc | ~dup.reindex(out.index, fill_value=False)]
    merged = []
    for _, grp in out.loc[acc & dup.reindex(out.index, fill_value=False)].groupby(["patient_id", "event_date"]):
        first = grp.iloc[0].to_dict()
        first["sources"] = ",".join(sorted(set(",".join(grp["sources"]).split(","))))
        first["kinds"] = ",".join(dict.fromkeys(",".join(grp["kinds"]).split(",")))
        first["ref_ids"] = ",".join(dict.fromkeys(",".join(grp["ref_ids"]).split(",")))
        lines = list(dict.fromkeys(" | ".join(grp["evidence"]).split(" | ")))
        first["evidence"] = " | ".join(lines)
        first["n_events"] = sum(1 for line in lines if not line.startswith("context: "))
        first["rule"] = "; ".join(dict.fromkeys(grp["rule"]))
        first["note"] = "; ".join(n for n in dict.fromkeys(grp["note"]) if n)
        merged.append(first)
    return frame(keep.to_dict("records") + merged)
