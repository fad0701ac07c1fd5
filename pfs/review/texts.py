"""Copy the export's report texts and corticosteroid orders into the review database, once per export.

The run's outputs hold labels and offsets but not the report texts: those stay in the export. They
are read with the same validating reader as ``pfs extract`` (so offsets point into the same text),
batch by batch, and kept only while the export's file hashes in the manifest stay the same.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from pfs.exceptions import PfsError
from pfs.review import db
from pfs.review.run import Run

log = logging.getLogger(__name__)


class _Collect:
    """A :class:`pfs.io.export.Sink` that keeps the batches of reports and steroid orders as text."""

    def __init__(self) -> None:
        self.batches: dict[str, list[pd.DataFrame]] = {"patients": [], "reports": [], "orders": []}
        from pfs.extractors.steroid.drugs import load_rules

        self.rules = load_rules()

    def begin(self, patients: pd.DataFrame) -> None:
        self.batches["patients"] = [_as_text(patients.drop(columns=["_row"], errors="ignore"))]

    def add(self, name: str, batch: pd.DataFrame) -> None:
        if name == "medications":
            from pfs.extractors.steroid.drugs import identify_drug

            batch = batch[identify_drug(batch["drug_name"].astype(str), self.rules).notna().to_numpy()]
            name = "orders"
        if name in self.batches and len(batch):
            self.batches[name].append(_as_text(batch))

    def discard(self, name: str) -> None:
        self.batches["orders" if name == "medications" else name] = []

    def items(self) -> Iterator[tuple[str, pd.DataFrame]]:
        for name, parts in self.batches.items():
            for part in parts:
                yield name, part


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for col in frame.columns:
        values = frame[col]
        if pd.api.types.is_datetime64_any_dtype(values):
            out[col] = values.dt.strftime("%Y-%m-%d").fillna("")
        else:
            out[col] = values.astype(object).where(values.notna(), "").astype(str)
    return out


def ensure_sources(run: Run, path: Path) -> str:
    """Make the database hold this run's report texts and orders; returns a line saying what happened."""
    export = run.export_dir
    key = json.dumps({"export": str(export), "inputs": run.manifest.get("inputs", {})}, sort_keys=True)
    if db.source_key(path) == key:
        return "report texts: reused from the review database"
    if export is None or not export.is_dir():
        db.replace_sources(path, key, iter(()))
        return f"report texts: the export ({export}) is not here; pages show labels without the text"
    from pfs.io.export import read_export

    sink = _Collect()
    as_of = run.manifest.get("as_of") or None
    try:
        read_export(export, None, ("patients", "medications", "reports"), as_of=as_of, sink=sink)
    except PfsError as err:
        log.warning("report texts not read from the export: %s", type(err).__name__)
        db.replace_sources(path, key, iter(()))
        return f"report texts: the export could not be read ({err}); pages show labels without the text"
    counts = db.replace_sources(path, key, sink.items())
    return f"report texts: {counts['reports']} reports and {counts['orders']} steroid orders copied from {export}"
