"""From rule firings to steroid progression events: one per course.

The rules (:mod:`.rules`) often see the same episode several times (a restart is also a rise and soon a
burst of prescriptions); this stage keeps the clinically meaningful one and ties it to the order behind it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pfs.extractors.steroid.evidence import evidence_text
from pfs.extractors.steroid.exposure import to_dates
from pfs.extractors.steroid.rules import RULE_NAMES
from pfs.io.schema import conform, empty_frame

SOURCE = "steroid"
_KIND_PRIORITY = {"new_course": 0, "dose_rise": 1, "prescription_frequency": 2}


def build_events(
    fired: list[pd.DataFrame],
    o: pd.DataFrame,
    pids: np.ndarray,
    settings: dict[str, Any],
    courses: pd.DataFrame,
) -> pd.DataFrame:
    """Turn rule firings into events: the order behind each, a one-line evidence, confidence.

    Each firing is placed in its counted course (``courses``); the pseudoprogression window is the
    reconciler's (:mod:`pfs.reconcile.window`). With ``one_event_per_course`` only
    the first firing of a course is kept: the rules often see the same episode (a restart is also a
    rise and soon a burst of prescriptions).
    """
    frames = [f for f in fired if not f.empty]
    if not frames:
        return empty_frame("events")
    ev = pd.concat(frames, ignore_index=True)
    ev["prio"] = ev["kind"].map(_KIND_PRIORITY)
    ev = ev.sort_values(["pcode", "day", "prio"], kind="stable")
    # A rise that is the very start of a new course is the same finding: keep the new_course event.
    ev = ev.drop_duplicates(["pcode", "day"], keep="first")
    cc = courses[["pcode", "start", "stop"]].assign(cid=np.arange(len(courses))).sort_values("start")
    ev = pd.merge_asof(
        ev.sort_values("day", kind="stable"),
        cc,
        left_on="day",
        right_on="start",
        by="pcode",
        direction="backward",
    )
    inside = ev["cid"].notna() & (ev["day"] <= ev["stop"])
    ev["cid"] = np.where(inside, ev["cid"], -1 - np.arange(len(ev)))
    if settings["one_event_per_course"]:
        ev = ev.sort_values(["pcode", "day", "prio"], kind="stable").drop_duplicates("cid", keep="first")
    ev = ev.drop(columns=["start", "stop", "cid"])
    if ev.empty:
        return empty_frame("events")
    cnt = o.loc[o["counted"] & ~o["duplicate"]]
    ords = pd.DataFrame(
        {
            "pcode": cnt["pcode"].to_numpy(dtype="int64"),
            "day": cnt["start_day"].to_numpy(dtype="int64"),
            "oidx": cnt.index.to_numpy(),
            "mg": cnt["dex_mg_per_day"].to_numpy(dtype="float64"),
        }
    )
    ords = ords.sort_values(["day", "mg"], kind="stable")  # the largest dose of a day is the last one
    ev = ev.sort_values("day", kind="stable")
    ev = pd.merge_asof(ev, ords[["pcode", "day", "oidx"]], on="day", by="pcode", direction="backward")
    ev = ev.loc[ev["oidx"].notna()].copy()
    ev["oidx"] = ev["oidx"].astype("int64")
    src = o.loc[ev["oidx"].to_numpy()]
    kind = ev["kind"].to_numpy()
    evidence = evidence_text(
        kind, src, ev["value"], ev["detail"].to_numpy(dtype="float64"), int(settings["frequency_window_days"])
    )
    conf = {k: float(settings[f"confidence_{k}"]) for k in RULE_NAMES}
    out = pd.DataFrame(
        {
            "patient_id": pids[ev["pcode"].to_numpy(dtype="int64")],
            "source": SOURCE,
            "event_date": to_dates(ev["day"].to_numpy()),
            "kind": kind,
            "ref_id": src["medication_id"].astype(str).to_numpy(),
            "evidence": evidence,
            "value": ev["value"].to_numpy(dtype="float64"),
            "confidence": [conf[k] for k in kind],
        }
    )
    out = out.sort_values(["patient_id", "event_date", "kind"], kind="stable").reset_index(drop=True)
    return conform(out, "events")
