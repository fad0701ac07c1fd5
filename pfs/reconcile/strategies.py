"""Reconciliation strategies: how events of several sources become one progression date per patient.

Each strategy is a function ``(events, patients, settings) -> DataFrame`` listed in :data:`STRATEGIES`.
It returns one row per patient and candidate date (columns :data:`RECONCILED_COLUMNS`):

- ``status`` is ``accepted`` (a progression date) or ``rejected`` (a signal the strategy set aside,
  kept so the report can show why); :func:`pfs.reconcile.build_endpoints` uses accepted rows only and
  takes the first one on or after the index date.
- ``rule`` says which rule decided; ``sources``, ``kinds``, ``ref_ids`` and ``evidence`` keep the
  evidence chain of every contributing event (``evidence`` joins one line per event with `` | ``).

The strategies and their clinical rationale:

``earliest``
    The first event of any source. Most sensitive and earliest, and it inherits every source's false
    alarms (a steroid burst for nausea, a report that over-calls treatment effect).
``vote``
    Progression when at least ``min_sources`` different sources fire within ``window_days`` of each
    other, dated to the first of them: independent modalities agreeing is the simplest guard against
    one source's false alarms, at the price of missing patients seen by one source only.
``guideline`` (default)
    RANO-like. Imaging or report progression counts. Inside the pseudoprogression window (from the start
    of chemoradiation to 12 weeks after its end) it is preliminary and needs confirmation by a later tumour event
    (RANO 2.0), or death, unless it is a new lesion outside the field; once confirmed it is dated to the
    first scan. A steroid signal alone is never progression (RANO); corroborated by tumour progression
    within ``steroid_corroboration_days`` it joins the evidence and, when earlier, back-dates progression
    to the steroid increase ("dated to the first time the increase was needed"), never before the end of
    radiotherapy, when steroids are routine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from pfs.exceptions import ConfigError

RECONCILED_COLUMNS = ["patient_id", "event_date", "status", "rule", "sources", "kinds", "ref_ids", "n_events",
                      "evidence", "note"]
ACCEPTED = "accepted"
REJECTED = "rejected"

Strategy = Callable[[pd.DataFrame, pd.DataFrame, dict[str, Any]], pd.DataFrame]


def empty_reconciled() -> pd.DataFrame:
    """The reconciled-events frame with no rows but the right columns and dtypes."""
    out = pd.DataFrame({c: pd.Series(dtype="object") for c in RECONCILED_COLUMNS})
    out["event_date"] = pd.Series(dtype="datetime64[ns]")
    out["n_events"] = pd.Series(dtype="int64")
    return out


def _line(ev: pd.Series) -> str:
    date = ev["event_date"].strftime("%Y-%m-%d") if pd.notna(ev["event_date"]) else "?"
    return f"{ev['source']} {date} {ev['ref_id']} ({ev['kind']}): {ev['evidence']}"


def _row(pid: str, date: pd.Timestamp, status: str, rule: str, chain: pd.DataFrame, note: str = "") -> dict:
    """One reconciled row; ``chain`` holds the contributing events in the order they are told."""
    return {
        "patient_id": pid,
        "event_date": date,
        "status": status,
        "rule": rule,
        "sources": ",".join(sorted(set(chain["source"]))),
        "kinds": ",".join(dict.fromkeys(chain["kind"].astype(str))),
        "ref_ids": ",".join(dict.fromkeys(chain["ref_id"].astype(str))),
        "n_events": int(len(chain)),
        "evidence": " | ".join(_line(e) for _, e in chain.iterrows()),
        "note": note,
    }


def _frame(rows: list[dict]) -> pd.DataFrame:
    if not rows:
        return empty_reconciled()
    out = pd.DataFrame(rows, columns=RECONCILED_COLUMNS)
    out["event_date"] = pd.to_datetime(out["event_date"])
    return out.sort_values(["patient_id", "event_date", "status"], kind="stable").reset_index(drop=True)


def _prepare(events: pd.DataFrame) -> pd.DataFrame:
    """Typed, sorted events; ties on the same day are ordered by source and ref_id so runs are stable."""
    ev = events.copy()
    for col in ("kind", "ref_id", "evidence"):
        if col not in ev:
            ev[col] = ""
        ev[col] = ev[col].fillna("").astype(str)
    ev["event_date"] = pd.to_datetime(ev["event_date"])
    ev = ev.dropna(subset=["patient_id", "event_date"])
    return ev.sort_values(["patient_id", "event_date", "source", "ref_id"], kind="stable").reset_index(drop=True)


def earliest(events: pd.DataFrame, patients: pd.DataFrame, settings: dict[str, Any]) -> pd.DataFrame:
    """Every event date is a progression candidate; same-day events of several sources share one row."""
    ev = _prepare(events)
    rows = [_row(pid, date, ACCEPTED, "earliest: first event of any source", grp)
            for (pid, date), grp in ev.groupby(["patient_id", "event_date"], sort=True)]
    return _frame(rows)


def vote(events: pd.DataFrame, patients: pd.DataFrame, settings: dict[str, Any]) -> pd.DataFrame:
    """Progression where ``min_sources`` sources fire within ``window_days``, dated to the first of them."""
    cfg = _section(settings, "vote")
    k, window = int(cfg["min_sources"]), pd.Timedelta(days=int(cfg["window_days"]))
    ev = _prepare(events)
    rows: list[dict] = []
    for pid, grp in ev.groupby("patient_id", sort=True):
        used = pd.Series(False, index=grp.index)
        for i, anchor in grp.iterrows():
            if used[i]:
                continue
            near = grp.loc[(grp["event_date"] >= anchor["event_date"])
                           & (grp["event_date"] <= anchor["event_date"] + window) & ~used]
            if near["source"].nunique() >= k:
                rows.append(_row(pid, anchor["event_date"], ACCEPTED,
                                 f"vote: {near['source'].nunique()} sources within {window.days} days", near))
                used[near.index] = True
        left = grp.loc[~used]
        for date, day in left.groupby("event_date", sort=True):
            rows.append(_row(pid, date, REJECTED, f"vote: fewer than {k} sources within {window.days} days", day))
    return _frame(rows)


def guideline(events: pd.DataFrame, patients: pd.DataFrame, settings: dict[str, Any]) -> pd.DataFrame:
    """RANO-like reconciliation (see the module docstring for the rules and their sources)."""
    cfg = _section(settings, "guideline")
    tumour_src, steroid_src = set(cfg["tumour_sources"]), set(cfg["steroid_sources"])
    window = pd.Timedelta(days=int(cfg["pseudoprogression_days"]))
    cmin, cmax = pd.Timedelta(days=int(cfg["confirm_min_days"])), pd.Timedelta(days=int(cfg["confirm_max_days"]))
    corr = pd.Timedelta(days=int(cfg["steroid_corroboration_days"]))
    exempt, self_confirmed = set(cfg["exempt_kinds"]), set(cfg["confirmed_kinds"])
    ev = _prepare(events)
    pt = patients.set_index("patient_id") if not patients.empty else pd.DataFrame()
    rows: list[dict] = []
    for pid, grp in ev.groupby("patient_id", sort=True):
        rt_end = _date(pt, pid, "rt_end_date")
        death = _date(pt, pid, "death_date")
        # Pseudoprogression can begin during chemoradiation, so the window opens at RT start.
        start = None if rt_end is None else min(rt_end, _date(pt, pid, "rt_start_date") or rt_end)
        tumour = grp.loc[grp["source"].isin(tumour_src)]
        steroid = grp.loc[grp["source"].isin(steroid_src)]
        other = grp.loc[~grp["source"].isin(tumour_src | steroid_src)]
        accepted: list[tuple[pd.Timestamp, str, pd.DataFrame]] = []
        for date, day in tumour.groupby("event_date", sort=True):
            in_window = start is not None and start <= date <= rt_end + window
            kinds = set(day["kind"])
            if not in_window and not cfg["confirm_outside_window"]:
                phase = (" (no RT end date)" if rt_end is None else " before chemoradiation" if date < start
                         else " after the pseudoprogression window")
                accepted.append((date, "guideline: tumour progression" + phase, day))
                continue
            if kinds & exempt:
                accepted.append((date, "guideline: new lesion or histology, no confirmation needed", day))
                continue
            if kinds & self_confirmed:
                accepted.append((date, "guideline: progression already confirmed by its extractor", day))
                continue
            later = tumour.loc[(tumour["event_date"] >= date + cmin) & (tumour["event_date"] <= date + cmax)]
            where = "inside the pseudoprogression window" if in_window else "needing confirmation"
            if not later.empty:
                first_later = later.loc[later["event_date"] == later["event_date"].min()]
                accepted.append((date, f"guideline: preliminary progression {where}, confirmed on "
                                       f"{first_later['event_date'].iloc[0]:%Y-%m-%d}",
                                 pd.concat([day, first_later])))
            elif cfg["death_confirms"] and death is not None and date <= death <= date + cmax:
                accepted.append((date, f"guideline: preliminary progression {where}, confirmed by death on "
                                       f"{death:%Y-%m-%d}", day))
            else:
                rows.append(_row(pid, date, REJECTED, f"guideline: preliminary progression {where} not "
                                 f"confirmed within {cmax.days} days"
                                 + (" (possible pseudoprogression)" if in_window else ""), day))
        used_steroid: set[int] = set()
        for date, rule, chain in accepted:
            near = steroid.loc[(steroid["event_date"] >= date - corr) & (steroid["event_date"] <= date + corr)]
            used_steroid.update(near.index)
            out_date, note = date, ""
            if not near.empty:
                first = near["event_date"].min()
                if cfg["steroid_backdate"] and first < date:
                    if rt_end is None or first > rt_end:
                        out_date = first
                        rule += f"; back-dated to the steroid increase on {first:%Y-%m-%d}"
                    else:
                        rule += "; corroborated by a steroid increase"
                        note = "steroid increase before the end of radiotherapy not used for back-dating"
                else:
                    rule += "; corroborated by a steroid increase"
            rows.append(_row(pid, out_date, ACCEPTED, rule, pd.concat([chain, near]), note))
        for date, day in steroid.loc[~steroid.index.isin(used_steroid)].groupby("event_date", sort=True):
            rows.append(_row(pid, date, REJECTED, "guideline: steroid-only signal, not corroborated by tumour "
                             f"progression within {corr.days} days", day))
        for date, day in other.groupby("event_date", sort=True):
            rows.append(_row(pid, date, REJECTED, "guideline: source not listed in tumour_sources or "
                             "steroid_sources", day))
    return _collapse(_frame(rows))


def _collapse(frame: pd.DataFrame) -> pd.DataFrame:
    """Accepted rows that land on the same date (e.g. two back-dated to one steroid increase) become one."""
    acc = frame["status"] == ACCEPTED
    dup = frame.loc[acc].duplicated(["patient_id", "event_date"], keep=False)
    if not dup.any():
        return frame
    keep = frame.loc[~acc | ~dup.reindex(frame.index, fill_value=False)]
    merged = []
    for (pid, date), grp in frame.loc[acc & dup.reindex(frame.index, fill_value=False)].groupby(
            ["patient_id", "event_date"]):
        first = grp.iloc[0].to_dict()
        first["sources"] = ",".join(sorted(set(",".join(grp["sources"]).split(","))))
        first["kinds"] = ",".join(dict.fromkeys(",".join(grp["kinds"]).split(",")))
        first["ref_ids"] = ",".join(dict.fromkeys(",".join(grp["ref_ids"]).split(",")))
        lines = list(dict.fromkeys(" | ".join(grp["evidence"]).split(" | ")))
        first["evidence"] = " | ".join(lines)
        first["n_events"] = len(lines)
        first["rule"] = "; ".join(dict.fromkeys(grp["rule"]))
        merged.append(first)
    return _frame(keep.to_dict("records") + merged)


def _date(pt: pd.DataFrame, pid: str, column: str) -> pd.Timestamp | None:
    if pt.empty or column not in pt or pid not in pt.index:
        return None
    value = pt.at[pid, column]
    return None if pd.isna(value) else pd.Timestamp(value)


def _section(settings: dict[str, Any], name: str) -> dict[str, Any]:
    """A strategy's settings: the shipped defaults updated by ``settings[name]``; bad values are errors."""
    from pfs.settings import load_config

    defaults = load_config().section("reconcile")[name]
    given = settings.get(name, {}) or {}
    unknown = set(given) - set(defaults)
    if unknown:
        raise ConfigError(f"unknown key reconcile.{name}.{sorted(unknown)[0]} (known: {', '.join(sorted(defaults))})")
    cfg = {**defaults, **given}
    for key, value in cfg.items():
        if (key.endswith("_days") or key == "min_sources") and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ConfigError(f"reconcile.{name}.{key} must be a whole number >= 0, not {value!r}")
    if name == "vote" and cfg["min_sources"] < 1:
        raise ConfigError(f"reconcile.vote.min_sources must be at least 1, not {cfg['min_sources']!r}")
    if name == "guideline" and cfg["confirm_min_days"] > cfg["confirm_max_days"]:
        raise ConfigError("reconcile.guideline.confirm_min_days must not exceed confirm_max_days "
                          f"({cfg['confirm_min_days']} > {cfg['confirm_max_days']})")
    return cfg


STRATEGIES: dict[str, Strategy] = {
    "earliest": earliest,
    "vote": vote,
    "guideline": guideline,
}


def reconcile_events(events: pd.DataFrame, patients: pd.DataFrame, settings: dict[str, Any], *,
                     index_date: str | None = None) -> pd.DataFrame:
    """Apply the strategy named in ``settings['strategy']`` (default ``guideline``).

    Args:
        events: the events table of every source.
        patients: the clean patients table (``rt_end_date`` and ``death_date`` are used by ``guideline``).
        settings: the ``reconcile`` config section.
        index_date: when given (diagnosis, surgery, rt_start), events before each patient's index date are
            set aside first, so they can neither confirm, corroborate nor back-date a progression.
    """
    name = settings.get("strategy", "guideline")
    if name not in STRATEGIES:
        raise ConfigError(f"reconcile.strategy must be one of {', '.join(STRATEGIES)}, not {name!r}")
    if events is None or events.empty:
        return empty_reconciled()
    early_rows = empty_reconciled()
    if index_date is not None:
        from pfs.reconcile.endpoints import index_dates

        idx = index_dates(patients, index_date).set_index("patient_id")["index_date"]
        ev = events.assign(event_date=pd.to_datetime(events["event_date"]))
        before = ev["event_date"] < ev["patient_id"].map(idx)
        early_rows = _frame([_row(pid, date, REJECTED, f"before the index date ({index_date})", day)
                             for (pid, date), day in _prepare(ev.loc[before]).groupby(["patient_id", "event_date"])])
        events = ev.loc[~before]
    out = STRATEGIES[name](events, patients, settings)
    if early_rows.empty:
        return out
    return _frame(pd.concat([early_rows, out], ignore_index=True).to_dict("records"))
