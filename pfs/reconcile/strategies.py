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
    of chemoradiation to 12 weeks after its end) it is preliminary and needs confirmation by a later
    tumour event (RANO 2.0), or death, unless it is a new lesion outside the field; once confirmed it is
    dated to the first scan. A steroid signal alone is never progression (RANO); corroborated by tumour
    progression within ``steroid_corroboration_days`` it joins the evidence and, when earlier, back-dates
    progression to the steroid increase ("dated to the first time the increase was needed"), never before
    the end of radiotherapy, when steroids are routine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from pfs.exceptions import ConfigError
from pfs.extractors import Role, sources_with_role

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

Strategy = Callable[[pd.DataFrame, pd.DataFrame, dict[str, Any]], pd.DataFrame]


def empty_reconciled() -> pd.DataFrame:
    """The reconciled-events frame with no rows but the right columns and dtypes."""
    out = pd.DataFrame({c: pd.Series(dtype="object") for c in RECONCILED_COLUMNS})
    out["event_date"] = pd.Series(dtype="datetime64[ns]")
    out["n_events"] = pd.Series(dtype="int64")
    return out


Event = dict[str, Any]


def _row(pid: str, date: pd.Timestamp, status: str, rule: str, chain: list[Event], note: str = "") -> dict:
    """One reconciled row; ``chain`` holds the contributing events in the order they are told."""
    return {
        "patient_id": pid,
        "event_date": date,
        "status": status,
        "rule": rule,
        "sources": ",".join(sorted({e["source"] for e in chain})),
        "kinds": ",".join(dict.fromkeys(e["kind"] for e in chain)),
        "ref_ids": ",".join(dict.fromkeys(e["ref_id"] for e in chain)),
        "n_events": len(chain),
        "evidence": " | ".join(e["line"] for e in chain),
        "note": note,
    }


def _frame(rows: list[dict]) -> pd.DataFrame:
    if not rows:
        return empty_reconciled()
    out = pd.DataFrame(rows, columns=RECONCILED_COLUMNS)
    out["event_date"] = pd.to_datetime(out["event_date"])
    return out.sort_values(["patient_id", "event_date", "status"], kind="stable").reset_index(drop=True)


def _prepare(events: pd.DataFrame) -> dict[str, list[Event]]:
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


def _by_date(chain: list[Event]) -> list[tuple[pd.Timestamp, list[Event]]]:
    """Consecutive same-day groups of a date-sorted list."""
    groups: list[tuple[pd.Timestamp, list[Event]]] = []
    for e in chain:
        if groups and groups[-1][0] == e["event_date"]:
            groups[-1][1].append(e)
        else:
            groups.append((e["event_date"], [e]))
    return groups


def earliest(events: pd.DataFrame, patients: pd.DataFrame, settings: dict[str, Any]) -> pd.DataFrame:
    """Every event date is a progression candidate; same-day events of several sources share one row."""
    rows = [
        _row(pid, date, ACCEPTED, "earliest: first event of any source", day)
        for pid, chain in _prepare(events).items()
        for date, day in _by_date(chain)
    ]
    return _frame(rows)


def vote(events: pd.DataFrame, patients: pd.DataFrame, settings: dict[str, Any]) -> pd.DataFrame:
    """Progression where ``min_sources`` sources fire within ``window_days``, dated to the first of them."""
    cfg = _section(settings, "vote")
    k, window = int(cfg["min_sources"]), pd.Timedelta(days=int(cfg["window_days"]))
    rows: list[dict] = []
    for pid, chain in _prepare(events).items():
        used = [False] * len(chain)
        for i, anchor in enumerate(chain):
            if used[i]:
                continue
            near = [
                j
                for j in range(i, len(chain))
                if not used[j] and chain[j]["event_date"] <= anchor["event_date"] + window
            ]
            n_sources = len({chain[j]["source"] for j in near})
            if n_sources >= k:
                rule = f"vote: {n_sources} sources within {window.days} days"
                rows.append(_row(pid, anchor["event_date"], ACCEPTED, rule, [chain[j] for j in near]))
                for j in near:
                    used[j] = True
        left = [e for e, u in zip(chain, used, strict=True) if not u]
        for date, day in _by_date(left):
            rows.append(
                _row(pid, date, REJECTED, f"vote: fewer than {k} sources within {window.days} days", day)
            )
    return _frame(rows)


def _dates(patients: pd.DataFrame, column: str) -> dict[str, pd.Timestamp]:
    if patients.empty or column not in patients:
        return {}
    s = patients.dropna(subset=[column]).drop_duplicates("patient_id").set_index("patient_id")[column]
    return {pid: pd.Timestamp(v) for pid, v in s.items()}


def guideline(events: pd.DataFrame, patients: pd.DataFrame, settings: dict[str, Any]) -> pd.DataFrame:
    """RANO-like reconciliation (see the module docstring for the rules and their sources)."""
    cfg = _section(settings, "guideline")
    tumour_src, steroid_src = set(sources_with_role(Role.TUMOUR)), set(sources_with_role(Role.CLINICAL))
    window = pd.Timedelta(days=int(cfg["pseudoprogression_days"]))
    cmin, cmax = (
        pd.Timedelta(days=int(cfg["confirm_min_days"])),
        pd.Timedelta(days=int(cfg["confirm_max_days"])),
    )
    corr = pd.Timedelta(days=int(cfg["steroid_corroboration_days"]))
    exempt, self_confirmed = set(cfg["exempt_kinds"]), set(cfg["confirmed_kinds"])
    rt_ends, rt_starts, deaths = (_dates(patients, c) for c in ("rt_end_date", "rt_start_date", "death_date"))
    rows: list[dict] = []
    for pid, chain in _prepare(events).items():
        rt_end, death = rt_ends.get(pid), deaths.get(pid)
        # Pseudoprogression can begin during chemoradiation, so the window opens at RT start.
        start = None if rt_end is None else min(rt_end, rt_starts.get(pid, rt_end))
        tumour = [e for e in chain if e["source"] in tumour_src]
        steroid = [e for e in chain if e["source"] in steroid_src]
        other = [e for e in chain if e["source"] not in tumour_src | steroid_src]
        accepted: list[tuple[pd.Timestamp, str, list[Event]]] = []
        for date, day in _by_date(tumour):
            in_window = start is not None and start <= date <= rt_end + window
            kinds = {e["kind"] for e in day}
            if not in_window and not cfg["confirm_outside_window"]:
                phase = (
                    " (no RT end date)"
                    if rt_end is None
                    else " before chemoradiation"
                    if date < start
                    else " after the pseudoprogression window"
                )
                accepted.append((date, "guideline: tumour progression" + phase, day))
                continue
            if kinds & exempt:
                accepted.append((date, "guideline: new lesion or histology, no confirmation needed", day))
                continue
            if kinds & self_confirmed:
                accepted.append((date, "guideline: progression already confirmed by its extractor", day))
                continue
            later = [e for e in tumour if date + cmin <= e["event_date"] <= date + cmax]
            where = "inside the pseudoprogression window" if in_window else "needing confirmation"
            if later:
                first_later = [e for e in later if e["event_date"] == later[0]["event_date"]]
                rule = (
                    f"guideline: preliminary progression {where}, confirmed on "
                    f"{first_later[0]['event_date']:%Y-%m-%d}"
                )
                accepted.append((date, rule, day + first_later))
            elif cfg["death_confirms"] and death is not None and date <= death <= date + cmax:
                rule = f"guideline: preliminary progression {where}, confirmed by death on {death:%Y-%m-%d}"
                accepted.append((date, rule, day))
            else:
                rule = f"guideline: preliminary progression {where} not confirmed within {cmax.days} days" + (
                    " (possible pseudoprogression)" if in_window else ""
                )
                rows.append(_row(pid, date, REJECTED, rule, day))
        used_steroid: set[int] = set()
        for date, rule, tchain in accepted:
            near = [e for e in steroid if date - corr <= e["event_date"] <= date + corr]
            used_steroid.update(id(e) for e in near)
            out_date, note = date, ""
            if near:
                first = near[0]["event_date"]
                if cfg["steroid_backdate"] and first < date:
                    if rt_end is None or first > rt_end:
                        out_date = first
                        rule += f"; back-dated to the steroid increase on {first:%Y-%m-%d}"
                    else:
                        rule += "; corroborated by a steroid increase"
                        note = "steroid increase before the end of radiotherapy not used for back-dating"
                else:
                    rule += "; corroborated by a steroid increase"
            rows.append(_row(pid, out_date, ACCEPTED, rule, tchain + near, note))
        for date, day in _by_date([e for e in steroid if id(e) not in used_steroid]):
            rule = (
                f"guideline: steroid-only signal, not corroborated by tumour progression within {corr.days} "
                "days"
            )
            rows.append(_row(pid, date, REJECTED, rule, day))
        for date, day in _by_date(other):
            rows.append(
                _row(
                    pid,
                    date,
                    REJECTED,
                    "guideline: source not in the source registry",
                    day,
                )
            )
    return _collapse(_frame(rows))


def _collapse(frame: pd.DataFrame) -> pd.DataFrame:
    """Accepted rows that land on the same date (e.g. two back-dated to one steroid increase) become one."""
    acc = frame["status"] == ACCEPTED
    dup = frame.loc[acc].duplicated(["patient_id", "event_date"], keep=False)
    if not dup.any():
        return frame
    keep = frame.loc[~acc | ~dup.reindex(frame.index, fill_value=False)]
    merged = []
    for _, grp in frame.loc[acc & dup.reindex(frame.index, fill_value=False)].groupby(
        ["patient_id", "event_date"]
    ):
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


def _section(settings: dict[str, Any], name: str) -> dict[str, Any]:
    """A strategy's settings: the shipped defaults updated by ``settings[name]``; bad values are errors."""
    from pfs.settings import load_config

    defaults = load_config().section("reconcile")[name]
    given = settings.get(name, {}) or {}
    unknown = set(given) - set(defaults)
    if unknown:
        raise ConfigError(
            f"unknown key reconcile.{name}.{sorted(unknown)[0]} (known: {', '.join(sorted(defaults))})"
        )
    cfg = {**defaults, **given}
    for key, value in cfg.items():
        if (key.endswith("_days") or key == "min_sources") and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise ConfigError(f"reconcile.{name}.{key} must be a whole number >= 0, not {value!r}")
    if name == "vote" and cfg["min_sources"] < 1:
        raise ConfigError(f"reconcile.vote.min_sources must be at least 1, not {cfg['min_sources']!r}")
    if name == "guideline" and cfg["confirm_min_days"] > cfg["confirm_max_days"]:
        raise ConfigError(
            "reconcile.guideline.confirm_min_days must not exceed confirm_max_days "
            f"({cfg['confirm_min_days']} > {cfg['confirm_max_days']})"
        )
    return cfg


STRATEGIES: dict[str, Strategy] = {
    "earliest": earliest,
    "vote": vote,
    "guideline": guideline,
}


def reconcile_events(
    events: pd.DataFrame, patients: pd.DataFrame, settings: dict[str, Any], *, index_date: str | None = None
) -> pd.DataFrame:
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
        early_rows = _frame(
            [
                _row(pid, date, REJECTED, f"before the index date ({index_date})", day)
                for pid, chain in _prepare(ev.loc[before]).items()
                for date, day in _by_date(chain)
            ]
        )
        events = ev.loc[~before]
    out = STRATEGIES[name](events, patients, settings)
    if early_rows.empty:
        return out
    return _frame(pd.concat([early_rows, out], ignore_index=True).to_dict("records"))
