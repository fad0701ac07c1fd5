"""The run a reviewer looks at: the output tables of ``pfs extract``, read once and indexed by patient.

Everything stays text (ISO dates compare as strings), so a page for one patient is a few dictionary
look-ups and row slices, whatever the cohort size.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pfs.exceptions import PfsError

SOURCES = ("steroid", "nlp", "imaging")
TABLES = ("endpoints", "events", "reconciled_events", "report_labels", "steroid_courses", "steroid_daily",
          "volumes")
_KNOWN = {"date_agreement_days", "source_disagreement_days", "page_size"}


def review_settings() -> dict[str, int]:
    """The shipped review parameters (pfs/review/review.toml); unknown keys are an error."""
    data = tomllib.loads(resources.files("pfs.review").joinpath("review.toml").read_text(encoding="utf-8"))
    unknown = set(data) - _KNOWN
    if unknown:
        raise PfsError(f"review.toml: unknown key(s) {sorted(unknown)}; allowed: {sorted(_KNOWN)}")
    return {k: int(v) for k, v in data.items()}


def _read(path: Path) -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame()
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[], encoding="utf-8")


@dataclass
class Run:
    """The output tables of one run and, per table, where each patient's rows are."""

    out: Path
    manifest: dict[str, Any]
    tables: dict[str, pd.DataFrame]
    rows: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    summary: pd.DataFrame = field(default_factory=pd.DataFrame)

    def patient_rows(self, table: str, patient_id: str) -> pd.DataFrame:
        frame = self.tables.get(table)
        where = self.rows.get(table, {}).get(patient_id)
        if frame is None or where is None:
            return pd.DataFrame(columns=[] if frame is None else frame.columns)
        return frame.iloc[where]

    def has_patient(self, patient_id: str) -> bool:
        return patient_id in self.rows.get("endpoints", {})

    @property
    def export_dir(self) -> Path | None:
        native = self.out / "native"
        if native.is_dir():
            return native
        path = self.manifest.get("export")
        return Path(path) if path else None

    @property
    def masks_dir(self) -> Path:
        configured = self.manifest.get("config", {}).get("imaging", {}).get("masks_dir")
        return Path(configured) if configured else self.out / "masks"


def load_run(out: Path | str, settings: dict[str, int] | None = None) -> Run:
    """Read OUT (endpoints.csv is required) and precompute the one-row-per-patient list."""
    out = Path(out)
    if not (out / "endpoints.csv").exists():
        raise PfsError(f"{out}: no endpoints.csv here; give the output directory of `pfs extract`")
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
    tables = {name: _read(out / f"{name}.csv") for name in TABLES}
    run = Run(out=out, manifest=manifest, tables=tables)
    for name, frame in tables.items():
        if "patient_id" in frame.columns and len(frame):
            run.rows[name] = {str(k): np.asarray(v) for k, v in frame.groupby("patient_id", sort=False).indices.items()}
    run.summary = _summary(tables["endpoints"], settings or review_settings())
    return run


def _summary(endpoints: pd.DataFrame, settings: dict[str, int]) -> pd.DataFrame:
    """One row per patient: the reconciled call and each source's call, and whether the sources disagree."""
    if endpoints.empty:
        return pd.DataFrame(columns=["patient_id", "reconciled", "reconciled_date", "disagree"])
    wide = endpoints.pivot_table(index="patient_id", columns="method",
                                 values=["progressed", "progression_date", "pfs_date", "last_followup_date"],
                                 aggfunc="first")
    frame = pd.DataFrame(index=wide.index)
    methods = [m for m in ("reconciled", *SOURCES) if ("progressed", m) in wide.columns]
    for m in methods:
        frame[m] = wide[("progressed", m)].fillna("")
        frame[f"{m}_date"] = wide[("progression_date", m)].fillna("")
    if "reconciled" not in methods:
        frame["reconciled"], frame["reconciled_date"] = "", ""
    first = methods[0] if methods else None
    frame["censor_date"] = wide[("last_followup_date", first)].fillna("") if first else ""
    frame["disagree"] = _disagree(frame, [m for m in SOURCES if m in methods], settings["source_disagreement_days"])
    return frame.reset_index().sort_values("patient_id", kind="stable").reset_index(drop=True)


def _disagree(frame: pd.DataFrame, sources: list[str], days: int) -> pd.Series:
    if len(sources) < 2:
        return pd.Series(False, index=frame.index)
    calls = frame[sources].replace("", np.nan)
    split = calls.nunique(axis=1) > 1
    dates = frame[[f"{s}_date" for s in sources]].replace("", np.nan).apply(pd.to_datetime, errors="coerce")
    spread = (dates.max(axis=1) - dates.min(axis=1)).dt.days.fillna(0)
    return split | (spread > days)
