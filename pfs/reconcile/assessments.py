"""What each tumour source said about every study, progression or not: the reconciler's second input.

Events are progression signals only. To see that the report of a scan said "stable" while the
volumetry of the same scan called progression, or that a volumetric progression started from a
nadir too small to measure, the reconciler also reads the sources' own per-study tables, reduced to
one shape (:data:`COLUMNS`):

- ``patient_id``, ``source``, ``assessment_date``, ``ref_id`` (report_id or study_id);
- ``assessment``: progression, stable, improved, treatment_effect, indeterminate, baseline, or
  after_progression (a study after the source's first progression);
- ``et_volume_ml`` and ``nadir_ml`` for imaging (blank for reports).

The contract stays simple: extractors keep emitting progression events only, and their tables
(``report_labels.csv``, ``volumes.csv``) already hold the rest; :func:`from_tables` adapts them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

COLUMNS = ["patient_id", "source", "assessment_date", "ref_id", "assessment", "et_volume_ml", "nadir_ml"]

#: rano_state of volumes.csv (pfs/extractors/imaging/rano.py) -> assessment.
_RANO_STATES = {
    "baseline": "baseline",
    "stable": "stable",
    "new_nadir": "improved",
    "preliminary": "progression",
    "preliminary_not_confirmed": "indeterminate",  # growth its own next scan did not confirm
    "progression": "progression",
    "progression_confirmed": "progression",
    "progression_new_lesion": "progression",
    "confirmation": "progression",
    "after_progression": "after_progression",
}
_REPORT_LABELS = {"progression", "stable", "improved", "treatment_effect", "indeterminate"}


def empty_assessments() -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series(dtype="object") for c in COLUMNS})
    out["assessment_date"] = pd.Series(dtype="datetime64[ns]")
    for c in ("et_volume_ml", "nadir_ml"):
        out[c] = pd.Series(dtype="float64")
    return out


def from_report_labels(labels: pd.DataFrame) -> pd.DataFrame:
    """Assessed reports (report_labels.csv of the nlp source)."""
    lab = labels.loc[labels["label"].astype(str).isin(_REPORT_LABELS)]
    return pd.DataFrame({
        "patient_id": lab["patient_id"].astype(str), "source": "nlp",
        "assessment_date": pd.to_datetime(lab["report_date"], errors="coerce"),
        "ref_id": lab["report_id"].astype(str), "assessment": lab["label"].astype(str),
        "et_volume_ml": float("nan"), "nadir_ml": float("nan")})


def from_volumes(volumes: pd.DataFrame) -> pd.DataFrame:
    """Segmented studies with their volumetric RANO state (volumes.csv of the imaging source)."""
    state = volumes["rano_state"].astype(str).map(_RANO_STATES)
    vol = volumes.loc[state.notna()]
    return pd.DataFrame({
        "patient_id": vol["patient_id"].astype(str), "source": "imaging",
        "assessment_date": pd.to_datetime(vol["study_date"], errors="coerce"),
        "ref_id": vol["study_id"].astype(str), "assessment": state[state.notna()],
        "et_volume_ml": pd.to_numeric(vol["et_volume_ml"], errors="coerce"),
        "nadir_ml": pd.to_numeric(vol["nadir_ml"], errors="coerce")})


#: source table -> (the columns it needs, its adapter)
ADAPTERS: dict[str, tuple[list[str], Callable[[pd.DataFrame], pd.DataFrame]]] = {
    "report_labels": (["patient_id", "report_id", "report_date", "label"], from_report_labels),
    "volumes": (["patient_id", "study_id", "study_date", "et_volume_ml", "rano_state", "nadir_ml"], from_volumes),
}


def from_tables(tables: dict[str, pd.DataFrame | Path]) -> pd.DataFrame:
    """Assessments from the sources' tables, given as frames or as written CSV files."""
    parts = []
    for name, (columns, adapt) in ADAPTERS.items():
        table = tables.get(name)
        if table is None:
            continue
        if isinstance(table, Path):
            table = pd.read_csv(table, usecols=lambda c: c in columns, dtype={"patient_id": str},
                                keep_default_na=False, na_values=[""])
        if table.empty or not set(columns) <= set(table.columns):
            continue
        parts.append(adapt(table))
    parts = [p for p in parts if not p.empty]
    if not parts:
        return empty_assessments()
    out = pd.concat(parts, ignore_index=True).dropna(subset=["assessment_date"])
    out["assessment_date"] = out["assessment_date"].dt.normalize()
    return out[COLUMNS].sort_values(["patient_id", "assessment_date", "source", "ref_id"], kind="stable")
