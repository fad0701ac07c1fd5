"""PFS endpoints: index date -> first progression or death (event), else censored at last follow-up.

Every method (one source alone, the reconciled result) goes through the same function so their
curves are comparable: same index date, same censoring, same death handling.
"""

from __future__ import annotations

import pandas as pd

from pfs.exceptions import ConfigError
from pfs.vocab import IndexDate

_INDEX_COLUMNS = {
    IndexDate.DIAGNOSIS: "diagnosis_date",
    IndexDate.SURGERY: "surgery_date",
    IndexDate.RT_START: "rt_start_date",
}
_FALLBACK = ["diagnosis_date", "surgery_date", "rt_start_date"]


def index_dates(patients: pd.DataFrame, index_date: str) -> pd.DataFrame:
    """patient_id, index_date, index_note: the chosen anchor, or the next available date with a note."""
    try:
        column = _INDEX_COLUMNS[IndexDate(index_date)]
    except ValueError as err:
        raise ConfigError(
            f"endpoints.index_date must be one of {', '.join(i.value for i in IndexDate)}, not {index_date!r}"
        ) from err
    out = patients[["patient_id"]].copy()
    out["index_date"] = patients[column]
    out["index_note"] = ""
    for alt in [c for c in _FALLBACK if c != column]:
        fill = out["index_date"].isna() & patients[alt].notna()
        out.loc[fill, "index_date"] = patients.loc[fill, alt]
        out.loc[fill, "index_note"] = f"{column} blank; {alt} used as index date"
    return out


def follow_up_dates(patients: pd.DataFrame, dated_records: list[pd.Series] | None = None) -> pd.Series:
    """Last follow-up per patient: ``last_followup_date``, else the latest dated record of that patient.

    ``dated_records`` are Series of dates indexed by patient_id (report dates, order dates, study dates).
    Death also ends follow-up.
    """
    latest = patients.set_index("patient_id")[
        ["diagnosis_date", "surgery_date", "rt_start_date", "rt_end_date", "last_followup_date", "death_date"]
    ].max(axis=1)
    for rec in dated_records or []:
        if rec is None or rec.empty:
            continue
        per = rec.groupby(level=0).max()
        latest = pd.concat([latest, per.reindex(latest.index)], axis=1).max(axis=1)
    explicit = patients.set_index("patient_id")["last_followup_date"]
    return explicit.where(explicit.notna(), latest)


def build_endpoints(
    patients: pd.DataFrame,
    progression: pd.DataFrame,
    method: str,
    *,
    index_date: str = "surgery",
    last_followup: pd.Series | None = None,
) -> pd.DataFrame:
    """One endpoint row per patient for ``method``.

    Args:
        patients: the clean patients table.
        progression: candidate progression dates (patient_id, event_date); the first on or after the
            index date and not after death counts, earlier ones are ignored with a note. When a
            ``status`` column is present (reconciled events), only ``accepted`` rows are candidates.
        method: label written in the ``method`` column.
        index_date: diagnosis, surgery or rt_start.
        last_followup: per-patient censoring dates (see :func:`follow_up_dates`).
    """
    idx = index_dates(patients, index_date).set_index("patient_id")
    fu = last_followup if last_followup is not None else follow_up_dates(patients)
    death = patients.set_index("patient_id")["death_date"]
    if "status" in progression.columns:
        progression = progression.loc[progression["status"] == "accepted"]
    out = pfs_endpoints(idx, progression, death, fu, method, last_followup=fu)
    no_index = out["index_date"].isna()
    out.loc[no_index, "note"] = "no index date (diagnosis, surgery and rt_start all blank)"
    return out.loc[~no_index].reset_index(drop=True)


def pfs_endpoints(
    index: pd.DataFrame,
    progression: pd.DataFrame,
    death: pd.Series,
    censor: pd.Series,
    method: str,
    *,
    last_followup: pd.Series | None = None,
) -> pd.DataFrame:
    """The PFS rule, written once for every method and for the manual reference.

    PFS runs from the index date to the first progression on or after it and not after death, else to
    death (both events), else it is censored at ``censor`` (the last follow-up, or an annotated censor
    date); a censor date before the index date, or none, censors at the index date.

    Args:
        index: indexed by patient_id, with ``index_date`` and ``index_note``.
        progression: candidate progression dates (patient_id, event_date), any number per patient.
        death, censor: dates indexed by patient_id.
        method: label written in the ``method`` column.
        last_followup: written to the ``last_followup_date`` column (default: ``censor``).
    """
    out = index[["index_date"]].copy()
    notes = index["index_note"].reindex(out.index).fillna("").astype(object)
    ev = progression[["patient_id", "event_date"]].dropna().reset_index(drop=True)
    ev["event_date"] = pd.to_datetime(ev["event_date"])
    ev = ev.merge(out[["index_date"]].reset_index(), on="patient_id", how="inner")
    ev = ev.merge(death.rename("death_date").reset_index(), on="patient_id", how="left")
    before = ev["event_date"] < ev["index_date"]
    after_death = ev["death_date"].notna() & (ev["event_date"] > ev["death_date"])
    for pid, n in ev.loc[before].groupby("patient_id").size().items():
        notes[pid] = _join(notes[pid], f"{n} event(s) before the index date ignored")
    for pid, n in ev.loc[after_death].groupby("patient_id").size().items():
        notes[pid] = _join(notes[pid], f"{n} event(s) after death ignored")
    first = ev.loc[~before & ~after_death].groupby("patient_id")["event_date"].min()
    out["progression_date"] = pd.to_datetime(first.reindex(out.index))
    out["progressed"] = out["progression_date"].notna().astype(int)
    d = death.reindex(out.index)
    f = censor.reindex(out.index)
    out["pfs_date"] = out["progression_date"]
    died = out["pfs_date"].isna() & d.notna()
    out.loc[died, "pfs_date"] = d[died]
    out["pfs_event"] = out["pfs_date"].notna().astype(int)
    cens = out["pfs_date"].isna()
    out.loc[cens, "pfs_date"] = f[cens]
    no_fu = out["pfs_date"].isna() & out["index_date"].notna()
    out.loc[no_fu, "pfs_date"] = out.loc[no_fu, "index_date"]
    for pid in out.index[no_fu]:
        notes[pid] = _join(notes[pid], "no follow-up after the index date; censored at the index date")
    early = out["pfs_date"] < out["index_date"]
    for pid in out.index[early]:
        notes[pid] = _join(notes[pid], "follow-up ends before the index date; censored at the index date")
    out.loc[early, "pfs_date"] = out.loc[early, "index_date"]
    out.loc[early, "pfs_event"] = 0
    out["pfs_days"] = (out["pfs_date"] - out["index_date"]).dt.days.astype("Int64")
    out["method"] = method
    out["note"] = notes
    # Kept so that the manual reference can be put on the same footing (death is a PFS event).
    out["death_date"] = d
    out["last_followup_date"] = (last_followup if last_followup is not None else censor).reindex(out.index)
    out = out.rename_axis("patient_id").reset_index()
    cols = ["patient_id", "method", "index_date", "progressed", "progression_date", "pfs_event", "pfs_date",
            "pfs_days", "note", "death_date", "last_followup_date"]
    return out[cols].sort_values("patient_id").reset_index(drop=True)


def _join(a: str, b: str) -> str:
    return b if not a else f"{a}; {b}"
