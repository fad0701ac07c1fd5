"""The pseudoprogression window: one key (``reconcile.guideline.pseudoprogression_days``), decided here.

Extractors report what they saw; whether a progression call falls where enlargement is often
treatment effect (RANO: within 12 weeks of the end of chemoradiation; RANO 2.0: preliminary until a
follow-up scan confirms it) is decided by the reconciler alone, for the reconciled endpoint
(:func:`pfs.reconcile.guideline.guideline`) and for each source's own endpoint (:func:`single_source`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from pfs.reconcile.chain import ACCEPTED, REJECTED, by_date, collapse, dates, frame, prepare, row


def window_bounds(patients: pd.DataFrame, cfg: dict[str, Any]) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
    """Per patient with an RT end date: (first, last day) of the pseudoprogression window.

    It closes ``pseudoprogression_days`` after the end of radiotherapy and opens at RT start (treatment
    effect can begin during chemoradiation) or, with ``window_opens = "surgery"``, at surgery: before the
    post-RT baseline, enhancement is post-surgical change as often as tumour.
    """
    days = pd.Timedelta(days=int(cfg["pseudoprogression_days"]))
    rt_ends, rt_starts, surgeries = (dates(patients, c) for c in ("rt_end_date", "rt_start_date", "surgery_date"))
    out = {}
    for pid, rt_end in rt_ends.items():
        start = min(rt_end, rt_starts.get(pid, rt_end))
        if cfg["window_opens"] == "surgery" and pid in surgeries:
            start = min(start, surgeries[pid])
        out[pid] = (start, rt_end + days)
    return out


def single_source(events: pd.DataFrame, patients: pd.DataFrame, settings: dict[str, Any],
                  assessments: pd.DataFrame | None = None) -> pd.DataFrame:
    """One source's progression dates with the window applied (reconciled_events columns).

    A call inside the window (unless of an exempt kind, e.g. a new distant lesion, or one its extractor
    already confirmed) is preliminary: accepted, dated to its own day, when the same source still sees
    progression ``confirm_min_days``..``confirm_max_days`` later (another event, or in ``assessments``
    a later study it reads as progression or as the same growth lasting) or the patient dies within
    ``confirm_max_days``; otherwise rejected as possible pseudoprogression. A call outside it stands.
    """
    from pfs.reconcile.strategies import section

    cfg = section(settings, "guideline")
    cmin, cmax = pd.Timedelta(days=int(cfg["confirm_min_days"])), pd.Timedelta(days=int(cfg["confirm_max_days"]))
    exempt = set(cfg["exempt_kinds"]) | set(cfg["confirmed_kinds"])
    bounds, deaths = window_bounds(patients, cfg), dates(patients, "death_date")
    growing: dict[tuple[str, str], list[pd.Timestamp]] = {}
    if assessments is not None and not assessments.empty:
        still = assessments.loc[assessments["assessment"].isin(["progression", "after_progression"])]
        for (pid, src), g in still.groupby(["patient_id", "source"]):
            growing[(str(pid), str(src))] = sorted(g["assessment_date"])
    rows: list[dict] = []
    for pid, chain in prepare(events).items():
        first, last = bounds.get(pid, (None, None))
        death = deaths.get(pid)
        for date, day in by_date(chain):
            if first is None or not first <= date <= last or {e["kind"] for e in day} & exempt:
                rows.append(row(pid, date, ACCEPTED, "single source: outside the pseudoprogression window", day))
                continue
            later = [e for e in chain if date + cmin <= e["event_date"] <= date + cmax]
            seen = [d for src in {e["source"] for e in day} for d in growing.get((str(pid), src), [])
                    if date + cmin <= d <= date + cmax]
            if later:
                rows.append(row(pid, date, ACCEPTED, "single source: inside the pseudoprogression window, confirmed "
                                f"on {later[0]['event_date']:%Y-%m-%d}", day + later[:1]))
            elif seen:
                rows.append(row(pid, date, ACCEPTED, "single source: inside the pseudoprogression window, confirmed "
                                f"by its study of {min(seen):%Y-%m-%d} (progression still seen)", day))
            elif cfg["death_confirms"] and death is not None and date <= death <= date + cmax:
                rows.append(row(pid, date, ACCEPTED, "single source: inside the pseudoprogression window, confirmed "
                                f"by death on {death:%Y-%m-%d}", day))
            else:
                rows.append(row(pid, date, REJECTED, "single source: inside the pseudoprogression window, not "
                                f"confirmed within {cmax.days} days (possible pseudoprogression)", day))
    return collapse(frame(rows))
