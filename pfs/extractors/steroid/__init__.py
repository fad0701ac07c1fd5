"""Corticosteroid extractor: prescriptions -> dexamethasone-equivalent exposure -> progression events.

Steroids are a late, partial signal of GBM progression: dexamethasone is restarted or raised for
the symptoms of a growing tumour, usually after the MRI has shown it (Chappidi et al. 2025 found
it in 63 % of patients, 5.2 months late). The extractor

1. recognises systemic corticosteroid rows (:mod:`.drugs`; other drugs are counted, local forms
   are counted with their reason),
2. parses dose, unit, frequency and sig (:mod:`.doses`), quarantining what it cannot read,
3. builds the daily dexamethasone-equivalent series and courses (:mod:`.exposure`), discounting
   orders that look unrelated to the tumour (antiemetic single doses, dose packs, short bursts of
   other steroids, physiological doses),
4. applies the progression rules (:mod:`.rules`) after the peri-treatment period: a new course
   after a steroid-free spell, a sustained rise above the post-treatment nadir, frequent
   prescribing; inside RANO's 12-week pseudoprogression window only a persisting course counts,
   and by default one course gives one event.

Outputs: events (source = steroid), ``steroid_courses`` and ``steroid_daily`` (run-length form:
one row per stretch of days with the same total dose).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from pfs.exceptions import ConfigError
from pfs.extractors import ExtractorResult, count_per_patient, totals
from pfs.extractors.steroid.doses import load_frequency_rules, parse_orders
from pfs.extractors.steroid.drugs import (
    REFERENCE_DRUG,
    SteroidRules,
    identify_drug,
    load_rules,
    non_systemic_kind,
)
from pfs.extractors.steroid.exposure import (
    group_courses,
    order_spans,
    resolve_renewals,
    segments,
    sweep,
    to_dates,
    to_days,
)
from pfs.extractors.steroid.rules import (
    RULE_NAMES,
    dose_rise,
    new_course,
    peri_treatment_end,
    prescription_frequency,
)
from pfs.io.export import Export
from pfs.io.quarantine import COLUMNS as QUARANTINE_COLUMNS
from pfs.io.quarantine import MAX_VALUE_CHARS, REDACTED_COLUMNS
from pfs.io.schema import conform, empty_frame
from pfs.settings import Config

log = logging.getLogger(__name__)
SOURCE = "steroid"
STAGE = "steroid"
_FREQ_LABEL = {6.0: "q4h", 4.0: "QID", 3.0: "TID", 2.0: "BID", 1.0: "daily", 0.5: "QOD"}

__all__ = ["extract"]


class _Clock:
    """Stage timings at DEBUG level (logger ``pfs.extractors.steroid``), for profiling big exports."""

    def __init__(self) -> None:
        self.t = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        log.debug("steroid %s: %.2f s", stage, now - self.t)
        self.t = now


def _check_settings(settings: dict[str, Any]) -> None:
    unknown = [r for r in settings.get("rules", []) if r not in RULE_NAMES]
    if unknown:
        raise ConfigError(f"steroid.rules: unknown rule {unknown[0]!r} (known: {', '.join(RULE_NAMES)})")
    for key in (
        "default_duration_days",
        "max_order_days",
        "course_gap_days",
        "rise_min_days",
        "frequency_window_days",
        "frequency_min_orders",
    ):
        if settings[key] < 0 or (key != "course_gap_days" and settings[key] < 1):
            raise ConfigError(f"steroid.{key} must be a positive number of days/orders, not {settings[key]!r}")


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def _fmt_series(values: pd.Series) -> pd.Series:
    """:func:`_fmt` per row via the distinct values (doses repeat); blank for NaN."""
    v = values.astype("float64")
    labels = {x: _fmt(x) for x in v.dropna().unique()}
    return v.map(labels).astype(object).where(v.notna(), "")


def _quarantine_rows(s: pd.DataFrame, reason: pd.Series, column: pd.Series) -> pd.DataFrame:
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


def _screen(
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
        f"dose of {_fmt(x)} mg/day dexamethasone-equivalent is above the plausible maximum of {mx:g}"
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


def _discount_reason(o: pd.DataFrame, settings: dict[str, Any]) -> pd.Series:
    """Why an order looks unrelated to the tumour (None when it counts)."""
    span = o["stop_day"] - o["start_day"] + 1
    reason = pd.Series(None, index=o.index, dtype=object)

    def add(mask: pd.Series, why: pd.Series | str) -> None:
        nonlocal reason
        reason = reason.where(~(mask & reason.isna()), why)

    add(o["dose_pack"].astype(bool), "dose pack")
    add(o["antiemetic"].astype(bool), "antiemetic or premedication use")
    add(o["once"].astype(bool) & (span <= int(settings["single_dose_max_days"])), "single dose")
    add(
        (o["drug"] != REFERENCE_DRUG) & (span <= int(settings["burst_max_days"])),
        "short " + o["drug"] + " burst",
    )
    add(
        o["peak_dex_mg_per_day"] <= float(settings["physiological_mg_per_day"]) + 1e-9,
        "physiological (replacement) dose",
    )
    return reason


def _dose_text(o: pd.DataFrame) -> pd.Series:
    """'4 mg BID', 'taper from 8 mg/day', 'dose pack' for the evidence line."""
    per = o["per_day"].astype("float64").round(6)
    label = per.map(_FREQ_LABEL).fillna(per.map(lambda x: f"{x:g}x/day", na_action="ignore")).fillna("")
    label = label.where(~o["once"].astype(bool), "once")
    mg = _fmt_series(o["mg_per_admin"])
    text = mg + " mg " + label
    text = text.where(~o["taper"].astype(bool), "taper from " + _fmt_series(o["drug_mg_per_day"]) + " mg/day")
    text = text.where(~o["split_dose"].astype(bool), "split doses of " + _fmt_series(o["drug_mg_per_day"]) + " mg/day")
    return text.where(~o["dose_pack"].astype(bool), "dose pack")


def _prepare(meds: pd.DataFrame, rules: SteroidRules) -> tuple[pd.Series, pd.Series]:
    drug = identify_drug(meds["drug_name"], rules)
    local = pd.Series(None, index=meds.index, dtype=object)
    st = drug.notna()
    if st.any():
        local[st] = non_systemic_kind(meds.loc[st, "drug_name"], meds.loc[st, "route"], meds.loc[st, "sig"], rules)
    return drug, local


def extract(export: Export, config: Config) -> ExtractorResult:
    """Steroid progression events, courses and the daily exposure series of every patient in ``export``."""
    settings = config.section("steroid")
    _check_settings(settings)
    rules = load_rules()
    meds = export.table("medications")
    patients = export.table("patients")
    clock = _Clock()
    drug, local = _prepare(meds, rules)
    systemic = (drug.notna() & local.isna()).to_numpy()
    text = meds.loc[
        systemic,
        [
            "patient_id",
            "medication_id",
            "order_date",
            "end_date",
            "drug_name",
            "dose",
            "dose_unit",
            "frequency",
            "sig",
            "_row",
        ],
    ]
    clock("recognise")
    parsed = parse_orders(text, drug[systemic], rules, load_frequency_rules())
    clock("parse")
    # The working frame holds numbers and flags only; the text stays in ``text`` for the quarantine.
    s = parsed.drop(columns=["problem", "problem_column"])
    for col in ("patient_id", "medication_id", "order_date", "end_date", "_row"):
        s[col] = text[col].to_numpy()
    s["drug"] = drug[systemic].to_numpy()
    factor = {d: rules.dex_factor(d) for d in rules.equivalent_mg}
    s["dex_factor"] = s["drug"].map(factor).astype("float64")
    s["dex_mg_per_day"] = s["drug_mg_per_day"].to_numpy(dtype="float64") * s["dex_factor"].to_numpy()
    has_sched = s["schedule"].notna().to_numpy()
    peak = s["drug_mg_per_day"].to_numpy(dtype="float64").copy()
    if has_sched.any():
        peak[has_sched] = [max(mg for _, mg in sch) for sch in s["schedule"].to_numpy()[has_sched]]
    s["peak_dex_mg_per_day"] = peak * s["dex_factor"].to_numpy()
    reason, column = _screen(s, parsed["problem"], parsed["problem_column"], patients, settings)
    quarantine = _quarantine_rows(text, reason, column)
    o = s.loc[reason.isna().to_numpy()].copy()
    clock("screen")

    pids = patients["patient_id"].astype(str).to_numpy()
    pindex = pd.Index(pids)
    o["pcode"] = pindex.get_indexer(o["patient_id"].astype(str))
    if (o["pcode"].to_numpy() < 0).any():  # only when called without load_export's patient check
        o = o.loc[o["pcode"].to_numpy() >= 0].copy()
    o = order_spans(o, settings)
    death = patients["death_date"]
    death_day = np.where(death.notna(), to_days(death.fillna(pd.Timestamp(0))), np.iinfo("int64").max)
    o["stop_day"] = np.maximum(
        np.minimum(o["stop_day"].to_numpy(), death_day[o["pcode"].to_numpy()]), o["start_day"].to_numpy()
    )
    o = resolve_renewals(o) if not o.empty else o.assign(duplicate=False)
    o["discount_reason"] = _discount_reason(o, settings) if not o.empty else pd.Series(dtype=object)
    o["counted"] = o["discount_reason"].isna()
    clock("orders")

    runs = (
        sweep(segments(o)) if not o.empty else sweep(pd.DataFrame(columns=["pcode", "start", "stop", "mg", "counted"]))
    )
    gap = int(settings["course_gap_days"])
    counted_courses = group_courses(runs, "mg_counted", gap)
    runs_d = runs.assign(mg_disc=np.where(runs["mg_counted"] > 0, 0.0, runs["mg_all"]))
    disc_courses = group_courses(runs_d, "mg_disc", gap)
    clock("exposure")
    peri_end = peri_treatment_end(patients, settings).to_numpy()

    counted_courses = _annotate_courses(counted_courses, o.loc[o["counted"] & ~o["duplicate"]])
    disc_courses = _annotate_courses(disc_courses, o.loc[~o["counted"] & ~o["duplicate"]])
    clock("courses")

    active = set(settings["rules"])
    fired = []
    if "new_course" in active:
        death_days = np.where(
            np.isnan(death_day.astype("float64")) | (death_day == np.iinfo("int64").max),
            np.nan,
            death_day.astype("float64"),
        )
        fired.append(new_course(counted_courses, peri_end, settings, death_days))
    if "dose_rise" in active:
        fired.append(dose_rise(runs, peri_end, settings))
    if "prescription_frequency" in active:
        cnt = o.loc[o["counted"] & ~o["duplicate"], ["pcode", "start_day", "dex_mg_per_day"]]
        fired.append(prescription_frequency(cnt, peri_end, settings))
    clock("rules")
    rt_end = patients["rt_end_date"]
    rt_end_day = np.where(rt_end.notna(), to_days(rt_end.fillna(pd.Timestamp(0))).astype("float64"), np.nan)
    events = _events(fired, o, pids, settings, counted_courses, rt_end_day)
    clock("events")

    courses_table = _courses_table(counted_courses, disc_courses, pids, peri_end)
    daily = runs.loc[runs["mg_all"] > 0]
    daily_table = pd.DataFrame(
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
    clock("tables")
    has_o = not o.empty
    patient_counts = count_per_patient(
        pids,
        rows_examined=meds["patient_id"],
        steroid_rows=meds.loc[systemic, "patient_id"],
        non_steroid_rows=meds.loc[drug.isna().to_numpy(), "patient_id"],
        non_systemic_rows=meds.loc[(drug.notna() & local.notna()).to_numpy(), "patient_id"],
        quarantined_rows=quarantine["patient_id"],
        duplicate_orders=o.loc[o["duplicate"], "patient_id"] if has_o else [],
        discounted_orders=o.loc[~o["counted"], "patient_id"] if has_o else [],
        counted_courses=pids[counted_courses["pcode"].to_numpy(dtype="int64")],
        discounted_courses=pids[disc_courses["pcode"].to_numpy(dtype="int64")],
        events=events["patient_id"],
    )
    counts = totals(patient_counts)
    return ExtractorResult(
        events=events,
        tables={
            "steroid_courses": conform(courses_table, "steroid_courses"),
            "steroid_daily": conform(daily_table, "steroid_daily"),
        },
        quarantine=quarantine,
        counts=counts,
        patient_counts=patient_counts,
    )


def _annotate_courses(courses: pd.DataFrame, orders: pd.DataFrame) -> pd.DataFrame:
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


_KIND_PRIORITY = {"new_course": 0, "dose_rise": 1, "prescription_frequency": 2}


def _events(
    fired: list[pd.DataFrame],
    o: pd.DataFrame,
    pids: np.ndarray,
    settings: dict[str, Any],
    courses: pd.DataFrame,
    rt_end: np.ndarray,
) -> pd.DataFrame:
    """Turn rule firings into events: the order behind each, a one-line evidence, confidence.

    Each firing is placed in its counted course (``courses``). Firings dated within the
    pseudoprogression window after RT end (``rt_end``, day per pcode) are kept only when their course
    persists ``pseudoprogression_persist_days`` beyond the window. With ``one_event_per_course`` only
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
    window = int(settings["pseudoprogression_window_days"])
    if window > 0:
        rt = rt_end[ev["pcode"].to_numpy(dtype="int64")]
        in_window = ~np.isnan(rt) & (ev["day"].to_numpy() <= np.nan_to_num(rt) + window)
        persists = inside.to_numpy() & (
            ev["stop"].to_numpy(dtype="float64") >= rt + window + int(settings["pseudoprogression_persist_days"])
        )
        ev = ev.loc[~in_window | persists]
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
    drug = src["drug"].to_numpy(dtype=object)
    dose = _dose_text(src).to_numpy(dtype=object)
    val = _fmt_series(ev["value"]).to_numpy(dtype=object)
    det = ev["detail"].to_numpy(dtype="float64")
    kind = ev["kind"].to_numpy()
    window = int(settings["frequency_window_days"])
    free = np.where(
        np.isnan(det),
        "with no earlier course",
        "after "
        + pd.Series(np.nan_to_num(det)).astype("int64").astype(str).to_numpy(dtype=object)
        + " steroid-free days",
    )
    nadir = _fmt_series(pd.Series(det)).to_numpy(dtype=object)
    count = pd.Series(np.nan_to_num(det)).astype("int64").astype(str).to_numpy(dtype=object)
    evidence = np.select(
        [kind == "new_course", kind == "dose_rise"],
        [
            drug + " restarted " + dose + " (" + val + " mg/day dex-eq) " + free,
            drug
            + " raised to "
            + val
            + " mg/day dex-eq ("
            + dose
            + ") from a post-treatment nadir of "
            + nadir
            + " mg/day",
        ],
        count
        + f" steroid prescriptions within {window} days, latest "
        + drug
        + " "
        + dose
        + " ("
        + val
        + " mg/day dex-eq)",
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


def _courses_table(counted: pd.DataFrame, disc: pd.DataFrame, pids: np.ndarray, peri_end: np.ndarray) -> pd.DataFrame:
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
