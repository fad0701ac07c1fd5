"""The ``steroid_courses`` and ``steroid_daily`` output tables, and what each course was made of.

A course is a stretch of days on steroids; each lists its orders, first order, drugs and (for discounted
courses) why they were discounted, so every event can be traced back to a prescription.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pfs.extractors.steroid.exposure import to_dates
from pfs.io.schema import empty_frame


def annotate_courses(courses: pd.DataFrame, orders: pd.DataFrame) -> pd.DataFrame:
    """Add the orders, first order, drugs and discount reasons of each course."""
    c = courses.reset_index(drop=True).copy()
    if c.empty:
        for col, dt in (
            ("n_orders", "int64"),
            ("first_oidx", "int64"),
            ("drugs", object),
            ("reasons", object),
            ("first_medication_id", object),
        ):
            c[col] = pd.Series(dtype=dt)
        return c
    n = len(c)
    if orders.empty:
        c["n_orders"], c["first_oidx"], c["drugs"], c["reasons"], c["first_medication_id"] = 0, -1, "", "", ""
        return c
    # Course of each order by binary search on (patient, start day): courses are sorted that way.
    base = int(min(c["start"].min(), orders["start_day"].min()))
    ckey = (c["pcode"].to_numpy(dtype="int64") << 22) | (c["start"].to_numpy(dtype="int64") - base)
    opc = orders["pcode"].to_numpy(dtype="int64")
    ostart = orders["start_day"].to_numpy(dtype="int64")
    cid = np.searchsorted(ckey, (opc << 22) | (ostart - base), side="right") - 1
    safe = np.maximum(cid, 0)
    ok = (cid >= 0) & (c["pcode"].to_numpy()[safe] == opc) & (ostart <= c["stop"].to_numpy()[safe])
    cid, ostart = cid[ok], ostart[ok]
    mg = orders["dex_mg_per_day"].to_numpy(dtype="float64")[ok]
    # First order of a course: earliest start, the largest dose on that day.
    order = np.lexsort((-mg, ostart, cid))
    first_pos, first_at = np.unique(cid[order], return_index=True)
    first_rows = np.flatnonzero(ok)[order[first_at]]
    first_oidx = np.full(n, -1, dtype="int64")
    first_oidx[first_pos] = orders.index.to_numpy()[first_rows]
    first_mid = np.full(n, "", dtype=object)
    first_mid[first_pos] = orders["medication_id"].astype(str).to_numpy()[first_rows]
    c["n_orders"] = np.bincount(cid, minlength=n).astype("int64")
    c["first_oidx"] = first_oidx
    c["first_medication_id"] = first_mid
    key = pd.Series(cid)
    c["drugs"] = _joined_sets(key, pd.Series(orders["drug"].to_numpy()[ok])).reindex(range(n)).fillna("").to_numpy()
    reasons = pd.Series(orders["discount_reason"].fillna("").to_numpy()[ok])
    c["reasons"] = _joined_sets(key, reasons).reindex(range(n)).fillna("").to_numpy()
    return c


def _joined_sets(key: pd.Series, values: pd.Series) -> pd.Series:
    """Per key, the sorted distinct non-blank values joined by '; ' (bit masks: no Python loop per key)."""
    codes, uniques = pd.factorize(values)
    if len(uniques) > 62:  # more distinct values than bits: the plain (slower) way
        return (
            pd.DataFrame({"k": key.to_numpy(), "v": values.to_numpy()})
            .groupby("k")["v"]
            .agg(lambda x: "; ".join(sorted(set(map(str, x)) - {""})))
        )
    order = np.argsort(uniques.astype(str))
    rank = np.empty(len(order), dtype="int64")
    rank[order] = np.arange(len(order))
    bits = np.where(codes >= 0, np.left_shift(1, rank[np.maximum(codes, 0)]), 0).astype("int64")
    pairs = pd.DataFrame({"k": key.to_numpy(), "b": bits}).drop_duplicates()
    mask = pairs.groupby("k")["b"].sum()
    labels = {
        m: "; ".join(str(uniques[i]) for i in order if m >> int(rank[i]) & 1 and str(uniques[i])) for m in mask.unique()
    }
    return mask.map(labels)


def courses_table(counted: pd.DataFrame, disc: pd.DataFrame, pids: np.ndarray, peri_end: np.ndarray) -> pd.DataFrame:
    parts = []
    for c, discounted in ((counted, 0), (disc, 1)):
        if c.empty:
            continue
        pe = peri_end[c["pcode"].to_numpy(dtype="int64")]
        parts.append(
            pd.DataFrame(
                {
                    "pcode": c["pcode"].to_numpy(dtype="int64"),
                    "start": c["start"].to_numpy(dtype="int64"),
                    "stop": c["stop"].to_numpy(dtype="int64"),
                    "peak": c["peak"].to_numpy(dtype="float64"),
                    "start_level": c["start_level"].to_numpy(dtype="float64"),
                    "cumulative": c["cumulative_mg"].to_numpy(dtype="float64"),
                    "free": c["free_before"].to_numpy(dtype="float64") if not discounted else np.nan,
                    "n_orders": c["n_orders"].to_numpy(dtype="int64"),
                    "first_oidx": c["first_oidx"].to_numpy(dtype="int64"),
                    "drugs": c["drugs"].to_numpy(),
                    "first_mid": c["first_medication_id"].to_numpy(),
                    "discounted": discounted,
                    "reason": c["reasons"].to_numpy() if discounted else "",
                    "phase": np.where(
                        ~np.isnan(pe) & (c["start"].to_numpy() <= np.nan_to_num(pe)),
                        "peri_treatment",
                        "post_treatment",
                    ),
                }
            )
        )
    if not parts:
        return empty_frame("steroid_courses")
    t = pd.concat(parts, ignore_index=True).sort_values(["pcode", "start", "discounted"], kind="stable")
    t = t.reset_index(drop=True)
    seq = t.groupby("pcode").cumcount() + 1
    pid = pids[t["pcode"].to_numpy()]
    return pd.DataFrame(
        {
            "patient_id": pid,
            "course_id": (pd.Series(pid) + "-SC" + seq.astype(str).str.zfill(2).to_numpy()).to_numpy(),
            "start_date": to_dates(t["start"].to_numpy()),
            "end_date": to_dates(t["stop"].to_numpy()),
            "days": (t["stop"] - t["start"] + 1).to_numpy(dtype="int64"),
            "peak_dex_eq_mg_per_day": t["peak"].to_numpy(),
            "start_dex_eq_mg_per_day": t["start_level"].to_numpy(),
            "cumulative_dex_eq_mg": t["cumulative"].round(4).to_numpy(),
            "steroid_free_days_before": t["free"].to_numpy(),
            "n_orders": t["n_orders"].to_numpy(),
            "first_medication_id": t["first_mid"].to_numpy(),
            "drugs": t["drugs"].to_numpy(),
            "phase": t["phase"].to_numpy(),
            "discounted": t["discounted"].to_numpy(dtype="int64"),
            "discount_reason": t["reason"].to_numpy(),
        }
    )


def daily_table(runs: pd.DataFrame, pids: np.ndarray) -> pd.DataFrame:
    """Run-length daily exposure: one row per stretch of days with the same total dose (days off omitted)."""
    daily = runs.loc[runs["mg_all"] > 0]
    return pd.DataFrame(
        {
            "patient_id": pids[daily["pcode"].to_numpy(dtype="int64")],
            "start_date": to_dates(daily["start"].to_numpy()),
            "end_date": to_dates(daily["stop"].to_numpy()),
            "days": (daily["stop"] - daily["start"] + 1).to_numpy(dtype="int64"),
            "dex_eq_mg_per_day": daily["mg_all"].to_numpy(dtype="float64"),
            "counted_dex_eq_mg_per_day": daily["mg_counted"].to_numpy(dtype="float64"),
            "active_orders": daily["n_orders"].to_numpy(dtype="int64"),
        }
    )
