"""Screening of parsed steroid orders: what cannot be used goes to the quarantine with its reason.

An order is quarantined, never guessed, when its dose could not be read (:mod:`.doses`), its dose is
above a plausible maximum, it ends before it starts, or it lies outside the patient's record (long
before the diagnosis, after death). The first problem of a row is its reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pfs.extractors.steroid.drugs import SteroidRules
from pfs.extractors.steroid.evidence import fmt
from pfs.io.quarantine import COLUMNS as QUARANTINE_COLUMNS
from pfs.io.quarantine import MAX_VALUE_CHARS, REDACTED_COLUMNS

STAGE = "steroid"


def working_orders(parsed: pd.DataFrame, text: pd.DataFrame, drug: pd.Series, rules: SteroidRules) -> pd.DataFrame:
    """Numbers and flags of each order with its dexamethasone-equivalent mg/day (usual and peak).

    The text columns stay in ``text`` for the quarantine; the peak of a schedule (taper, dose pack) is its
    largest step.
    """
    s = parsed.drop(columns=["problem", "problem_column"])
    for col in ("patient_id", "medication_id", "order_date", "end_date", "_row"):
        s[col] = text[col].to_numpy()
    s["drug"] = drug.to_numpy()
    factor = {d: rules.dex_factor(d) for d in rules.equivalent_mg}
    s["dex_factor"] = s["drug"].map(factor).astype("float64")
    s["dex_mg_per_day"] = s["drug_mg_per_day"].to_numpy(dtype="float64") * s["dex_factor"].to_numpy()
    has_sched = s["schedule"].notna().to_numpy()
    peak = s["drug_mg_per_day"].to_numpy(dtype="float64").copy()
    if has_sched.any():
        peak[has_sched] = [max(mg for _, mg in sch) for sch in s["schedule"].to_numpy()[has_sched]]
    s["peak_dex_mg_per_day"] = peak * s["dex_factor"].to_numpy()
    return s


def quarantine_rows(s: pd.DataFrame, reason: pd.Series, column: pd.Series) -> pd.DataFrame:
    """Quarantine frame for rows of ``s`` with a non-null ``reason`` (values redacted for free text)."""
    bad = reason.notna()
    if not bad.any():
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "row" else object) for c in QUARANTINE_COLUMNS})
    b = s.loc[bad]
    cols = column[bad]
    values = [
        "<redacted>" if c in REDACTED_COLUMNS else ("" if pd.isna(v := b.at[i, c]) else str(v)[:MAX_VALUE_CHARS])
        for i, c in zip(b.index, cols, strict=True)
    ]
    return pd.DataFrame(
        {
            "table": "medications",
            "row": b["_row"].astype("int64").to_numpy(),
            "patient_id": b["patient_id"].astype(str).to_numpy(),
            "column": cols.to_numpy(),
            "value": values,
            "reason": reason[bad].to_numpy(),
            "stage": STAGE,
        }
    )


def screen(
    s: pd.DataFrame,
    problem: pd.Series,
    problem_column: pd.Series,
    patients: pd.DataFrame,
    settings: dict[str, Any],
) -> tuple[pd.Series, pd.Series]:
    """(reason, column) per steroid row for the quarantine; reason None for a usable row.

    The first problem of a row wins.
    """
    reason = problem.to_numpy(dtype=object).copy()
    usable = pd.isna(reason)
    reason[usable] = None
    column = np.where(usable, "", problem_column.to_numpy(dtype=object)).astype(object)

    def flag(mask: np.ndarray, why: np.ndarray | str, col: str) -> None:
        m = mask & usable
        if m.any():
            reason[m] = why if isinstance(why, str) else why[m]
            column[m] = col
            usable[m] = False

    peak = s["peak_dex_mg_per_day"].to_numpy(dtype="float64")
    mx = float(settings["max_mg_per_day"])
    high = peak > mx
    text = np.full(len(s), "", dtype=object)
    text[high] = [
        f"dose of {fmt(x)} mg/day dexamethasone-equivalent is above the plausible maximum of {mx:g}"
        for x in peak[high]
    ]
    flag(high, text, "dose")
    order = s["order_date"].to_numpy(dtype="datetime64[ns]")
    end = s["end_date"].to_numpy(dtype="datetime64[ns]")
    flag(~np.isnat(end) & (end < order), "end_date before order_date", "end_date")
    p = patients.set_index("patient_id")
    pos = p.index.get_indexer(s["patient_id"])
    known = pos >= 0  # load_export guarantees it; a hand-built export may not
    anchor = np.where(
        known, p["diagnosis_date"].fillna(p["surgery_date"]).to_numpy(dtype="datetime64[ns]")[pos], np.datetime64("NaT")
    )
    lead = np.timedelta64(int(settings["record_lead_days"]), "D")
    flag(
        ~np.isnat(anchor) & (order < anchor - lead),
        f"order_date more than {int(settings['record_lead_days'])} days before the diagnosis "
        "(outside the patient's record)",
        "order_date",
    )
    death = np.where(known, p["death_date"].to_numpy(dtype="datetime64[ns]")[pos], np.datetime64("NaT"))
    flag(~np.isnat(death) & (order > death), "order_date after the death_date", "order_date")
    return pd.Series(reason, index=s.index, dtype=object), pd.Series(column, index=s.index, dtype=object)
