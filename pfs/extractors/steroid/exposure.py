"""Daily dexamethasone-equivalent exposure per patient, and the courses it forms.

Orders become dose segments (one per order, or one per step of a taper or dose pack); a sweep over
the segments' start and stop days gives, per patient, the runs of days on which the total dose is
constant. That run-length series is exact (no per-day expansion), so a million orders cost a sort.
Days are integers (days since 1970-01-01) inside this module and dates at its borders.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: Doses are summed as integers of this many mg, so sums over thousands of orders are exact.
MG_QUANTUM = 1e-4
_EPOCH = np.datetime64("1970-01-01", "D")


def to_days(dates: pd.Series) -> np.ndarray:
    """Integer day numbers of a datetime64 Series (NaT -> a large negative sentinel)."""
    return dates.to_numpy(dtype="datetime64[D]").astype("int64")


def to_dates(days: np.ndarray | pd.Series) -> pd.Series:
    return pd.Series(np.asarray(days, dtype="int64").astype("datetime64[D]").astype("datetime64[ns]"))


def order_spans(orders: pd.DataFrame, settings: dict[str, Any]) -> pd.DataFrame:
    """Add ``start_day`` and ``stop_day`` (inclusive) to each order.

    The stop is the end_date when given (clipped to ``max_order_days``), shortened to the sig's own
    duration ('x 5 days', a taper's steps, a dose pack) when that is shorter; a single dose lasts
    one day; otherwise ``default_duration_days`` applies.
    """
    out = orders  # the caller's working frame: columns are added in place
    start = to_days(out["order_date"])
    has_end = out["end_date"].notna().to_numpy()
    end = np.where(has_end, to_days(out["end_date"].fillna(out["order_date"])), start)
    written = pd.to_numeric(out["duration_days"], errors="coerce").to_numpy(dtype="float64")
    written = np.where(np.isfinite(written) & (written >= 1), np.ceil(written), np.nan)
    default = start + int(settings["default_duration_days"]) - 1
    stop = np.where(has_end, end, np.where(np.isfinite(written), start + written - 1, default))
    stop = np.where(has_end & np.isfinite(written), np.minimum(stop, start + written - 1), stop)
    once = out["once"].fillna(False).to_numpy(dtype=bool)
    stop = np.where(once, start, stop)
    stop = np.minimum(stop, start + int(settings["max_order_days"]) - 1)
    out["start_day"] = start
    out["stop_day"] = np.maximum(stop, start).astype("int64")
    return out


def resolve_renewals(orders: pd.DataFrame) -> pd.DataFrame:
    """Stop each order where the next order of the same drug for the same patient starts.

    A renewal or a dose change supersedes the running order, so overlapping renewals are not
    counted twice. Orders of the same drug starting the same day with the same schedule are
    duplicates (``duplicate`` = True, the later one drops out); with different doses they are
    split doses taken together (e.g. 4 mg in the morning and 2 mg at night) and both count.
    """
    # Sort on integer codes (string sorts of a million ids are slow); input order breaks ties.
    dcode = pd.factorize(orders["drug"])[0]
    order = np.lexsort((np.arange(len(orders)), orders["start_day"].to_numpy(), dcode, orders["pcode"].to_numpy()))
    o = orders.iloc[order]
    pc, dc = o["pcode"].to_numpy(), dcode[order]
    same = (pc[1:] == pc[:-1]) & (dc[1:] == dc[:-1])
    start = o["start_day"].to_numpy(dtype="int64")
    stop = o["stop_day"].to_numpy(dtype="int64")
    mg = o["dex_mg_per_day"].to_numpy()
    sched = pd.factorize(o["schedule"])[0]
    dup = np.r_[False, same & (start[1:] == start[:-1]) & (mg[1:] == mg[:-1]) & (sched[1:] == sched[:-1])]
    # The next strictly later start of the same patient and drug: one binary search over a sorted key.
    group = np.cumsum(np.r_[True, ~same])
    key = (group.astype("int64") << 22) | (start - start.min())
    j = np.searchsorted(key, key, side="right")
    has_next = j < len(key)
    j = np.minimum(j, len(key) - 1)
    nxt = np.where(has_next & (group[j] == group), start[j], np.iinfo("int64").max)
    superseded = nxt <= stop
    o = o.copy()
    o["stop_day"] = np.where(superseded, nxt - 1, stop)
    o["duplicate"] = dup
    return o.sort_index()


def segments(orders: pd.DataFrame) -> pd.DataFrame:
    """One dose segment per plain order and per step of a taper or pack.

    Columns: pcode, start, stop (inclusive days), mg (dex-eq mg/day), counted, oidx (the order's index).
    """
    o = orders.loc[~orders["duplicate"]]
    has = o["schedule"].notna().to_numpy()
    plain = pd.DataFrame(
        {
            "pcode": o["pcode"].to_numpy()[~has],
            "start": o["start_day"].to_numpy()[~has],
            "stop": o["stop_day"].to_numpy()[~has],
            "mg": o["dex_mg_per_day"].to_numpy()[~has],
            "counted": o["counted"].to_numpy()[~has],
            "oidx": o.index.to_numpy()[~has],
        }
    )
    if not has.any():
        return plain
    so = o.loc[has]
    codes, uniques = pd.factorize(so["schedule"])
    steps = []
    for code, sched in enumerate(uniques):
        offset = 0.0
        for days, mg in sched:
            steps.append((code, offset, days, mg))
            offset += days if np.isfinite(days) else 0.0
    st = pd.DataFrame(steps, columns=["code", "off", "days", "drug_mg"])
    left = pd.DataFrame(
        {
            "code": codes,
            "pcode": so["pcode"].to_numpy(),
            "start0": so["start_day"].to_numpy(),
            "stop0": so["stop_day"].to_numpy(),
            "factor": so["dex_factor"].to_numpy(),
            "counted": so["counted"].to_numpy(),
            "oidx": so.index.to_numpy(),
        }
    )
    m = left.merge(st, on="code", how="inner")
    s_start = m["start0"].to_numpy() + m["off"].to_numpy().astype("int64")
    s_days = m["days"].to_numpy()
    s_stop = np.where(np.isfinite(s_days), s_start + np.nan_to_num(s_days, nan=1).astype("int64") - 1, m["stop0"])
    s_stop = np.minimum(s_stop, m["stop0"].to_numpy())
    keep = s_start <= s_stop
    stepped = pd.DataFrame(
        {
            "pcode": m["pcode"].to_numpy()[keep],
            "start": s_start[keep],
            "stop": s_stop[keep],
            "mg": (m["drug_mg"] * m["factor"]).to_numpy()[keep],
            "counted": m["counted"].to_numpy()[keep],
            "oidx": m["oidx"].to_numpy()[keep],
        }
    )
    return pd.concat([plain, stepped], ignore_index=True)


def sweep(seg: pd.DataFrame) -> pd.DataFrame:
    """Runs of constant total dose per patient: pcode, start, stop, mg_all, mg_counted, n_orders.

    Runs between two exposures (dose 0) are kept, so the series has no holes from the first
    exposure to the last; nothing before the first or after the last.
    """
    cols = ["pcode", "start", "stop", "mg_all", "mg_counted", "n_orders"]
    if seg.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64" if c.startswith("mg") else "int64") for c in cols})
    q = np.rint(seg["mg"].to_numpy(dtype="float64") / MG_QUANTUM).astype("int64")
    qc = np.where(seg["counted"].to_numpy(dtype=bool), q, 0)
    pc = seg["pcode"].to_numpy(dtype="int64")
    day = np.concatenate([seg["start"].to_numpy(dtype="int64"), seg["stop"].to_numpy(dtype="int64") + 1])
    base = day.min()
    key = (np.concatenate([pc, pc]) << 22) | (day - base)
    uk, inv = np.unique(key, return_inverse=True)
    d_all = np.bincount(inv, weights=np.concatenate([q, -q]), minlength=len(uk))
    d_cnt = np.bincount(inv, weights=np.concatenate([qc, -qc]), minlength=len(uk))
    d_n = np.bincount(inv, weights=np.concatenate([np.ones(len(q)), -np.ones(len(q))]), minlength=len(uk))
    lvl_all, lvl_cnt, n = np.cumsum(d_all), np.cumsum(d_cnt), np.cumsum(d_n)
    pcode = uk >> 22
    start = (uk & ((1 << 22) - 1)) + base
    same_next = np.r_[pcode[1:] == pcode[:-1], False]
    stop = np.r_[start[1:] - 1, 0]
    runs = pd.DataFrame(
        {
            "pcode": pcode[same_next],
            "start": start[same_next],
            "stop": stop[same_next],
            "mg_all": np.rint(lvl_all[same_next]) * MG_QUANTUM,
            "mg_counted": np.rint(lvl_cnt[same_next]) * MG_QUANTUM,
            "n_orders": np.rint(n[same_next]).astype("int64"),
        }
    )
    # Merge neighbouring runs with identical levels (a renewal that continues the same dose).
    r = runs
    new = np.r_[
        True,
        (r["pcode"].to_numpy()[1:] != r["pcode"].to_numpy()[:-1])
        | (r["mg_all"].to_numpy()[1:] != r["mg_all"].to_numpy()[:-1])
        | (r["mg_counted"].to_numpy()[1:] != r["mg_counted"].to_numpy()[:-1]),
    ]
    gid = np.cumsum(new) - 1
    merged = r.groupby(gid, sort=False).agg(
        pcode=("pcode", "first"),
        start=("start", "first"),
        stop=("stop", "last"),
        mg_all=("mg_all", "first"),
        mg_counted=("mg_counted", "first"),
        n_orders=("n_orders", "max"),
    )
    return merged.reset_index(drop=True)[cols]


def group_courses(runs: pd.DataFrame, level: str, gap_days: int) -> pd.DataFrame:
    """Courses: stretches of runs with ``level`` > 0 whose gaps are at most ``gap_days``.

    Returns pcode, start, stop, peak, start_level (the dose of the first day), cumulative_mg,
    free_before (exposure-free days since the previous course of the same kind; NaN for a
    patient's first).
    """
    r = runs.loc[runs[level] > 0]
    cols = ["pcode", "start", "stop", "peak", "start_level", "cumulative_mg", "free_before"]
    if r.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in cols})
    pc, st, sp = r["pcode"].to_numpy(), r["start"].to_numpy(), r["stop"].to_numpy()
    gap = np.r_[np.inf, st[1:] - sp[:-1] - 1]
    new = np.r_[True, pc[1:] != pc[:-1]] | (gap > gap_days)
    cid = np.cumsum(new) - 1
    g = pd.DataFrame(
        {
            "cid": cid,
            "pcode": pc,
            "start": st,
            "stop": sp,
            "lvl": r[level].to_numpy(),
            "mg": r[level].to_numpy() * (sp - st + 1),
        }
    )
    c = g.groupby("cid", sort=True).agg(
        pcode=("pcode", "first"),
        start=("start", "first"),
        stop=("stop", "last"),
        peak=("lvl", "max"),
        start_level=("lvl", "first"),
        cumulative_mg=("mg", "sum"),
    )
    first = np.r_[True, c["pcode"].to_numpy()[1:] != c["pcode"].to_numpy()[:-1]]
    free = np.r_[np.nan, c["start"].to_numpy()[1:] - c["stop"].to_numpy()[:-1] - 1].astype("float64")
    c["free_before"] = np.where(first, np.nan, free)
    return c.reset_index(drop=True)[cols]
