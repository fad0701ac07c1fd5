"""Every command through typer's CliRunner, and the installed ``pfs`` console script as a user runs it.

The console-script tests run the real entry point in a subprocess: a usage mistake must print typer's
usage screen and exit 2 (never a traceback), whatever version of click typer vendors.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from pfs.cli import app

COMMANDS = sorted(typer.main.get_command(app).commands)
runner = CliRunner()


def _pfs() -> str:
    script = Path(sys.executable).with_name("pfs")
    found = str(script) if script.exists() else shutil.which("pfs")
    assert found, "the pfs console script is not installed next to this Python (pip install -e .)"
    return found


def _run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([_pfs(), *args], capture_output=True, text=True, encoding="utf-8", timeout=120)


def test_the_command_list_is_what_the_readme_documents() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    for command in COMMANDS:
        assert f"pfs {command}" in readme, command


@pytest.mark.parametrize("command", COMMANDS)
def test_a_usage_error_is_typers_usage_screen_and_exit_2(command: str) -> None:
    res = _run_script(command, "--no-such-option")
    assert res.returncode == 2, res.stderr
    assert f"Usage: pfs {command}" in res.stderr and "No such option" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command(command: str) -> None:
    res = _run_script(command, "--help")
    assert res.returncode == 0 and f"Usage: pfs {command}" in res.stdout


def test_unknown_command_and_missing_argument_exit_2_without_traceback() -> None:
    for args in (["frobnicate"], ["compare"], ["extract", "--bogus"], ["compare", "x", "--out", "y"]):
        res = _run_script(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert "Usage: pfs" in res.stderr and "Traceback" not in res.stderr, args


def test_version_from_the_console_script() -> None:
    from pfs.version import __version__

    res = _run_script("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"pfs {__version__}"


def test_a_user_error_from_the_console_script_is_one_line() -> None:
    res = _run_script("compare", "/nonexistent-pfs-out", "--annotations", "/nonexistent.csv")
    assert res.returncode == 3
    assert res.stderr.startswith("pfs: error: ") and res.stderr.count("\n") == 1


# --- every command through CliRunner, on one small synthetic run --------------------------------------


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    res = runner.invoke(app, ["synth", str(root / "cohort"), "--patients", "4", "--seed", "2", "--no-images"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["extract", str(root / "cohort" / "export"), "--out", str(root / "out"),
                              "--workers", "1", "--sources", "steroid,nlp"])
    assert res.exit_code == 0, res.output
    return root


def test_synth_writes_an_export_its_annotations_and_truth(small_run: Path) -> None:
    cohort = small_run / "cohort"
    assert (cohort / "export" / "patients.csv").exists() and (cohort / "annotations.csv").exists()
    assert len(pd.read_csv(cohort / "export" / "patients.csv")) == 4


def test_extract_on_a_synth_folder_suggests_its_export(small_run: Path) -> None:
    res = _run_script("extract", str(small_run / "cohort"), "--out", str(small_run / "wrong"))
    assert res.returncode == 3
    assert f"did you mean {small_run / 'cohort' / 'export'}?" in res.stderr


def test_compare_prints_the_summary_and_writes_the_table(small_run: Path) -> None:
    res = runner.invoke(app, ["compare", str(small_run / "out"), "--annotations",
                              str(small_run / "cohort" / "annotations.csv")])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(small_run / "out" / "comparison.csv")
    assert {"steroid", "nlp", "reconciled", "manual"} <= set(table["method"])
    assert "pfs compare" in res.output


def test_plot_lists_the_files_it_wrote(small_run: Path) -> None:
    res = runner.invoke(app, ["plot", str(small_run / "out"), "--annotations",
                              str(small_run / "cohort" / "annotations.csv")])
    assert res.exit_code == 0, res.output
    paths = [Path(line) for line in res.output.split() if line.endswith((".png", ".svg"))]
    assert paths and all(p.exists() and p.stat().st_size > 0 for p in paths)


def test_report_writes_one_html_file(small_run: Path) -> None:
    target = small_run / "r.html"
    res = runner.invoke(app, ["report", str(small_run / "out"), "-o", str(target)])
    assert res.exit_code == 0, res.output
    assert target.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")


def test_convert_writes_native_tables_from_fhir(tmp_path: Path) -> None:
    src = Path(__file__).parent / "data" / "fhir"
    res = runner.invoke(app, ["convert", str(src), "--format", "fhir", "--out", str(tmp_path / "nat"),
                              "--all-persons"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "nat" / "patients.csv").exists() and "native export" in res.output


def test_validate_a_clean_export_exits_0(small_run: Path) -> None:
    res = runner.invoke(app, ["validate", str(small_run / "cohort" / "export")])
    assert res.exit_code == 0, res.output
    assert "patients: 4 rows read, 4 valid, 0 would be quarantined" in res.output


def test_sources_lists_every_registered_source() -> None:
    from pfs.extractors import SOURCES

    res = runner.invoke(app, ["sources"])
    assert res.exit_code == 0
    assert [line.split(":")[0] for line in res.output.splitlines()] == list(SOURCES)


def test_demo_runs_the_whole_pipeline(tmp_path: Path) -> None:
    res = runner.invoke(app, ["demo", "--cache-dir", str(tmp_path), "--patients", "3", "--no-images"],
                        env={"COLUMNS": "500"})  # no wrapping of the long paths it prints
    assert res.exit_code == 0, res.output
    out = next(tmp_path.glob("cohort-*")) / "out"
    for name in ("endpoints.csv", "comparison.csv", "report.html", "manifest.json"):
        assert (out / name).exists(), name
    assert "report:" in res.output
    # It ends with the command that opens its run for review, then the one that exports the decisions.
    review, export = [line.strip() for line in res.output.strip().splitlines()[-2:]]
    assert shlex.split(review.split(":", 1)[1]) == ["pfs", "review", str(out)]
    assert export.endswith("--export reviewed.csv")


def test_a_parallel_run_prints_no_library_chatter_or_traceback(small_run: Path) -> None:
    """Dask's INFO lines and shutdown noise stay off the console unless --verbose."""
    res = _run_script("extract", str(small_run / "cohort" / "export"), "--out", str(small_run / "par"),
                      "--workers", "2", "--no-cache", "--sources", "steroid,nlp")
    assert res.returncode == 0, res.stderr
    for noise in ("INFO", "Traceback", "CommClosedError", "distributed."):
        assert noise not in res.stderr + res.stdout, noise
    serial = pd.read_csv(small_run / "out" / "endpoints.csv")
    assert serial.equals(pd.read_csv(small_run / "par" / "endpoints.csv"))
