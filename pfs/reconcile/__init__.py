"""From progression events to PFS endpoints: per source, and reconciled across sources."""

from pfs.reconcile.endpoints import build_endpoints, follow_up_dates, index_dates
from pfs.reconcile.strategies import STRATEGIES, reconcile_events

__all__ = ["STRATEGIES", "build_endpoints", "follow_up_dates", "index_dates", "reconcile_events"]
