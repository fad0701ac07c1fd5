"""Volumetric RANO 2.0 per patient: baseline, nadir, +40 % / +1 mL beyond the measurement uncertainty, new lesion.

Every onset of growth over the nadir is an event (growth that recedes, e.g. pseudoprogression, re-arms
the watch; a new lesion ends it); whether an onset inside the pseudoprogression window is confirmed by
the scans after it is the reconciler's decision (:mod:`pfs.reconcile.window`), which reads their
``rano_state`` (``after_progression`` while the growth lasts). Every study gets a ``rano_state`` so a
reader can follow the decision scan by scan in ``volumes.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pfs.extractors.imaging.segmenters.base import Lesion


@dataclass(frozen=True)
class RanoParams:
    baseline: str
    rise_fraction: float
    min_increase_ml: float
    new_lesion: bool
    new_lesion_min_ml: float
    new_lesion_mm: float
    follow_mm: float
    confidence_progression: float
    confidence_new_lesion: float

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> RanoParams:
        from pfs.exceptions import ConfigError

        if section["baseline"] not in ("post_op", "post_rt"):
            raise ConfigError(f"imaging.rano.baseline must be 'post_op' or 'post_rt', not {section['baseline']!r}")
        return cls(**{k: section[k] for k in cls.__dataclass_fields__})


def _d(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%d")


def _rise(v: float, nadir: float, nadir_date: pd.Timestamp) -> tuple[str, float]:
    if nadir > 0:
        pct = 100.0 * (v - nadir) / nadir
        return f"ET {nadir:.1f} → {v:.1f} mL ({pct:+.0f} % vs nadir {nadir:.1f} mL on {_d(nadir_date)})", pct
    return f"ET {nadir:.1f} → {v:.1f} mL (new enhancement; nadir 0.0 mL on {_d(nadir_date)})", float("nan")


def _bounds(st: pd.DataFrame) -> tuple[list[float], list[float]]:
    """Strict and lenient volume per study; the measured volume where a segmenter gives no uncertainty."""
    v = st["et_volume_ml"].astype(float)
    low = st["et_volume_low_ml"].astype(float) if "et_volume_low_ml" in st else v
    high = st["et_volume_high_ml"].astype(float) if "et_volume_high_ml" in st else v
    low = low.where(low.notna(), v).combine(v, min)
    high = high.where(high.notna(), v).combine(v, max)
    return low.tolist(), high.tolist()


def _baseline_index(dates: pd.Series, patient: pd.Series | None, p: RanoParams) -> int:
    def first_on_or_after(day) -> int | None:
        if day is None or pd.isna(day):
            return None
        hits = np.flatnonzero((dates >= day).to_numpy())
        return int(hits[0]) if hits.size else None

    surgery = None if patient is None else patient.get("surgery_date")
    rt_end = None if patient is None else patient.get("rt_end_date")
    if p.baseline == "post_rt":
        idx = first_on_or_after(rt_end)
        if idx is not None:
            return idx
    idx = first_on_or_after(surgery)
    return 0 if idx is None else idx


def assess_patient(studies: pd.DataFrame, lesions: dict[str, list[Lesion]], patient: pd.Series | None,
                   p: RanoParams) -> tuple[list[dict], dict[str, dict]]:
    """(events, per-study state) for one patient's segmented studies.

    ``studies`` holds study_id, study_date, et_volume_ml; ``patient`` the patients-table row.
    """
    st = studies.sort_values(["study_date", "study_id"], kind="stable").reset_index(drop=True)
    pid = str(st["patient_id"].iloc[0])
    states: dict[str, dict] = {}
    events: list[dict] = []
    if st.empty:
        return events, states
    b = _baseline_index(st["study_date"], patient, p)
    for i in range(b):
        states[st.at[i, "study_id"]] = {"rano_state": "pre_baseline"}
    low, high = _bounds(st)
    nadir, nadir_date = float(st.at[b, "et_volume_ml"]), st.at[b, "study_date"]
    nadir_low, nadir_high = low[b], high[b]
    states[st.at[b, "study_id"]] = {"rano_state": "baseline", "nadir_ml": nadir}
    # Only lesions of measurable size establish "known disease": a speck below new_lesion_min_ml that
    # grows later is still a new lesion when it first reaches that size.
    seen = [les.centroid_mm for les in lesions.get(st.at[b, "study_id"], []) if les.volume_ml >= p.new_lesion_min_ml]

    def event(i: int, kind: str, evidence: str, value: float, conf: float) -> None:
        events.append({"patient_id": pid, "source": "imaging", "event_date": st.at[i, "study_date"], "kind": kind,
                       "ref_id": st.at[i, "study_id"], "evidence": evidence, "value": value, "confidence": conf})

    # Every onset of growth is reported: whether it falls in the pseudoprogression window and needs a
    # later scan to confirm it is the reconciler's decision (pfs.reconcile.window), which reads the
    # following scans' states ("after_progression" while the growth lasts).
    done = growing = False
    for i in range(b + 1, len(st)):
        sid, date, v = st.at[i, "study_id"], st.at[i, "study_date"], float(st.at[i, "et_volume_ml"])
        if done:
            states[sid] = {"rano_state": "after_progression"}
            continue
        text, pct = _rise(v, nadir, nadir_date)
        state = {"nadir_ml": nadir, "change_vs_nadir_pct": pct}
        # A change that the measurement uncertainty could explain is no change: when the strict-lenient
        # ranges of this scan and of the nadir overlap, the rise is not progression, whatever its size.
        within = low[i] <= nadir_high and high[i] >= nadir_low
        state["change_within_uncertainty"] = bool(within)
        # The ~1 mL measurable-disease floor must be cleared between the conservative ends of both
        # measurements too (this scan's strict volume over the nadir's lenient one): on a small lesion a
        # segmenter's rim of partial-volume voxels is a large share, and its bias is not growth.
        meets = (v >= nadir * (1 + p.rise_fraction) and v - nadir >= p.min_increase_ml and not within
                 and low[i] - nadir_high >= p.min_increase_ml)
        new = []
        if p.new_lesion and seen:
            new = [les for les in lesions.get(sid, []) if les.volume_ml >= p.new_lesion_min_ml
                   and min(float(np.linalg.norm(np.subtract(les.centroid_mm, c))) for c in seen) > p.new_lesion_mm]
        if new:
            biggest = max(new, key=lambda les: les.volume_ml)
            event(i, "new_lesion", f"new enhancing lesion {biggest.volume_ml:.1f} mL, "
                  f">{p.new_lesion_mm:.0f} mm from every earlier lesion; {text}", pct, p.confidence_new_lesion)
            states[sid] = state | {"rano_state": "progression_new_lesion"}
            done = True
            continue
        if meets:
            if growing:  # the same growth, still there: it confirms the onset reported before
                states[sid] = state | {"rano_state": "after_progression"}
            else:
                event(i, "volumetric_progression", text, pct, p.confidence_progression)
                states[sid] = state | {"rano_state": "progression"}
                growing = True
            continue
        growing = False  # the growth has receded (pseudoprogression, or a response): watch again
        if v < nadir:
            nadir, nadir_date, nadir_low, nadir_high = v, date, low[i], high[i]
            state["rano_state"] = "new_nadir"
        else:
            state["rano_state"] = "stable"
        states[sid] = state
        seen.extend(les.centroid_mm for les in lesions.get(sid, []) if les.volume_ml >= p.new_lesion_min_ml)
    return events, states


def assess(volumes: pd.DataFrame, lesions: dict[str, list[Lesion]], patients: pd.DataFrame,
           p: RanoParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events, per-study RANO columns) for every patient in ``volumes``."""
    pts = patients.set_index("patient_id") if not patients.empty else pd.DataFrame()
    events: list[dict] = []
    rows: list[dict] = []
    for pid, group in volumes.groupby("patient_id", sort=True):
        patient = pts.loc[pid] if pid in pts.index else None
        ev, states = assess_patient(group, lesions, patient, p)
        events.extend(ev)
        rows.extend({"study_id": sid} | s for sid, s in states.items())
    cols = ["patient_id", "source", "event_date", "kind", "ref_id", "evidence", "value", "confidence"]
    ev_frame = pd.DataFrame(events, columns=cols)
    state_frame = pd.DataFrame(rows, columns=["study_id", "rano_state", "nadir_ml", "change_vs_nadir_pct",
                                              "change_within_uncertainty"])
    return ev_frame, state_frame
