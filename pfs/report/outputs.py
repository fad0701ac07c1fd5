"""Reading the outputs of ``pfs extract`` for plots and the report; every table but endpoints is optional.

A table that a run did not produce (a source not built, an older version) comes back as ``None`` so that
each figure or section can say "not available" instead of failing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pfs.exceptions import ExportError

_DATE_COLUMNS = {
    "events": ["event_date"],
    "reconciled_events": ["event_date"],
    "steroid_daily": ["date", "start_date", "end_date"],
    "steroid_courses": ["start_date", "end_date", "peak_date"],
    "report_labels": ["report_date"],
    "volumes": ["study_date"],
}
OPTIONAL_TABLES = (
    "events",
    "reconciled_events",
    "quarantine",
    "steroid_daily",
    "steroid_courses",
    "report_labels",
    "volumes",
    "comparison",
)


@dataclass
class Outputs:
    """The tables of one output directory; absent optional tables are ``None``."""

    root: Path
    endpoints: pd.DataFrame
    tables: dict[str, pd.DataFrame | None] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None

    def get(self, name: str) -> pd.DataFrame | None:
        return self.tables.get(name)


def _read(path: Path, name: str) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        frame = pd.read_csv(
            path,
            dtype={"patient_id": str, "ref_id": str, "report_id": str, "study_id": str},
            keep_default_na=False,
            na_values=[""],
        )
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        return None
    for col in _DATE_COLUMNS.get(name, []):
        if col in frame:
            frame[col] = pd.to_datetime(frame[col], errors="coerce")
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].fillna("")
    return frame


def load_outputs(out_dir: Path | str) -> Outputs:
    """Endpoints (required), the optional tables and the manifest of ``out_dir``."""
    from pfs.evaluate.compare import read_endpoints

    root = Path(out_dir)
    if not root.is_dir():
        raise ExportError(f"{root}: output directory not found; run `pfs extract EXPORT --out {root}` first")
    endpoints = read_endpoints(root)
    tables = {name: _read(root / f"{name}.csv", name) for name in OPTIONAL_TABLES}
    manifest = None
    if (root / "manifest.json").exists():
        try:
            manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            manifest = None
    return Outputs(root=root, endpoints=endpoints, tables=tables, manifest=manifest)


def manual_reference(outputs: Outputs, annotations: Path | str | None) -> pd.DataFrame | None:
    """The manual PFS per patient (see :func:`pfs.evaluate.compare.manual_endpoints`), or None."""
    if annotations is None:
        return None
    import warnings

    from pfs.evaluate.compare import load_annotations, manual_endpoints

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the quarantine is reported by `pfs compare`, not by every figure
        ann, _ = load_annotations(annotations, sorted(outputs.endpoints["patient_id"].unique()))
    return manual_endpoints(outputs.endpoints, ann) if not ann.empty else None
