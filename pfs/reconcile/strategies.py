"""Reconciliation strategies: how events of several sources become one progression date per patient.

Each strategy is a function ``(events, patients, settings) -> DataFrame`` of reconciled events
(patient_id, event_date, sources, evidence) and is listed in :data:`STRATEGIES`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from pfs.exceptions import ConfigError


def earliest(events: pd.DataFrame, patients: pd.DataFrame, settings: dict[str, Any]) -> pd.DataFrame:
    """The first event of any source. Most sensitive, earliest, and the most false alarms."""
    if events.empty:
        return pd.DataFrame(columns=["patient_id", "event_date", "sources", "evidence"])
    ev = events.sort_values(["patient_id", "event_date", "source", "ref_id"], kind="stable")
    rows = []
    for pid, grp in ev.groupby("patient_id", sort=True):
        first = grp.iloc[0]
        rows.append({
            "patient_id": pid,
            "event_date": first["event_date"],
            "sources": first["source"],
            "evidence": f"{first['source']}: {first['evidence']}",
        })
    return pd.DataFrame(rows)


STRATEGIES: dict[str, Callable[[pd.DataFrame, pd.DataFrame, dict[str, Any]], pd.DataFrame]] = {
    "earliest": earliest,
}


def reconcile_events(events: pd.DataFrame, patients: pd.DataFrame, settings: dict[str, Any]) -> pd.DataFrame:
    """Apply the strategy named in ``settings['strategy']``."""
    name = settings.get("strategy", "earliest")
    if name not in STRATEGIES:
        raise ConfigError(f"reconcile.strategy must be one of {', '.join(STRATEGIES)}, not {name!r}")
    return STRATEGIES[name](events, patients, settings)
