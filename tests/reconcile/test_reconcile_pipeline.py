"""The reconciler inside `pfs extract`: its table is written with the evidence chain, in schema order."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pfs.io.schema import load_schema
from pfs.pipeline import run_extract


def test_extract_writes_reconciled_events_with_the_schema_columns(small_export: Path, tmp_path: Path) -> None:
    result = run_extract(small_export, tmp_path / "out", sources=["steroid"])
    rec = pd.read_csv(tmp_path / "out" / "reconciled_events.csv")
    assert list(rec.columns) == load_schema("reconciled_events").columns
    assert set(rec["status"]) <= {"accepted", "rejected"}
    # Steroid alone never makes a guideline progression.
    reconciled = result.endpoints.loc[result.endpoints["method"] == "reconciled"]
    assert reconciled["progressed"].sum() == 0 and len(reconciled) == 3
