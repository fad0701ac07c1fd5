"""End to end: `pfs extract --format omop|fhir --sources treatment` finds the re-resection after first line."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
from procedures_testdata import fhir_export, omop_export

from pfs.cli import main


def _extract(src: Path, fmt: str, out: Path, monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    monkeypatch.setattr(sys, "argv", ["pfs", "extract", str(src), "--format", fmt, "--sources", "treatment",
                                      "--out", str(out), "--workers", "1", "--no-cache"])
    try:
        main()
    except SystemExit as exc:
        assert not exc.code, f"pfs extract exited with {exc.code}"
    return pd.read_csv(out / "events.csv", dtype=str, keep_default_na=False)


@pytest.mark.parametrize(("fmt", "build", "ids"), [
    ("omop", omop_export, ("104", "105")),
    ("fhir", fhir_export, ("p3", "p6")),
])
def test_re_resection_and_radiosurgery_after_first_line_are_next_line_events(tmp_path, monkeypatch, fmt, build, ids):
    events = _extract(build(tmp_path / fmt), fmt, tmp_path / "out", monkeypatch)
    treatment = events.loc[events["source"] == "treatment"]
    # The first craniotomy, the RT course and the venipuncture are no events; the entered-in-error
    # (2021-06-01) and not-done (2021-07-01) FHIR procedures never reach the native table.
    assert treatment[["event_date", "kind", "ref_id"]].values.tolist() == [
        ["2021-09-15", "re_resection", ids[0]],
        ["2021-11-02", "re_irradiation", ids[1]],
    ]
    assert "61510" in treatment["evidence"].iloc[0]
