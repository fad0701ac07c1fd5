"""Agreement between reviewers: Cohen's kappa on the progression call, dates within a tolerance,
and the patients a third reader should adjudicate."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import pandas as pd

from pfs.exceptions import PfsError
from pfs.review import db
from pfs.review.run import review_settings


def cohen_kappa(a: list[int], b: list[int]) -> float:
    """Cohen's kappa for two readers' binary calls on the same patients (nan when chance agreement is 1)."""
    n = len(a)
    if n == 0 or n != len(b):
        return float("nan")
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    pa, pb = sum(a) / n, sum(b) / n
    expected = pa * pb + (1 - pa) * (1 - pb)
    return float("nan") if expected == 1 else (observed - expected) / (1 - expected)


@dataclass(frozen=True)
class PairAgreement:
    """Two reviewers on the patients both reviewed."""

    reviewers: tuple[str, str]
    patients: int
    status_agree: int
    kappa: float
    both_progressed: int
    dates_within: int
    to_adjudicate: list[tuple[str, str]] = field(default_factory=list)  # (patient_id, why)


def _pair(rows: pd.DataFrame, a: str, b: str, days: int) -> PairAgreement:
    x = rows[rows["reviewer"] == a].set_index("patient_id")
    y = rows[rows["reviewer"] == b].set_index("patient_id")
    both = sorted(set(x.index) & set(y.index))
    ca = [int(x.at[p, "progressed"]) for p in both]
    cb = [int(y.at[p, "progressed"]) for p in both]
    adjudicate: list[tuple[str, str]] = []
    within = prog = 0
    for pid, u, v in zip(both, ca, cb, strict=True):
        if u != v:
            adjudicate.append((pid, f"{a}: {'progression' if u else 'no progression'}, "
                                    f"{b}: {'progression' if v else 'no progression'}"))
        elif u == 1:
            prog += 1
            gap = abs((pd.Timestamp(x.at[pid, "progression_date"]) - pd.Timestamp(y.at[pid, "progression_date"])).days)
            if gap <= days:
                within += 1
            else:
                adjudicate.append((pid, f"progression dates {gap} days apart"))
    return PairAgreement((a, b), len(both), sum(u == v for u, v in zip(ca, cb, strict=True)),
                         cohen_kappa(ca, cb), prog, within, adjudicate)


def agreement(out: Path | str, db_path: Path | str | None = None, days: int | None = None) -> list[PairAgreement]:
    """Every pair of reviewers in the review database of OUT."""
    path = Path(db_path) if db_path else Path(out) / db.DEFAULT_DB_NAME
    if not path.exists():
        raise PfsError(f"{path}: no review database yet; nothing to compare")
    rows = db.reviews(path)
    reviewers = sorted(rows["reviewer"].unique())
    if len(reviewers) < 2:
        raise PfsError(f"{path}: agreement needs two reviewers, found {len(reviewers)} ({', '.join(reviewers)})")
    days = review_settings()["date_agreement_days"] if days is None else days
    return [_pair(rows, a, b, days) for a, b in combinations(reviewers, 2)]


def agreement_lines(pairs: list[PairAgreement], days: int) -> list[str]:
    """Plain lines for the terminal."""
    lines = []
    for p in pairs:
        a, b = p.reviewers
        kappa = "n/a" if p.kappa != p.kappa else f"{p.kappa:.2f}"
        lines.append(f"{a} vs {b}: {p.patients} patients reviewed by both; status agrees on {p.status_agree} "
                     f"(Cohen's kappa {kappa}); dates within ±{days} days on {p.dates_within} of "
                     f"{p.both_progressed} both called progressed")
        if p.to_adjudicate:
            lines.append(f"  to adjudicate ({len(p.to_adjudicate)}):")
            lines += [f"    {pid}: {why}" for pid, why in p.to_adjudicate]
    return lines
