"""Reconciliation strategies: how events of several sources become one progression date per patient.

Each strategy is a function ``(events, patients, settings, assessments=None) -> DataFrame`` listed in
:data:`STRATEGIES`, returning reconciled rows (see :mod:`pfs.reconcile.chain` for the columns and the
evidence chain). ``assessments`` (:mod:`pfs.reconcile.assessments`) is what the tumour sources said
about every study, progression or not; only ``guideline`` reads it.

``earliest``
    The first event of any source. Most sensitive and earliest, and it inherits every source's false
    alarms (a steroid burst for nausea, a report that over-calls treatment effect).
``vote``
    Progression when at least ``min_sources`` different sources fire within ``window_days`` of each
    other, dated to the first of them: independent modalities agreeing is the simplest guard against
    one source's false alarms, at the price of missing patients seen by one source only.
``guideline`` (default)
    RANO-like, with confirmation of preliminary calls, conflicts between sources on the same study,
    next-line therapy as confirmation and steroid back-dating: see :mod:`pfs.reconcile.guideline`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from pfs.exceptions import ConfigError
from pfs.reconcile.chain import (
    ACCEPTED,
    RECONCILED_COLUMNS,
    REJECTED,
    by_date,
    empty_reconciled,
    frame,
    prepare,
    row,
)
from pfs.reconcile.guideline import guideline

__all__ = ["ACCEPTED", "RECONCILED_COLUMNS", "REJECTED", "STRATEGIES", "empty_reconciled", "reconcile_events"]

Strategy = Callable[..., pd.DataFrame]

def earliest(events: pd.DataFrame, patients: pd.DataFrame, settings: dict[str, Any], assessments: Any = None,
             ) -> pd.DataFrame:
    """Every event date is a progression candidate; same-day events of several sources share one row."""
    rows = [
        row(pid, date, ACCEPTED, "earliest: first event of any source", day)
        for pid, chain in prepare(events).items()
        for date, day in by_date(chain)
    ]
    return frame(rows)


def vote(events: pd.DataFrame, patients: pd.DataFrame, settings: dict[str, Any], assessments: Any = None,
         ) -> pd.DataFrame:
    """Progression where ``min_sources`` sources fire within ``window_days``, dated to the first of them."""
    cfg = section(settings, "vote")
    k, window = int(cfg["min_sources"]), pd.Timedelta(days=int(cfg["window_days"]))
    rows: list[dict] = []
    for pid, chain in prepare(events).items():
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
                rows.append(row(pid, anchor["event_date"], ACCEPTED, rule, [chain[j] for j in near]))
                for j in near:
                    used[j] = True
        left = [e for e, u in zip(chain, used, strict=True) if not u]
        for date, day in by_date(left):
            rows.append(
                row(pid, date, REJECTED, f"vote: fewer than {k} sources within {window.days} days", day)
            )
    return frame(rows)


def section(settings: dict[str, Any], name: str) -> dict[str, Any]:
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
        if key.endswith(("_ml", "_fraction")) and (isinstance(value, bool) or not isinstance(value, (int, float))
                                                     or value < 0):
            raise ConfigError(f"reconcile.{name}.{key} must be a number >= 0, not {value!r}")
    if name == "vote" and cfg["min_sources"] < 1:
        raise ConfigError(f"reconcile.vote.min_sources must be at least 1, not {cfg['min_sources']!r}")
    if name == "guideline" and cfg["window_opens"] not in ("surgery", "rt_start"):
        raise ConfigError(
            f"reconcile.guideline.window_opens must be 'surgery' or 'rt_start', not {cfg['window_opens']!r}")
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
    events: pd.DataFrame, patients: pd.DataFrame, settings: dict[str, Any], *, index_date: str | None = None,
    assessments: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Apply the strategy named in ``settings['strategy']`` (default ``guideline``).

    Args:
        events: the events table of every source.
        patients: the clean patients table (``rt_end_date`` and ``death_date`` are used by ``guideline``).
        settings: the ``reconcile`` config section.
        index_date: when given (diagnosis, surgery, rt_start), events before each patient's index date are
            set aside first, so they can neither confirm, corroborate nor back-date a progression.
        assessments: what the tumour sources said about every study (:func:`pfs.reconcile.assessments.
            from_tables`); without it ``guideline`` sees no conflicts and no nadirs.
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
        early_rows = frame(
            [
                row(pid, date, REJECTED, f"before the index date ({index_date})", day)
                for pid, chain in prepare(ev.loc[before]).items()
                for date, day in by_date(chain)
            ]
        )
        events = ev.loc[~before]
    out = STRATEGIES[name](events, patients, settings, assessments)
    if early_rows.empty:
        return out
    return frame(pd.concat([early_rows, out], ignore_index=True).to_dict("records"))
