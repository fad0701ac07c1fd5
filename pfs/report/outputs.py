"""Reading the outputs of ``pfs extract`` for plots and the report; every table but endpoints is optional.

A table that a run did not produce (a source not run, an older version) comes back as ``None`` so that
each figure or section can say "not available" instead of failing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pfs.exceptions import ExportError
from pfs.io.output import read_endpoints, read_output


def _optional_tables() -> tuple[str, ...]:
    """Every output table but endpoints: the run's events and quarantine, each source's own tables."""
    from pfs.extractors import SOURCES

    per_source = tuple(t for spec in SOURCES.values() for t in spec.output_tables)
    return ("events", "reconciled_events", "quarantine", *per_source, "comparison")


@dataclass
class Outputs:
    """The tables of one output directory; absent optional tables are ``None``."""

    root: Path
    endpoints: pd.DataFrame
    tables: dict[str, pd.DataFrame | None] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None

    def get(self, name: str) -> pd.DataFrame | None:
        return self.tables.get(name)


def load_outputs(out_dir: Path | str) -> Outputs:
    """Endpoints (required), the optional tables and the manifest of ``out_dir``."""
    root = Path(out_dir)
    if not root.is_dir():
        raise ExportError(f"{root}: output directory not found; run `pfs extract EXPORT --out {root}` first")
    endpoints = read_endpoints(root)
    tables = {name: read_output(root / f"{name}.csv", name) for name in _optional_tables()}
    manifest = None
    if (root / "manifest.json").exists():
        try:
            manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            manifest = None
    return Outputs(root=root, endpoints=endpoints, tables=tables, manifest=manifest)


@dataclass
class Reference:
    """The manual annotations of a run, read once: the clean rows, the rows set aside, the manual PFS."""

    annotations: pd.DataFrame
    quarantine: pd.DataFrame
    manual: pd.DataFrame | None


def read_reference(outputs: Outputs, annotations: Path | str | None) -> Reference | None:
    """The annotations against ``outputs`` (see :func:`pfs.evaluate.compare.manual_endpoints`), or None."""
    if annotations is None:
        return None
    import warnings

    from pfs.evaluate.compare import load_annotations, manual_endpoints

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the quarantine is reported by `pfs compare`, not by every figure
        ann, quarantine = load_annotations(annotations, sorted(outputs.endpoints["patient_id"].unique()))
    manual = manual_endpoints(outputs.endpoints, ann) if not ann.empty else None
    return Reference(annotations=ann, quarantine=quarantine, manual=manual)


def manual_reference(outputs: Outputs, annotations: Path | str | None) -> pd.DataFrame | None:
    """The manual PFS per patient, or None without (usable) annotations."""
    ref = read_reference(outputs, annotations)
    return None if ref is None else ref.manual
