"""End to end on a synthetic cohort: outputs are complete, deterministic and account for every row."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from pfs.io.export import load_export
from pfs.pipeline import run_extract
from pfs.synth import synthesize


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cohort")
    synthesize(root, patients=14, seed=5, images=False)
    return root


def test_synth_is_byte_identical_for_the_same_seed(cohort: Path, tmp_path: Path) -> None:
    again = synthesize(tmp_path / "again", patients=14, seed=5, images=False).root
    assert _digest(cohort) == _digest(again)
    other = synthesize(tmp_path / "other", patients=14, seed=6, images=False).root
    assert _digest(cohort)["export/medications.csv"] != _digest(other)["export/medications.csv"]


def test_clean_synthetic_export_loads_without_quarantine(cohort: Path) -> None:
    export = load_export(cohort / "export")
    assert export.quarantine.frame().empty, export.quarantine.frame().head()
    assert len(export.table("patients")) == 14


def test_extract_accounts_for_every_row_and_is_deterministic(cohort: Path, tmp_path: Path) -> None:
    a = run_extract(cohort / "export", tmp_path / "a")
    b = run_extract(cohort / "export", tmp_path / "b")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text(encoding="utf-8"))
    for name, counts in manifest["tables"].items():
        assert counts["rows_read"] == counts["rows_used"] + counts["rows_quarantined"], name
    ep = pd.read_csv(tmp_path / "a" / "endpoints.csv")
    assert set(ep["method"]) >= {"reconciled"}
    assert (ep["pfs_days"] >= 0).all()
    assert ep.loc[ep["progressed"] == 1, "progression_date"].notna().all()
    assert len(a.endpoints) == len(b.endpoints)


def test_every_injected_fault_is_quarantined_and_other_patients_are_unchanged(cohort: Path, tmp_path: Path) -> None:
    faulty = synthesize(tmp_path / "faulty", patients=14, seed=5, images=False, faults=True)
    faults = pd.read_csv(faulty.truth / "faults.csv")
    clean = run_extract(cohort / "export", tmp_path / "clean_out")
    run = run_extract(faulty.export, tmp_path / "faulty_out")
    q = run.quarantine
    status = {s: v["status"] for s, v in run.manifest["sources"].items()}
    # Every source that had its input table ran (a crash on every patient is "failed: ...", not a pass).
    assert {s: v for s, v in status.items() if not v.startswith("skipped: no ")} == {
        "steroid": "ran", "nlp": "ran", "treatment": "ran"}
    for fault in faults.itertuples():
        if fault.stage != "load":  # a fault meant for a source: that source must have run, not crashed
            assert status[fault.stage] == "ran", f"{fault.stage}: {status[fault.stage]}"
        hit = q[(q["table"] == fault.table) & (q["row"] == fault.row)]
        assert not hit.empty, f"fault {fault.fault} ({fault.table} row {fault.row}) was not quarantined"
    # Faults touched one patient's rows and foreign ids: the other patients' endpoints are identical.
    touched = set(q["patient_id"]) | {"P0001"}
    a = clean.endpoints[~clean.endpoints["patient_id"].isin(touched)].reset_index(drop=True)
    b = run.endpoints[~run.endpoints["patient_id"].isin(touched)].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
