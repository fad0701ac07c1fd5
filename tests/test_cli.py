"""The command line: exit codes and messages a user sees."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pfs.cli import main


def run(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["pfs", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_help_is_instant_and_does_not_import_heavy_libraries() -> None:
    code = ("import sys, time; t=time.perf_counter(); sys.argv=['pfs','--help']\n"
            "from pfs.cli import main\ntry: main()\nexcept SystemExit: pass\n"
            "heavy=[m for m in ('spacy','medspacy','torch','monai','matplotlib','SimpleITK','lifelines') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8", check=True)
    assert "HEAVY []" in res.stdout
    assert time.perf_counter() - t0 < 5


def test_missing_export_is_one_line_and_exit_3(monkeypatch, capsys, tmp_path: Path) -> None:
    code, out = run(["extract", str(tmp_path / "nope"), "--out", str(tmp_path / "o")], monkeypatch, capsys)
    assert code == 3
    assert "export directory not found" in out and "Traceback" not in out


def test_unknown_source_is_a_config_error(monkeypatch, capsys, small_export: Path, tmp_path: Path) -> None:
    code, out = run(["extract", str(small_export), "--out", str(tmp_path / "o"), "--sources", "tarot"],
                    monkeypatch, capsys)
    assert code == 4 and "unknown source 'tarot'" in out


def test_extract_writes_the_contract_tables(monkeypatch, capsys, small_export: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "o"
    code, out = run(["extract", str(small_export), "--out", str(out_dir), "--sources", "steroid"],
                    monkeypatch, capsys)
    assert code == 0, out
    for name in ("events.csv", "endpoints.csv", "quarantine.csv", "manifest.json"):
        assert (out_dir / name).exists(), name


def test_strict_fails_on_the_first_quarantined_row(monkeypatch, capsys, small_export: Path, tmp_path: Path) -> None:
    with (small_export / "medications.csv").open("a") as fh:
        fh.write("P1,M9,2020-99-01,,dexamethasone,4,mg,BID,PO,\n")
    code, out = run(["extract", str(small_export), "--out", str(tmp_path / "o"), "--strict", "--sources", "steroid"],
                    monkeypatch, capsys)
    assert code == 5
    assert "medications.csv row 4, column 'order_date'" in out


def test_validate_reports_quarantine_without_writing(monkeypatch, capsys, small_export: Path) -> None:
    with (small_export / "reports.csv").open("a") as fh:
        fh.write("P7,R9,2020-01-01,MRI BRAIN,text\n")
    code, out = run(["validate", str(small_export)], monkeypatch, capsys)
    assert code == 5
    assert "reports: 1 x unknown patient_id" in out


def test_version(monkeypatch, capsys) -> None:
    code, out = run(["--version"], monkeypatch, capsys)
    assert code == 0 and out.startswith("pfs 0.")


def test_fhir_copy_of_a_cohort_gives_the_same_endpoints(monkeypatch, capsys, tmp_path: Path) -> None:
    import pandas as pd

    cohort = tmp_path / "c"
    code, out = run(["synth", str(cohort), "--patients", "4", "--seed", "3", "--no-images", "--format", "fhir"],
                    monkeypatch, capsys)
    assert code == 0, out
    code, out = run(["extract", str(cohort / "export"), "--out", str(tmp_path / "nat"), "--sources", "steroid,nlp"],
                    monkeypatch, capsys)
    assert code == 0, out
    code, out = run(["extract", str(cohort / "fhir"), "--format", "fhir", "--out", str(tmp_path / "fh"),
                     "--sources", "steroid,nlp"], monkeypatch, capsys)
    assert code == 0, out
    a = pd.read_csv(tmp_path / "nat" / "endpoints.csv")
    b = pd.read_csv(tmp_path / "fh" / "endpoints.csv")
    pd.testing.assert_frame_equal(a, b)
    assert "conversion" in (tmp_path / "fh" / "manifest.json").read_text(encoding="utf-8")


def test_unknown_format_is_a_clear_error(monkeypatch, capsys, small_export: Path, tmp_path: Path) -> None:
    code, out = run(["extract", str(small_export), "--format", "hl7", "--out", str(tmp_path / "o")],
                    monkeypatch, capsys)
    assert code == 3 and "unknown export format 'hl7'" in out
