"""Fault injection: each fault of issue 9 on its own, through ``pfs extract``, against the clean run.

For every case of :data:`robustness_faults.CASES` the suite checks the exit code, the message, that
the quarantine holds exactly the expected rows (table, row, column, reason, stage), that the manifest
accounts for every input row, that ``--strict`` stops on the first of those rows naming its table,
row and column, and that every other patient's outputs are byte-for-byte the clean run's.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from robustness_export import PATIENT_TABLES, copy_export, extract_cli, read_output
from robustness_faults import CASES, FAULT_CLASSES, AllRowsOf, FaultCase
from pfs.extractors import SOURCES

#: ``--strict`` is checked on the first case of each class that quarantines (the message is the same per class).
STRICT_CASES = {next(c.name for c in CASES if c.fault_class == k and c.quarantine)
                for k in FAULT_CLASSES if any(c.fault_class == k and c.quarantine for c in CASES)}


def test_every_fault_class_of_the_issue_has_cases() -> None:
    per_class = Counter(c.fault_class for c in CASES)
    assert set(per_class) == set(FAULT_CLASSES)
    assert len(FAULT_CLASSES) == 17 and len(CASES) == sum(per_class.values())
    assert len({c.name for c in CASES}) == len(CASES)


def test_clean_run_quarantines_nothing_and_every_source_ran(clean) -> None:
    assert clean.result.quarantine.empty, clean.result.quarantine
    assert {s: v["status"] for s, v in clean.result.manifest["sources"].items()} == {s: "ran" for s in SOURCES}
    # Each table the faults touch has rows of the patients they touch, or the comparison proves nothing.
    # Per-source tables are written bucket by bucket as the run goes, not held in memory.
    volumes = pd.read_csv(clean.result.table_files["volumes"], dtype=str)
    assert set(volumes["patient_id"]) == {"P0001", "P0003", "P0005"} and len(volumes) == 9
    assert set(clean.result.events["source"]) == set(SOURCES)


def _expected_rows(case: FaultCase, labels: dict[str, int], clean_export: Path) -> list[tuple]:
    """(table, row, column, reason fragment, stage) of every quarantine row the case must produce."""
    out = []
    for q in case.quarantine:
        if isinstance(q, AllRowsOf):
            frame = pd.read_csv(clean_export / f"{q.table}.csv", dtype=str, keep_default_na=False)
            rows = (frame.index[frame["patient_id"] == q.patient] + 1).tolist()
            assert rows, f"clean {q.table} has no row of {q.patient}"
            out += [(q.table, r, "patient_id", q.reason, "load") for r in rows]
        else:
            row = labels[q.row] if isinstance(q.row, str) else q.row
            out.append((q.table, row, q.column, q.reason, q.stage))
    return out


def _match_quarantine(actual: pd.DataFrame, expected: list[tuple]) -> None:
    got = [(r.table, int(r.row), r.column, r.reason, r.stage) for r in actual.itertuples()]
    unmatched = list(got)
    for table, row, column, reason, stage in expected:
        hit = [g for g in unmatched if g[:3] == (table, row, column) and reason in g[3] and g[4] == stage]
        assert hit, f"expected quarantine row {(table, row, column, reason, stage)} not in {got}"
        unmatched.remove(hit[0])
    assert not unmatched, f"unexpected quarantine rows: {unmatched}"


def _compared(frame: pd.DataFrame | None, table: str, case: FaultCase) -> pd.DataFrame | None:
    if frame is None:
        return None
    keep = ~frame["patient_id"].isin(case.touched)
    for t, column, value in case.not_compared:
        if t == table:
            keep &= False if column == "*" else frame[column] != value
    return frame.loc[keep].reset_index(drop=True)


def _params() -> list:
    out = []
    for c in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []
        out.append(pytest.param(c, id=c.name, marks=marks))
    return out


@pytest.mark.parametrize("case", _params())
def test_fault(case: FaultCase, clean, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               capsys: pytest.CaptureFixture) -> None:
    export = copy_export(clean.export, tmp_path / "export")
    labels = case.inject(export)
    run = extract_cli(export, tmp_path / "out", clean.config, monkeypatch, capsys)
    q = read_output(run.out, "quarantine")
    assert run.code == case.exit_code, run.output
    assert "Traceback" not in run.output
    for fragment in case.message:
        assert fragment in run.output, run.output
    if case.exit_code != 0:
        # An export pfs cannot read leaves no outputs that could be taken for a finished run.
        assert not (run.out / "manifest.json").exists()
        return

    manifest = json.loads((run.out / "manifest.json").read_text(encoding="utf-8"))
    notes = "\n".join(manifest["notes"])
    for fragment in case.notes:
        assert fragment in notes, notes
    assert not [s for s, v in manifest["sources"].items() if v["status"].startswith("failed")], manifest["sources"]
    for name, counts in manifest["tables"].items():
        assert counts["rows_read"] == counts["rows_used"] + counts["rows_quarantined"], name

    expected = _expected_rows(case, labels, clean.export)
    _match_quarantine(q, expected)
    for name, counts in manifest["tables"].items():
        assert counts["rows_quarantined"] == len({r[1] for r in expected if r[0] == name}), name

    for table in PATIENT_TABLES:
        a = _compared(read_output(clean.out, table), table, case)
        b = _compared(read_output(run.out, table), table, case)
        if a is None or b is None:
            assert (a is None or a.empty) and (b is None or b.empty), table
            continue
        pd.testing.assert_frame_equal(a, b, obj=f"{table}.csv of the untouched patients")

    if case.name in STRICT_CASES:
        strict = extract_cli(export, tmp_path / "strict", clean.config, monkeypatch, capsys, "--strict")
        assert strict.code == 5, strict.output
        # The message names the file (medications.csv) and, when the file is unknown, the table.
        named = [f"{t}{ext} row {r}" + (f", column '{c}'" if c else "") for t, r, c, _, _ in expected
                 for ext in (".csv", "")]
        assert any(n in strict.output for n in named), (named, strict.output)
        assert not (strict.out / "manifest.json").exists()
